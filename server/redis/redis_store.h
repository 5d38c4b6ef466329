// RedisStore: the shared store of a farm's cache replicas, on a standalone Redis.
//
// A fixed pool of connections, each owned by one worker thread. Calls are queued (bounded)
// and a worker takes everything queued, up to a batch, and sends it as one pipeline, so that
// concurrent calls share round trips instead of each paying one. Every command has a timeout;
// a connection that errs or times out is discarded and rebuilt with exponential back-off, and
// an idle connection is checked with PING, so a Redis restart is noticed and survived without
// a restart of the service. While no connection is up, calls fail at once with Unavailable.
//
// Entries are Redis strings under "<prefix><namespace>:<hex session id>" with a PX expiry.
// Ticket key rings are hashes {v: version, r: ring} under "<prefix>@ring:<namespace>" ('@' is
// not in the namespace alphabet, so the two never meet), swapped by a Lua compare-and-set.
// Get is one Lua script (GET, PTTL, and DEL when consuming), so a consuming Get is atomic
// across every replica sharing the Redis.
//
// Thread-safety: all public methods are thread-safe. Completion callbacks run on worker
// threads (or on the caller's thread when a call is rejected at once).
#ifndef TLSCACHE_SERVER_REDIS_REDIS_STORE_H_
#define TLSCACHE_SERVER_REDIS_REDIS_STORE_H_

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
#include "server/redis/redis_connection.h"
#include "server/redis/sentinel.h"
#include "server/store.h"

namespace tlscache::server::redis {

struct RedisStoreOptions {
  Endpoint endpoint;
  // With Sentinel, the master is asked of the sentinels at every (re)connect instead of
  // `endpoint`, a connection to a server that is not the master is refused, and a failover
  // announced by the sentinels drops every connection so that the new master is used at once.
  std::optional<SentinelConfig> sentinel;
  // AUTH on every connection to Redis (not to the sentinels: SentinelConfig::auth).
  std::shared_ptr<const RedisAuth> auth;
  int pool_size = 4;
  // Bound on one call: time queued plus the Redis round trip.
  absl::Duration timeout = absl::Milliseconds(100);
  absl::Duration connect_timeout = absl::Seconds(1);
  absl::Duration min_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
  // An idle connection is checked with PING this often.
  absl::Duration idle_check = absl::Seconds(1);
  // The largest session accepted back from Redis; a larger value is not handed out.
  size_t max_session_bytes = 16 << 10;
  size_t max_queue = 8192;
  size_t max_batch = 64;
  std::string key_prefix = "tlscache:";
};

class RedisStore final : public Store {
 public:
  // Starts the workers; they connect in the background, so a Redis that is down at start is
  // not an error (Health() says why it is not serving yet).
  static absl::StatusOr<std::unique_ptr<RedisStore>> Create(const RedisStoreOptions& options);
  // Fails whatever is still queued with Unavailable and joins the workers.
  ~RedisStore() override;

  void Put(const StoreKey& key, absl::string_view session, absl::Duration ttl, absl::Time deadline,
           PutDone done) override;
  void Get(const StoreKey& key, bool consume, absl::Time deadline, GetDone done) override;
  void Delete(const StoreKey& key, absl::Time deadline, DeleteDone done) override;
  void GetRing(absl::string_view ns, absl::Time deadline, GetRingDone done) override;
  void SwapRing(absl::string_view ns, uint64_t expected, uint64_t version, absl::string_view ring,
                absl::Time deadline, SwapRingDone done) override;
  absl::Status Health() override;
  std::string Describe() const override;
  void AddStats(StoreStats* stats) const override;

 private:
  using ReplyHandler = absl::AnyInvocable<void(absl::StatusOr<ReplyPtr>) &&>;
  struct Op;

  explicit RedisStore(const RedisStoreOptions& options);

  std::string RedisKey(const StoreKey& key) const;
  std::string RingKey(absl::string_view ns) const;
  void Submit(std::vector<std::string> argv, absl::Time deadline, ReplyHandler handler);
  absl::StatusOr<std::unique_ptr<RedisConnection>> Open();
  // Under Sentinel: ok if `conn` is to the master.
  absl::Status CheckMaster(RedisConnection& conn);
  void WorkerLoop();
  // Waits for work; empty after `idle_check` with nothing queued, or when stopping.
  std::vector<std::unique_ptr<Op>> TakeBatch();
  // Sends a batch as one pipeline. Not ok: the connection is broken.
  absl::Status RunBatch(RedisConnection& conn, std::vector<std::unique_ptr<Op>> batch);
  void MarkUp();
  void MarkDown(const absl::Status& why);
  static void Fail(std::vector<std::unique_ptr<Op>> ops, const absl::Status& status);

  const RedisStoreOptions options_;
  const std::string name_;
  const std::string script_sha_;

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
};

}  // namespace tlscache::server::redis

#endif  // TLSCACHE_SERVER_REDIS_REDIS_STORE_H_
