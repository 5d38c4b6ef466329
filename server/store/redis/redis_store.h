// RedisStore: the shared store of a farm's cache replicas, on a standalone Redis, the master
// that Redis Sentinel names, or a Redis Cluster's masters.
//
// Commands go through a RedisPool (pipelined connections to one server, see redis_pool.h) or
// a RedisCluster (a pool per master, with slot routing, see redis_cluster.h). Every entry is
// one key, so every command touches one slot.
//
// Entries are Redis strings under "<prefix><namespace>:<hex session id>" with a PX expiry.
// Ticket key rings are hashes {v: version, r: ring} under "<prefix>@ring:<namespace>" ('@' is
// not in the namespace alphabet, so the two never meet), swapped by a Lua compare-and-set.
// Get is one Lua script (GET, PTTL, and DEL when consuming), so a consuming Get is atomic
// across every replica sharing the Redis.
//
// Thread-safety: all public methods are thread-safe. Completion callbacks run on worker
// threads (or on the caller's thread when a call is rejected at once).
#ifndef TLSCACHE_SERVER_STORE_REDIS_REDIS_STORE_H_
#define TLSCACHE_SERVER_STORE_REDIS_REDIS_STORE_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/store/redis/redis_cluster.h"
#include "server/store/redis/redis_pool.h"
#include "server/store/store.h"

namespace tlscache::server::redis {

struct RedisStoreOptions : RedisPoolOptions {
  // Not empty: a Redis Cluster, found through these nodes (`endpoint` and `sentinel` unused).
  std::vector<Endpoint> cluster;
  // The largest session accepted back from Redis; a larger value is not handed out.
  size_t max_session_bytes = 16 << 10;
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
  // Changes travel on the channel "<prefix>@changes:<namespace>": PUBLISH and SUBSCRIBE on a
  // standalone Redis and under Sentinel (on the master; a message published there reaches
  // its replicas too), sharded pub/sub (SPUBLISH, SSUBSCRIBE on the channel's slot) on a
  // Cluster, so that a message goes to one shard rather than to every node.
  bool SharesChanges() const override { return true; }
  void PublishChanges(absl::string_view ns, absl::string_view batch, absl::Time deadline,
                      PutDone done) override;
  std::unique_ptr<ChangesSubscription> SubscribeChanges(absl::string_view ns,
                                                        ChangesHandler handler) override;
  absl::Status Health() override;
  std::string Describe() const override;
  void AddStats(StoreStats* stats) const override;

 private:
  explicit RedisStore(const RedisStoreOptions& options);

  std::string RedisKey(const StoreKey& key) const;
  std::string RingKey(absl::string_view ns) const;
  std::string ChangesChannel(absl::string_view ns) const;
  // To the server, or to the cluster master of `key`'s slot.
  void Submit(absl::string_view key, std::vector<std::string> argv, absl::Time deadline,
              ReplyHandler handler);

  const RedisStoreOptions options_;
  const std::string name_;
  const std::string script_sha_;
  std::unique_ptr<RedisPool> pool_;        // standalone or Sentinel
  std::unique_ptr<RedisCluster> cluster_;  // or a cluster
};

}  // namespace tlscache::server::redis

#endif  // TLSCACHE_SERVER_STORE_REDIS_REDIS_STORE_H_
