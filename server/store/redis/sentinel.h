// Redis Sentinel, from the client's side: which server is the master now, and a watch on the
// sentinels' +switch-master announcements so that a failover is followed at once rather than
// when the old master's connections break.
//
// Thread-safety: ResolveMaster is a pure function of the sentinels' answers; a SentinelWatcher
// owns one thread.
#ifndef TLSCACHE_SERVER_STORE_REDIS_SENTINEL_H_
#define TLSCACHE_SERVER_STORE_REDIS_SENTINEL_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/store/redis/redis_connection.h"

namespace tlscache::server::redis {

struct SentinelConfig {
  std::vector<Endpoint> sentinels;  // tried in order
  std::string master_name;
  int db = 0;                             // of the master
  std::shared_ptr<const RedisAuth> auth;  // for the sentinels (the master's is the store's)

  std::string ToString() const;  // "sentinel MASTER (h:p,h:p)"
};

// The master the first answering sentinel reports (SENTINEL get-master-addr-by-name).
// Unavailable, naming each sentinel's failure, when none knows it.
absl::StatusOr<Endpoint> ResolveMaster(const SentinelConfig& config, absl::Duration timeout);

class SentinelWatcher {
 public:
  // Subscribes to +switch-master on one sentinel after another (moving on when one fails),
  // and calls `on_switch` from its thread on each announcement for config.master_name.
  SentinelWatcher(SentinelConfig config, absl::Duration timeout, std::function<void()> on_switch);
  ~SentinelWatcher();  // stops within about a second

 private:
  void Run();

  const SentinelConfig config_;
  const absl::Duration timeout_;
  const std::function<void()> on_switch_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace tlscache::server::redis

#endif  // TLSCACHE_SERVER_STORE_REDIS_SENTINEL_H_
