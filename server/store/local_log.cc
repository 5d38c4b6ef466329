#include "server/store/local_log.h"

#include <utility>

#include "common/openssl_util.h"

namespace tlscache::server {

class LocalLog::LogSubscription final : public Subscription {
 public:
  LogSubscription(LocalLog* log, std::string ns, uint64_t id)
      : log_(log), ns_(std::move(ns)), id_(id) {}
  ~LogSubscription() override { log_->Unsubscribe(ns_, id_); }

 private:
  LocalLog* const log_;
  const std::string ns_;
  const uint64_t id_;
};

class LocalLog::NoticeSubscription final : public Subscription {
 public:
  NoticeSubscription(LocalLog* log, std::string channel, uint64_t id)
      : log_(log), channel_(std::move(channel)), id_(id) {}
  ~NoticeSubscription() override {
    absl::MutexLock lock(&log_->notices_mu_);
    auto [begin, end] = log_->notices_.equal_range(channel_);
    for (auto it = begin; it != end; ++it) {
      if (it->second.first == id_) {
        log_->notices_.erase(it);
        return;
      }
    }
  }

 private:
  LocalLog* const log_;
  const std::string channel_;
  const uint64_t id_;
};

LocalLog::LocalLog(Clock* clock, size_t max_deleted)
    : clock_(clock), max_deleted_(max_deleted), log_id_(RandomId()) {}

LocalLog::Namespace& LocalLog::Get(absl::string_view ns) {
  absl::MutexLock lock(&mu_);
  auto found = logs_.find(ns);
  if (found == logs_.end()) {
    found = logs_.emplace(std::string(ns), std::make_unique<Namespace>()).first;
  }
  return *found->second;  // never erased: the namespaces of one process are few
}

void LocalLog::PruneLocked(Namespace& log, absl::Time now) {
  while (!log.deleted_by_time.empty() &&
         (log.deleted_by_time.begin()->first <= now || log.deleted.size() > max_deleted_)) {
    auto oldest = log.deleted_by_time.begin();
    auto entry = log.deleted.find(oldest->second);
    if (entry != log.deleted.end() && entry->second == oldest->first) log.deleted.erase(entry);
    log.deleted_by_time.erase(oldest);
  }
}

void LocalLog::Append(absl::string_view ns, std::vector<LogChange> changes) {
  Namespace& log = Get(ns);
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&log.mu);
  PruneLocked(log, now);
  LogEvent event;
  event.kind = LogEvent::Kind::kChanges;
  event.log_id = log_id_;
  event.seq = log.seq + 1;
  for (LogChange& change : changes) {
    if (change.deletion) {
      const absl::Time until = now + change.hold;
      auto [it, inserted] = log.deleted.try_emplace(change.session_id, until);
      if (inserted || it->second < until) {
        it->second = until;
        log.deleted_by_time.emplace(until, change.session_id);
      }
    } else if (auto it = log.deleted.find(change.session_id);
               it != log.deleted.end() && it->second > now) {
      continue;  // stored again after its deletion: left out
    }
    event.entries.push_back(LogEntry{std::move(change.session_id), std::move(change.payload)});
  }
  if (event.entries.empty()) return;
  log.seq += event.entries.size();
  for (auto& [id, handler] : log.subscribers) {
    LogEvent copy;
    copy.kind = event.kind;
    copy.log_id = event.log_id;
    copy.seq = event.seq;
    copy.entries.reserve(event.entries.size());
    for (const LogEntry& entry : event.entries) {
      copy.entries.push_back(LogEntry{entry.session_id, entry.payload.Clone()});
    }
    handler(std::move(copy));
  }
}

std::unique_ptr<Subscription> LocalLog::Follow(absl::string_view ns, LogHandler handler) {
  Namespace& log = Get(ns);
  uint64_t id;
  {
    absl::MutexLock lock(&mu_);
    id = next_id_++;
  }
  absl::MutexLock lock(&log.mu);
  LogEvent start;
  start.kind = LogEvent::Kind::kStart;
  start.log_id = log_id_;
  start.seq = log.seq;
  handler(std::move(start));
  log.subscribers.emplace(id, std::move(handler));
  return std::make_unique<LogSubscription>(this, std::string(ns), id);
}

void LocalLog::Unsubscribe(absl::string_view ns, uint64_t id) {
  Namespace& log = Get(ns);
  absl::MutexLock lock(&log.mu);
  log.subscribers.erase(id);
}

void LocalLog::Notify(absl::string_view channel, absl::string_view payload) {
  // Under the lock, so that no handler runs after its subscription ended.
  absl::MutexLock lock(&notices_mu_);
  auto [begin, end] = notices_.equal_range(channel);
  for (auto it = begin; it != end; ++it) it->second.second(payload);
}

std::unique_ptr<Subscription> LocalLog::SubscribeNotices(absl::string_view channel,
                                                         NoticeHandler handler) {
  uint64_t id;
  {
    absl::MutexLock lock(&mu_);
    id = next_id_++;
  }
  absl::MutexLock lock(&notices_mu_);
  notices_.emplace(std::string(channel), std::make_pair(id, std::move(handler)));
  return std::make_unique<NoticeSubscription>(this, std::string(channel), id);
}

}  // namespace tlscache::server
