// RedisCluster: commands routed over a Redis Cluster's masters, a RedisPool (pipelined
// connections) per master.
//
// A command goes to the master that owns its key's slot in the slot map, which is read with
// CLUSTER SLOTS from the seeds or any known master: at start, every few seconds, soon after a
// MOVED reply, and soon after a master stops answering. A map that names a node which did not
// answer is taken only when no node offers another: right after a failover, nodes that have
// not heard of it yet still name the dead master. A MOVED reply moves that slot at once
// and resends the command there; an ASK reply resends only this command, after ASKING, to the
// node importing the slot. A command is redirected at most a few times. TRYAGAIN and
// CLUSTERDOWN (a slot in mid-migration, a cluster without quorum) fail the call with
// Unavailable at once, as does a slot whose master is unknown or down: callers fail fast and
// the next call after the map is refreshed goes to the new master. Replicas are never used.
//
// Thread-safety: all public methods are thread-safe; reply handlers run on pool workers.
#ifndef TLSCACHE_SERVER_STORE_REDIS_REDIS_CLUSTER_H_
#define TLSCACHE_SERVER_STORE_REDIS_REDIS_CLUSTER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store/redis/cluster_slots.h"
#include "server/store/redis/redis_pool.h"

namespace tlscache::server::redis {

struct RedisClusterOptions {
  std::vector<Endpoint> seeds;
  // For each master's pool; its endpoint and sentinel are not used.
  RedisPoolOptions node;
  // The slot map is read again this often, and at most this soon after a request to.
  absl::Duration refresh_interval = absl::Seconds(2);
  absl::Duration min_refresh_gap = absl::Milliseconds(100);
};

class RedisCluster final : public RedisTransport {
 public:
  // Starts reading the slot map in the background. `options.node` must be valid.
  RedisCluster(const RedisClusterOptions& options, std::string name);
  ~RedisCluster() override;

  RedisCluster(const RedisCluster&) = delete;
  RedisCluster& operator=(const RedisCluster&) = delete;

  // Sends `command` to the master of `key`'s slot.
  void Submit(absl::string_view key, RedisCommand command) override;
  // Ok when every slot has a master and every master has a connection up.
  absl::Status Health() override;
  // Every pool's, those retired included, and the redirections followed.
  TransportCounters counters() const override;
  bool sharded() const override { return true; }
  std::function<absl::StatusOr<Endpoint>()> SubscriberLocator() const override;

 private:
  using Command = RedisCommand;
  static constexpr uint16_t kNoMaster = 0xffff;
  static constexpr int kMaxRedirects = 5;

  void Dispatch(int slot, std::shared_ptr<Command> command, int redirects_left,
                std::optional<Endpoint> ask);
  // The pool of `endpoint`'s master, made on first use.
  std::shared_ptr<RedisPool> PoolLocked(const Endpoint& endpoint)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint16_t MasterIndexLocked(const Endpoint& endpoint) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RequestRefresh();
  void RefreshLoop();
  // Reads CLUSTER SLOTS from a known master or a seed and installs it.
  absl::Status Refresh();
  // Makes `ranges` the slot map, with a pool for every master; retires the other pools.
  void InstallLocked(const std::vector<SlotRange>& ranges) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RedisClusterOptions options_;
  const std::string name_;

  mutable absl::Mutex mu_;
  absl::CondVar refresh_cv_;
  std::vector<Endpoint> masters_ ABSL_GUARDED_BY(mu_);
  std::array<uint16_t, kClusterSlots> slots_ ABSL_GUARDED_BY(mu_);  // index into masters_
  std::map<std::string, std::shared_ptr<RedisPool>> pools_ ABSL_GUARDED_BY(mu_);
  // Pools of nodes that are masters no more, destroyed once nothing uses them.
  std::vector<std::shared_ptr<RedisPool>> retired_ ABSL_GUARDED_BY(mu_);
  absl::Status map_error_ ABSL_GUARDED_BY(mu_);
  // Nodes that refused a connection when last asked for the slot map.
  std::set<std::string> unreachable_ ABSL_GUARDED_BY(mu_);
  bool refresh_requested_ ABSL_GUARDED_BY(mu_) = true;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  TransportCounters retired_counters_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> redirects_{0};
  std::thread refresher_;
};

}  // namespace tlscache::server::redis

#endif  // TLSCACHE_SERVER_STORE_REDIS_REDIS_CLUSTER_H_
