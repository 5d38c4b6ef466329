// The one command type of the Redis store, and the transport that carries commands: a
// RedisPool (one server, or the master a set of sentinels names) or a RedisCluster (a pool per
// master, routed by slot). RedisStore speaks to a RedisTransport and never asks which.
//
// Thread-safety: transports are thread-safe; a RedisCommand is a value that one owner moves.
#ifndef TLSCACHE_SERVER_STORE_REDIS_REDIS_TRANSPORT_H_
#define TLSCACHE_SERVER_STORE_REDIS_REDIS_TRANSPORT_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/secret_bytes.h"
#include "server/store/redis/redis_connection.h"

namespace tlscache::server::redis {

// The payload (type URL) under which a cluster error reply's text travels in a status.
inline constexpr absl::string_view kRedisErrorPayload = "tlscache.redis.error_reply";

using ReplyHandler = absl::AnyInvocable<void(absl::StatusOr<ReplyPtr>) &&>;

// One command and what to do with its reply. Its arguments may hold session bytes: they are
// wiped when it is destroyed.
struct RedisCommand {
  RedisCommand(std::vector<std::string> args, absl::Time until, ReplyHandler on_reply,
               bool wait_for_replica = false)
      : argv(std::move(args)),
        deadline(until),
        handler(std::move(on_reply)),
        replicated(wait_for_replica) {}
  RedisCommand(RedisCommand&&) = default;
  RedisCommand& operator=(RedisCommand&&) = default;
  ~RedisCommand() {
    for (std::string& arg : argv) CleanseString(&arg);
  }

  std::vector<std::string> argv;
  absl::Time deadline;
  ReplyHandler handler;
  // Sent right after an ASKING on the same connection (a cluster's ASK redirection).
  bool asking = false;
  // A WAIT for one replica follows it on the same connection (within its deadline), and the
  // handler runs once that answered: a write a replica confirmed survives a failover to it.
  // One no replica confirmed in time fails with Unavailable (it stands on the master alone)
  // and is counted (TransportCounters::unreplicated). A master that had no replica connected
  // at its last health check is not asked to wait: nothing could confirm the write, and a
  // failover has nothing to promote.
  bool replicated = false;
};

// What a transport counted (a cluster: all its pools, those retired included).
struct TransportCounters {
  uint64_t connects = 0;      // connections opened, reconnects included
  uint64_t errors = 0;        // failed connects; connections dropped after an error
  uint64_t unreplicated = 0;  // replicated commands failed: no replica confirmed them in time
  uint64_t redirects = 0;     // MOVED and ASK replies followed (a cluster)

  TransportCounters& operator+=(const TransportCounters& other) {
    connects += other.connects;
    errors += other.errors;
    unreplicated += other.unreplicated;
    redirects += other.redirects;
    return *this;
  }
};

// What the server a pool writes to said of itself at its last check (INFO, every few
// seconds), and, under Sentinel, what the sentinels say: the store's own view of Redis's
// health, for metrics and alerts without an exporter.
struct MasterHealth {
  uint64_t replicas = 0;       // connected_slaves
  uint64_t good_replicas = 0;  // within min-replicas-max-lag (min_slaves_good_slaves), else all
  uint64_t evicted_keys = 0;   // since the server started
  bool aof_ok = true;          // aof_last_write_status and aof_last_bgrewrite_status ok
  uint64_t used_memory = 0;
  uint64_t maxmemory = 0;  // 0: none
  // Sentinel only: configured, naming the master the majority names (0 without a majority),
  // and the changes of that master (failovers, losing or regaining a majority) seen.
  uint64_t sentinels = 0;
  uint64_t sentinels_agreeing = 0;
  uint64_t master_changes = 0;
};

class RedisTransport {
 public:
  virtual ~RedisTransport() = default;

  // Sends `command` to the server that holds `key`; its handler runs once, on a worker (or
  // on the caller's thread when the command is rejected at once).
  virtual void Submit(absl::string_view key, RedisCommand command) = 0;
  // Ok while commands can be served (a cluster: every slot's master has a connection up).
  virtual absl::Status Health() = 0;
  virtual TransportCounters counters() const = 0;
  // The master's health as last seen; nothing before the first check, or for a cluster.
  virtual std::optional<MasterHealth> health() const { return std::nullopt; }
  // Pub/sub channels live on the shard of their slot (SPUBLISH, SSUBSCRIBE): a cluster.
  virtual bool sharded() const = 0;
  // Where a subscriber connects first (a cluster's seeds in turn: a node that does not own
  // the channel's slot answers MOVED to the one that does).
  virtual std::function<absl::StatusOr<Endpoint>()> SubscriberLocator() const = 0;
};

}  // namespace tlscache::server::redis

#endif  // TLSCACHE_SERVER_STORE_REDIS_REDIS_TRANSPORT_H_
