// The message a namespace's change log publishes on Redis (server/store/redis/redis_store.h):
//
//   "tlscache-log-v1|" EPOCH "|" FIRST "|" (NETSTRING(session id) NETSTRING(payload))+
//
// EPOCH names the log (hex, made when the log began), FIRST is the number of the first change
// (decimal, from 1), and a netstring is LENGTH ":" BYTES "," (LENGTH in decimal). The changes
// are numbered FIRST, FIRST+1, ... The append script builds it; subscribers parse it with
// ParseLogMessage, which checks every length against its bound: a message that does not parse
// is dropped (and the numbers then show a gap).
#ifndef TLSCACHE_SERVER_STORE_REDIS_LOG_MESSAGE_H_
#define TLSCACHE_SERVER_STORE_REDIS_LOG_MESSAGE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/store/store.h"

namespace tlscache::server::redis {

inline constexpr absl::string_view kLogMessageMagic = "tlscache-log-v1|";
inline constexpr size_t kMaxEpochBytes = 64;

struct LogMessage {
  std::string epoch;
  uint64_t first_seq = 0;
  std::vector<LogEntry> entries;
};

// InvalidArgument saying what is wrong; each payload at most `max_payload_bytes`.
absl::StatusOr<LogMessage> ParseLogMessage(absl::string_view message, size_t max_payload_bytes);

// The message the append script would publish (for tests and the fuzzer's seeds).
std::string EncodeLogMessage(absl::string_view epoch, uint64_t first_seq,
                             const std::vector<LogEntry>& entries);

}  // namespace tlscache::server::redis

#endif  // TLSCACHE_SERVER_STORE_REDIS_LOG_MESSAGE_H_
