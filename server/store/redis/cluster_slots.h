// The pure pieces of Redis Cluster routing: which slot a key hashes to, what a MOVED or ASK
// reply says, and the slot map a CLUSTER SLOTS reply describes. No I/O; fuzzed and unit-tested.
#ifndef TLSCACHE_SERVER_STORE_REDIS_CLUSTER_SLOTS_H_
#define TLSCACHE_SERVER_STORE_REDIS_CLUSTER_SLOTS_H_

#include <hiredis/hiredis.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/store/redis/redis_connection.h"

namespace tlscache::server::redis {

inline constexpr int kClusterSlots = 16384;

// CRC16-CCITT (XMODEM) of the key's hash tag (the bytes between the first '{' and the next
// '}', when that is not empty) or else of the whole key, modulo 16384: as Redis Cluster does.
int KeySlot(absl::string_view key);

// "MOVED 3999 127.0.0.1:6381" or "ASK 3999 127.0.0.1:6381".
struct Redirect {
  bool ask = false;  // ASK: this command only, after ASKING; MOVED: the slot has moved
  int slot = 0;
  Endpoint to;
};
// nullopt when `error` is not a well-formed redirection.
std::optional<Redirect> ParseRedirect(absl::string_view error);

// Slots first..last are served by `master`.
struct SlotRange {
  int first = 0;
  int last = 0;
  Endpoint master;
};
// The ranges of a CLUSTER SLOTS reply (replicas are never used, so they are not kept). An
// empty host (a node that does not know its own address) is `fallback_host`, the host the
// reply came from. DataLoss when the reply is malformed.
absl::StatusOr<std::vector<SlotRange>> ParseClusterSlots(const redisReply& reply,
                                                         absl::string_view fallback_host);

}  // namespace tlscache::server::redis

#endif  // TLSCACHE_SERVER_STORE_REDIS_CLUSTER_SLOTS_H_
