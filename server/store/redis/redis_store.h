// RedisStore: the shared store of a farm's cache replicas, on a standalone Redis, the master
// that Redis Sentinel names, or a Redis Cluster's masters.
//
// Commands go through a RedisTransport (redis_transport.h): a RedisPool (pipelined connections
// to one server, see redis_pool.h) or a RedisCluster (a pool per master, with slot routing,
// see redis_cluster.h). Every entry is one key, so every command touches one slot.
//
// Entries are Redis strings under "<prefix><namespace>:<hex session id>" with a PX expiry; a
// tombstone (a deletion that stands) is an empty string there. Put, Get and Delete are each one
// Lua script, so a Put never overwrites a tombstone and a consuming Get (GET, PTTL, the
// tombstone) is atomic across every replica sharing the Redis. Ticket key rings are hashes {v:
// version, r: ring} under "<prefix>@ring:<namespace>" ('@' is not in the namespace alphabet,
// so the two never meet), swapped by a Lua compare-and-set.
//
// A namespace's change log is a hash "<prefix>@log:{<namespace>}" {epoch, seq} and a sorted
// set "<prefix>@deleted:{<namespace>}" of the deletions it holds (scored by when they stop
// standing), in the namespace's hash slot: one Lua script filters, numbers and publishes a
// batch on "<prefix><scope>@log:{<namespace>}" (SPUBLISH on a Cluster: to the shard of that
// slot only), where <scope> is the deployment and database ("prod:0"): deployments that share a
// Redis never receive each other's changes, whatever database they use. A subscriber reads the
// log's position (epoch, seq, and the server's replication ID, which changes at a failover)
// each time it subscribes. Deletions and consuming Gets on a Redis with replicas (Sentinel, a
// Cluster) wait for one replica to confirm them (WAIT), so that a failover keeps them.
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
#include "server/store/redis/redis_pool.h"
#include "server/store/redis/redis_subscriber.h"
#include "server/store/redis/redis_transport.h"
#include "server/store/store.h"

namespace tlscache::server::redis {

struct RedisStoreOptions : RedisPoolOptions {
  // Not empty: a Redis Cluster, found through these nodes (`endpoint` and `sentinel` unused).
  std::vector<Endpoint> cluster;
  // The largest session accepted back from Redis; a larger value is not handed out.
  size_t max_session_bytes = 16 << 10;
  std::string key_prefix = "tlscache:";
  // Part of every channel name, with the database (common/validation.h: a namespace's rules).
  std::string deployment = "default";
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
  void Delete(const StoreKey& key, absl::Duration hold, absl::Time deadline,
              DeleteDone done) override;
  void Live(const StoreKey& key, absl::Time deadline, LiveDone done) override;
  void GetRing(absl::string_view ns, absl::Time deadline, GetRingDone done) override;
  void SwapRing(absl::string_view ns, uint64_t expected, uint64_t version, absl::string_view ring,
                absl::Time deadline, SwapRingDone done) override;
  void ReportFollower(absl::string_view ns, const FollowerReport& report, absl::Time deadline,
                      StatusDone done) override;
  void ForgetFollower(absl::string_view ns, const FollowerReport& stale, absl::Time deadline,
                      StatusDone done) override;
  void ListFollowers(absl::string_view ns, absl::Time deadline, FollowersDone done) override;
  void AppendChanges(absl::string_view ns, std::vector<LogChange> changes, absl::Time deadline,
                     StatusDone done) override;
  std::unique_ptr<Subscription> FollowLog(absl::string_view ns, LogHandler handler) override;
  // Notices travel on "<prefix><scope>@notice:<channel>" (PUBLISH; SPUBLISH on a Cluster).
  void PublishNotice(absl::string_view channel, absl::string_view payload, absl::Time deadline,
                     StatusDone done) override;
  std::unique_ptr<Subscription> SubscribeNotices(absl::string_view channel,
                                                 NoticeHandler handler) override;
  absl::Status Health() override;
  std::string Describe() const override;
  void AddStats(StoreStats* stats) const override;

 private:
  explicit RedisStore(const RedisStoreOptions& options);

  std::string RedisKey(const StoreKey& key) const;
  std::string RingKey(absl::string_view ns) const;
  std::string FollowersKey(absl::string_view ns) const;
  std::string LogKey(absl::string_view ns) const;
  std::string DeletedKey(absl::string_view ns) const;
  std::string Channel(absl::string_view kind, absl::string_view name) const;
  // To the server, or to the cluster master of `key`'s slot.
  void Submit(absl::string_view key, std::vector<std::string> argv, absl::Time deadline,
              ReplyHandler handler, bool replicated = false);
  // Where the namespace's log stands, read now (blocking: for a subscriber's thread), and the
  // replication ID of the server that answered (empty if it did not say).
  LogEvent ReadLogPosition(absl::string_view ns, std::string* replication_id);
  // A subscriber on `channel` (on a Cluster, at the node that owns its slot); `subscribed` and `lost`
  // (either may be null) as SubscriberOptions' on_subscribed and on_lost.
  std::unique_ptr<RedisSubscriber> Subscriber(std::string channel, std::function<void()> subscribed,
                                              std::function<void()> lost,
                                              std::function<void(SecretBytes)> on_message);

  const RedisStoreOptions options_;
  const std::string name_;
  const std::string scope_;  // "<deployment>:<db>"
  // Deletions and consuming Gets wait for a replica: there are replicas (Sentinel, Cluster).
  const bool replicated_;
  // What EVALSHA names the scripts by.
  const std::string put_sha_, get_sha_, delete_sha_, append_sha_;
  std::unique_ptr<RedisTransport> transport_;  // a pool (standalone, Sentinel) or a cluster
};

}  // namespace tlscache::server::redis

#endif  // TLSCACHE_SERVER_STORE_REDIS_REDIS_STORE_H_
