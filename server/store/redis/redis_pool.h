// RedisPool: the connections to one Redis server (or to the master a set of sentinels names),
// and the queue of commands waiting for them.
//
// A fixed pool of connections, each owned by one worker thread. Commands are queued (bounded)
// and a worker takes everything queued, up to a batch, and sends it as one pipeline, so that
// concurrent calls share round trips instead of each paying one. Every command has a timeout;
// a connection that errs or times out is discarded and rebuilt with exponential back-off, and
// an idle connection is checked with PING, so a Redis restart is noticed and survived. While
// no connection is up, commands fail at once with Unavailable.
//
// Error replies: a cluster's redirections and transient states (MOVED, ASK, TRYAGAIN,
// CLUSTERDOWN) fail their command with Unavailable carrying the reply's text as the
// kRedisErrorPayload payload, and leave the connection as it is; any other error reply
// (READONLY after a failover, NOSCRIPT, OOM) fails its command and rebuilds the connection in
// case the server's role or state changed.
//
// Thread-safety: all public methods are thread-safe. Reply handlers run on worker threads (or
// on the caller's thread when a command is rejected at once).
#ifndef TLSCACHE_SERVER_STORE_REDIS_REDIS_POOL_H_
#define TLSCACHE_SERVER_STORE_REDIS_REDIS_POOL_H_

#include <atomic>
#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/store/redis/redis_connection.h"
#include "server/store/redis/redis_transport.h"
#include "server/store/redis/sentinel.h"

namespace tlscache::server::redis {

struct RedisPoolOptions {
  Endpoint endpoint;
  // With Sentinel, the master is asked of the sentinels at every (re)connect instead of
  // `endpoint`, a connection to a server that is not the master is refused, and a failover
  // announced by the sentinels drops every connection so that the new master is used at once.
  std::optional<SentinelConfig> sentinel;
  // AUTH on every connection to Redis (not to the sentinels: SentinelConfig::auth).
  std::shared_ptr<RedisCredentials> auth;
  int pool_size = 4;
  // Bound on one call: time queued plus the Redis round trip.
  absl::Duration timeout = absl::Milliseconds(100);
  absl::Duration connect_timeout = absl::Seconds(1);
  absl::Duration min_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
  // An idle connection is checked with PING this often.
  absl::Duration idle_check = absl::Seconds(1);
  size_t max_queue = 8192;
  size_t max_batch = 64;
  // Lua scripts loaded on every new connection, so that EVALSHA finds them.
  std::vector<std::string> scripts;
};

class RedisPool final : public RedisTransport {
 public:
  // InvalidArgument for options out of range.
  static absl::Status Validate(const RedisPoolOptions& options);
  // Starts the workers; they connect in the background, so a Redis that is down at start is
  // not an error (Health() says why it is not serving yet). `options` must be valid.
  RedisPool(const RedisPoolOptions& options, std::string name);
  // Fails whatever is still queued with Unavailable and joins the workers.
  ~RedisPool() override;

  RedisPool(const RedisPool&) = delete;
  RedisPool& operator=(const RedisPool&) = delete;

  // Queues one command (its deadline shortened to the pool's timeout); the handler gets the
  // command's own reply (after ASKING or before WAIT: see RedisCommand).
  void Submit(RedisCommand command);
  // RedisTransport: every key is on the one server.
  void Submit(absl::string_view key, RedisCommand command) override { Submit(std::move(command)); }
  // Ok while at least one connection is up.
  absl::Status Health() override;
  TransportCounters counters() const override;
  std::optional<MasterHealth> health() const override;
  bool sharded() const override { return false; }
  std::function<absl::StatusOr<Endpoint>()> SubscriberLocator() const override;
  const std::string& name() const { return name_; }

 private:
  using Op = RedisCommand;

  // A connection to the master (or the endpoint).
  absl::StatusOr<std::unique_ptr<RedisConnection>> Open();
  // Under Sentinel: ok if `conn` is to the master.
  absl::Status CheckMaster(RedisConnection& conn);
  // Every kHealthEvery, and after each connect, on one worker's connection: INFO, kept for
  // health().
  absl::Status CheckHealth(RedisConnection& conn);
  // False once the last health check found the master with no replica connected.
  bool MayHaveReplica() const;
  void WorkerLoop();
  // Waits for work; empty after `idle_check` with nothing queued, or when stopping.
  std::vector<std::unique_ptr<Op>> TakeBatch();
  // Sends a batch as one pipeline. Not ok: the connection must be rebuilt.
  absl::Status RunBatch(RedisConnection& conn, std::vector<std::unique_ptr<Op>> batch);
  void MarkUp();
  void MarkDown(const absl::Status& why);
  static void Fail(std::vector<std::unique_ptr<Op>> ops, const absl::Status& status);

  const RedisPoolOptions options_;
  const std::string name_;
  std::vector<std::string> script_shas_;

  mutable absl::Mutex mu_;
  absl::CondVar work_cv_;     // queued work or stopping, for connected workers
  absl::CondVar backoff_cv_;  // stopping, for workers waiting to reconnect
  std::deque<std::unique_ptr<Op>> queue_ ABSL_GUARDED_BY(mu_);
  int connected_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status last_error_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
  std::unique_ptr<SentinelWatcher> watcher_;
  // Bumped on each failover: a worker whose connection is older reconnects.
  std::atomic<uint64_t> topology_epoch_{0};
  std::atomic<uint64_t> connects_{0};
  std::atomic<uint64_t> errors_{0};
  std::atomic<uint64_t> unreplicated_{0};
  std::atomic<int64_t> next_health_check_ns_{0};  // absl::GetCurrentTimeNanos()
  mutable absl::Mutex health_mu_;
  std::optional<MasterHealth> health_ ABSL_GUARDED_BY(health_mu_);
};

// The SHA-1 of a script, as EVALSHA names it (lower-case hex).
std::string ScriptSha(absl::string_view script);

}  // namespace tlscache::server::redis

#endif  // TLSCACHE_SERVER_STORE_REDIS_REDIS_POOL_H_
