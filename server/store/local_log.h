// LocalLog: the change logs (server/store/store.h) of a store that one process alone uses
// (MemoryStore), kept in that process: each namespace's changes are numbered under its own
// mutex and handed to its subscribers, in order, before Append returns.
//
// The log ID is random per LocalLog, so the numbers of a restarted process never pass for
// the ones its followers saw before. A deletion is remembered for its hold (at most
// `max_deleted` of them per namespace; past that the oldest go first, and a late put of one
// of those is left out by the store's tombstone instead).
//
// Thread-safety: all methods are thread-safe. A handler runs under its namespace's (or the
// notices') mutex: it must not append to, subscribe to or unsubscribe from the same log, nor
// publish a notice.
#ifndef TLSCACHE_SERVER_STORE_LOCAL_LOG_H_
#define TLSCACHE_SERVER_STORE_LOCAL_LOG_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "server/store/store.h"

namespace tlscache::server {

class LocalLog {
 public:
  explicit LocalLog(Clock* clock, size_t max_deleted = size_t{1} << 20);

  LocalLog(const LocalLog&) = delete;
  LocalLog& operator=(const LocalLog&) = delete;

  void Append(absl::string_view ns, std::vector<LogChange> changes);
  std::unique_ptr<Subscription> Follow(absl::string_view ns, LogHandler handler);

  // Local delivery of notices: to every subscriber of the channel in this process.
  void Notify(absl::string_view channel, absl::string_view payload);
  std::unique_ptr<Subscription> SubscribeNotices(absl::string_view channel,
                                                 NoticeHandler handler);

 private:
  class LogSubscription;
  class NoticeSubscription;

  struct Namespace {
    absl::Mutex mu;
    uint64_t seq ABSL_GUARDED_BY(mu) = 0;
    // Deletions by session ID, until when they stand; and the same by time, to prune.
    absl::flat_hash_map<std::string, absl::Time> deleted ABSL_GUARDED_BY(mu);
    std::multimap<absl::Time, std::string> deleted_by_time ABSL_GUARDED_BY(mu);
    std::map<uint64_t, LogHandler> subscribers ABSL_GUARDED_BY(mu);
  };

  Namespace& Get(absl::string_view ns);
  void Unsubscribe(absl::string_view ns, uint64_t id);
  void PruneLocked(Namespace& log, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(log.mu);

  Clock* const clock_;
  const size_t max_deleted_;
  const std::string log_id_;
  absl::Mutex mu_;  // the maps; never held while a handler runs
  std::map<std::string, std::unique_ptr<Namespace>, std::less<>> logs_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::Mutex notices_mu_;
  std::multimap<std::string, std::pair<uint64_t, NoticeHandler>, std::less<>> notices_
      ABSL_GUARDED_BY(notices_mu_);
};

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_STORE_LOCAL_LOG_H_
