// Redis Sentinel, from the client's side: which server is the master now (the one a majority
// of the sentinels names), and a watch on the sentinels: their +switch-master announcements,
// so that a failover is followed at once rather than when the old master's connections break,
// and their majority, so that a store cut off from most sentinels (a partition) stops writing
// to a master the others may already have replaced.
//
// Thread-safety: ResolveMaster is a pure function of the sentinels' answers; a SentinelWatcher
// owns one thread.
#ifndef TLSCACHE_SERVER_STORE_REDIS_SENTINEL_H_
#define TLSCACHE_SERVER_STORE_REDIS_SENTINEL_H_

#include <atomic>
#include <functional>
#include <optional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/store/redis/redis_connection.h"

namespace tlscache::server::redis {

struct SentinelConfig {
  std::vector<Endpoint> sentinels;  // all of them: a majority is counted against this list
  std::string master_name;
  int db = 0;                             // of the master
  std::shared_ptr<RedisCredentials> auth;  // for the sentinels (the master's is the store's)

  std::string ToString() const;  // "sentinel MASTER (h:p,h:p)"
};

// The master that more than half of config.sentinels name (SENTINEL get-master-addr-by-name),
// not merely more than half of those that answer: a store that reaches one sentinel of three
// may be on the minority side of a partition, where that sentinel still names the old master.
// Unavailable, naming what each sentinel said, when no master has a majority.
absl::StatusOr<Endpoint> ResolveMaster(const SentinelConfig& config, absl::Duration timeout);

// The same count over answers already collected: one per sentinel, an Endpoint or why there
// is none.
absl::StatusOr<Endpoint> MajorityMaster(const SentinelConfig& config,
                                        const std::vector<absl::StatusOr<Endpoint>>& answers);

class SentinelWatcher {
 public:
  // Names the master the pool writes to, and calls `on_switch` from its threads whenever that
  // changes: it subscribes to +switch-master on one sentinel after another (moving on when
  // one fails) and names the master each announcement for config.master_name names; and it
  // asks every sentinel for the master every `check_every`, naming the majority's answer when
  // that changes: another master at once, none (the store is cut off from most sentinels, or
  // they are electing a new master) from its second check in a row. The first check's answer
  // is named without a call: nothing was connected by the watcher before it.
  SentinelWatcher(SentinelConfig config, absl::Duration timeout, std::function<void()> on_switch,
                  absl::Duration check_every = absl::Seconds(1));
  ~SentinelWatcher();  // stops within about a second (a round of checks: their timeouts)

  // At the last majority check: how many sentinels named the majority's master (0: none had
  // a majority), and how many times that master changed.
  uint64_t agreeing() const { return agreeing_.load(std::memory_order_relaxed); }
  uint64_t master_changes() const { return master_changes_.load(std::memory_order_relaxed); }
  // The master named (an announcement, or the majority's answer), or why none is; nothing
  // before the first check's answer.
  std::optional<absl::StatusOr<Endpoint>> master() const;

 private:
  void Run();
  void CheckMajority();
  // Names `master`; when that is a change, counts it and calls on_switch_ (not for the first
  // check's answer, unless an announcement came first).
  void Name(absl::StatusOr<Endpoint> master, bool announced);

  const SentinelConfig config_;
  const absl::Duration timeout_;
  const std::function<void()> on_switch_;
  const absl::Duration check_every_;
  absl::Notification stop_;
  std::atomic<uint64_t> agreeing_{0};
  std::atomic<uint64_t> master_changes_{0};
  mutable absl::Mutex master_mu_;
  std::optional<absl::StatusOr<Endpoint>> master_ ABSL_GUARDED_BY(master_mu_);
  std::thread thread_;
  std::thread checker_;
};

}  // namespace tlscache::server::redis

#endif  // TLSCACHE_SERVER_STORE_REDIS_SENTINEL_H_
