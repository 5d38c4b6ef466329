#include "server/sessions/session_feed.h"

#include <algorithm>
#include <deque>
#include <utility>

#include "absl/random/distributions.h"
#include "absl/random/random.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/secret_bytes.h"

namespace tlscache::server {
namespace {

// How long ago `unix_micros` was, for the lag histogram; nothing for an unknown stamp or one
// from a clock ahead of ours.
std::optional<absl::Duration> Since(int64_t unix_micros) {
  if (unix_micros <= 0) return std::nullopt;
  const absl::Duration lag = absl::Now() - absl::FromUnixMicros(unix_micros);
  if (lag < absl::ZeroDuration()) return std::nullopt;
  return lag;
}

constexpr absl::Duration kMinRetry = absl::Milliseconds(100);
constexpr absl::Duration kMaxRetry = absl::Seconds(2);

}  // namespace

FeedChange::FeedChange(uint64_t seq, v1::SessionChange change,
                       std::shared_ptr<std::atomic<size_t>> total)
    : seq_(seq), change_(std::move(change)), bytes_(change_.ByteSizeLong()), total_(std::move(total)) {
  total_->fetch_add(bytes_, std::memory_order_relaxed);
}

FeedChange::~FeedChange() {
  CleanseString(change_.mutable_session());
  total_->fetch_sub(bytes_, std::memory_order_relaxed);
}

// One namespace: its followers here, the subscription that feeds them, the recent changes it
// kept, and the queue of changes this replica appends to its log.
class SessionFeed::Namespace : public std::enable_shared_from_this<SessionFeed::Namespace> {
 public:
  struct Joined {
    absl::Time hand_over_at;  // InfiniteFuture: never
    bool asked = false;
    bool push = true;  // false: upload-only, never handed changes
  };
  // A change waiting for the log; a deletion's may be tried again until `give_up`.
  struct Queued {
    LogChange change;
    AppendDone done;
    absl::Time give_up;
    size_t bytes = 0;
  };

  Namespace(SessionFeed* feed, std::string ns) : feed_(feed), ns_(std::move(ns)) {}

  ~Namespace() {
    for (Queued& queued : queue_) {
      if (queued.done) std::move(queued.done)(absl::UnavailableError("the server is stopping"));
    }
  }

  // Whether the caller must subscribe (Subscribe) for it.
  bool Join(Follower* follower, std::optional<LogPoint> resume_after, absl::Time hand_over_at,
            bool push) {
    absl::MutexLock lock(&mu_);
    followers_.emplace(follower, Joined{hand_over_at, false, push});
    if (!push) {
      follower->Begin(LogPoint(), {}, false);
      return false;
    }
    ++pushers_;
    if (positioned_) {
      BeginLocked(follower, resume_after);
    } else {
      waiting_.emplace(follower, std::move(resume_after));
    }
    if (subscription_ != nullptr || subscribing_) return false;
    subscribing_ = true;
    return true;
  }

  void Subscribe(Store* store) {
    uint64_t generation;
    {
      absl::MutexLock lock(&mu_);
      generation = ++generation_;
    }
    // Not under mu_: a store may deliver the log's position before FollowLog returns.
    std::unique_ptr<Subscription> subscription =
        store->FollowLog(ns_, [this, generation](LogEvent event) { OnLog(generation, event); });
    {
      absl::MutexLock lock(&mu_);
      subscribing_ = false;
      if (pushers_ > 0) {
        subscription_ = std::move(subscription);
        return;
      }
      ForgetLogLocked();  // they all left meanwhile
    }
    subscription.reset();  // outside mu_: its thread may be waiting for it
  }

  void Leave(Follower* follower) {
    std::unique_ptr<Subscription> release;
    {
      absl::MutexLock lock(&mu_);
      auto found = followers_.find(follower);
      if (found == followers_.end()) return;
      if (found->second.push) --pushers_;
      followers_.erase(found);
      waiting_.erase(follower);
      if (pushers_ == 0 && !subscribing_) {
        release = std::move(subscription_);
        ForgetLogLocked();
      }
    }
    release.reset();  // outside mu_ (see Subscribe)
  }

  void Append(LogChange change, AppendDone done, const FeedOptions& options) {
    const absl::Time now = absl::Now();
    const size_t bytes = change.session_id.size() + change.payload.size();
    bool flush = false;
    bool dropped = false;
    {
      absl::MutexLock lock(&mu_);
      // A put may be dropped (a follower then looks it up); a deletion never is.
      if (!change.deletion && queued_bytes_ + bytes > options.max_queued_bytes) {
        dropped = true;
      } else {
        const absl::Time give_up =
            now + (change.deletion ? std::max(change.hold, options.store_timeout)
                                   : options.store_timeout);
        queue_.push_back(Queued{std::move(change), std::move(done), give_up, bytes});
        queued_bytes_ += bytes;
        flush = !in_flight_ && now >= retry_at_;
      }
    }
    if (dropped) {
      feed_->puts_dropped_.fetch_add(1, std::memory_order_relaxed);
      if (done) std::move(done)(absl::UnavailableError("too many changes waiting for the log"));
      return;
    }
    if (flush) Flush(options);
  }

  // Sends what is queued, one append at a time.
  void Flush(const FeedOptions& options) {
    std::vector<Queued> batch;
    std::vector<LogChange> changes;
    {
      absl::MutexLock lock(&mu_);
      if (in_flight_ || queue_.empty()) return;
      size_t bytes = 0;
      while (!queue_.empty() && (batch.empty() || bytes + queue_.front().bytes <= options.max_append_bytes)) {
        bytes += queue_.front().bytes;
        queued_bytes_ -= queue_.front().bytes;
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      in_flight_ = true;
    }
    changes.reserve(batch.size());
    for (const Queued& queued : batch) {
      changes.push_back(LogChange{queued.change.session_id, queued.change.deletion,
                                  queued.change.hold, queued.change.payload.Clone()});
    }
    feed_->appends_.fetch_add(1, std::memory_order_relaxed);
    feed_->store_->AppendChanges(
        ns_, std::move(changes), absl::Now() + options.store_timeout,
        [self = shared_from_this(), batch = std::move(batch), &options](absl::Status status) mutable {
          self->Appended(std::move(batch), status, options);
        });
  }

  void Appended(std::vector<Queued> batch, const absl::Status& status, const FeedOptions& options) {
    if (!status.ok()) feed_->append_failures_.fetch_add(1, std::memory_order_relaxed);
    const absl::Time now = absl::Now();
    std::vector<Queued> retry;
    for (Queued& queued : batch) {
      if (queued.done) std::move(queued.done)(status);
      queued.done = nullptr;
      // A deletion the log must hold is tried again until its hold has passed.
      if (!status.ok() && queued.change.deletion && now < queued.give_up) {
        retry.push_back(std::move(queued));
      }
    }
    bool flush;
    {
      absl::MutexLock lock(&mu_);
      in_flight_ = false;
      for (auto it = retry.rbegin(); it != retry.rend(); ++it) {
        queued_bytes_ += it->bytes;
        queue_.push_front(std::move(*it));
      }
      if (status.ok()) {
        backoff_ = kMinRetry;
        retry_at_ = absl::InfinitePast();
      } else {
        retry_at_ = now + backoff_;
        backoff_ = std::min(backoff_ * 2, kMaxRetry);
      }
      flush = status.ok() && !queue_.empty();
    }
    if (flush) Flush(options);
  }

  // Followers past their age, failed appends due again, and the push budget.
  void Tick(absl::Time now, const FeedOptions& options) {
    bool flush;
    {
      absl::MutexLock lock(&mu_);
      if (options.push_budget > 0) MeasurePushesLocked(now, options);
      for (auto& [follower, joined] : followers_) {
        follower->Tick(now);
        if (now < joined.hand_over_at) continue;
        if (!joined.asked) {
          joined.asked = true;
          follower->HandOver();
        } else if (now >= joined.hand_over_at + options.handover_grace) {
          follower->Stop();
        }
      }
      flush = !in_flight_ && !queue_.empty() && now >= retry_at_;
    }
    if (flush) Flush(options);
  }

  template <typename Fn>
  void ForEachFollower(Fn fn) {
    absl::MutexLock lock(&mu_);
    for (auto& [follower, joined] : followers_) fn(follower, joined);
  }

  bool Idle() {
    absl::MutexLock lock(&mu_);
    return followers_.empty() && !subscribing_ && subscription_ == nullptr && queue_.empty() &&
           !in_flight_;
  }

  size_t follower_count() {
    absl::MutexLock lock(&mu_);
    return followers_.size();
  }

  size_t pusher_count() {
    absl::MutexLock lock(&mu_);
    return static_cast<size_t>(pushers_);
  }

  bool suspended() {
    absl::MutexLock lock(&mu_);
    return suspended_;
  }

  const std::string& ns() const { return ns_; }

  std::atomic<int> users{0};  // callers between Find and the end of their call (Release)

 private:

  // Each second: the pushes the namespace's changes cost here (changes times followers). Past
  // the budget the followers are paused and handed nothing; back under half of it for the
  // calm period, they go on, with a gap.
  void MeasurePushesLocked(absl::Time now, const FeedOptions& options)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (window_start_ == absl::InfinitePast()) window_start_ = now;
    const absl::Duration elapsed = now - window_start_;
    if (elapsed < absl::Seconds(1)) return;
    const double rate =
        static_cast<double>(window_changes_) / absl::ToDoubleSeconds(elapsed) * pushers_;
    window_start_ = now;
    window_changes_ = 0;
    if (!suspended_) {
      if (rate <= options.push_budget) return;
      suspended_ = true;
      calm_since_ = absl::InfiniteFuture();
      feed_->suspensions_.fetch_add(1, std::memory_order_relaxed);
      LogWarning(
          "namespace %s: %.0f pushes a second (its changes a second times %d followers here) "
          "pass the push budget of %.0f: its changes are no longer pushed, and its nodes look "
          "its sessions up in the service, until the rate stays under half the budget for %s",
          ns_, rate, pushers_, options.push_budget, absl::FormatDuration(options.push_calm));
      for (auto& [follower, joined] : followers_) {
        if (joined.push) follower->Pause(true);
      }
      return;
    }
    if (rate > options.push_budget / 2) {
      calm_since_ = absl::InfiniteFuture();
      return;
    }
    if (calm_since_ == absl::InfiniteFuture()) calm_since_ = now;
    if (now - calm_since_ < options.push_calm) return;
    suspended_ = false;
    LogInfo("namespace %s: %.0f pushes a second, under half the push budget for %s: its "
            "changes are pushed again (its followers check their copies first)",
            ns_, rate, absl::FormatDuration(options.push_calm));
    for (auto& [follower, joined] : followers_) {
      if (!joined.push) continue;
      // What they missed meanwhile: a gap, unless nothing was relayed since they stood.
      follower->Deliver(at_.log_id, at_.seq + 1, {}, false);
      if (!paused_) follower->Pause(false);
    }
  }

  void ForgetLogLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++generation_;  // what the old subscription may still deliver is ignored
    positioned_ = false;
    paused_ = false;
    at_ = LogPoint();
    ring_.clear();
    ring_bytes_ = 0;
  }

  // Begins `follower` at the feed's position: after the changes since `resume_after` when
  // the ring still has all of them, else with a gap (unless it had nothing to resume).
  void BeginLocked(Follower* follower, const std::optional<LogPoint>& resume_after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<FeedChangePtr> replay;
    bool gap = false;
    if (resume_after && !(resume_after->log_id == at_.log_id && resume_after->seq == at_.seq)) {
      const uint64_t oldest = ring_.empty() ? at_.seq + 1 : ring_.front()->seq();
      if (resume_after->seq < at_.seq && ContinuesFrom(*resume_after, at_.log_id, oldest)) {
        for (const FeedChangePtr& change : ring_) {
          if (change->seq() > resume_after->seq) replay.push_back(change);
        }
      } else {
        gap = true;
      }
    }
    follower->Begin(at_, std::move(replay), gap);
    if (paused_ || suspended_) follower->Pause(true);
  }

  void OnLog(uint64_t generation, LogEvent& event) {
    absl::MutexLock lock(&mu_);
    if (generation != generation_) return;
    if (event.kind == LogEvent::Kind::kLost) {
      if (!positioned_ || paused_) return;
      paused_ = true;
      for (auto& [follower, joined] : followers_) {
        if (joined.push) follower->Pause(true);
      }
      return;
    }
    if (event.kind == LogEvent::Kind::kStart) {
      const bool moved = !(event.log_id == at_.log_id && event.seq == at_.seq);
      if (moved) {  // the ring cannot span what the subscription did not see
        ring_.clear();
        ring_bytes_ = 0;
      }
      at_ = LogPoint{event.log_id, event.seq};
      if (!positioned_) {
        positioned_ = true;
        for (auto& [follower, resume_after] : waiting_) BeginLocked(follower, resume_after);
        waiting_.clear();
        return;
      }
      const bool resumes = paused_;
      paused_ = false;
      for (auto& [follower, joined] : followers_) {
        if (!joined.push || suspended_) continue;
        follower->Deliver(at_.log_id, at_.seq + 1, {}, false);  // a gap if the log moved on
        if (resumes) follower->Pause(false);
      }
      return;
    }
    if (!positioned_) return;
    // Each run of changes that parse is relayed with its numbers; one that does not (it
    // cannot: the store checked its bytes) leaves a hole that the followers see as a gap.
    std::vector<FeedChangePtr> run;
    uint64_t seq = event.seq;
    for (LogEntry& entry : event.entries) {
      v1::SessionChange change;
      const bool parsed =
          change.ParseFromArray(entry.payload.data(), static_cast<int>(entry.payload.size()));
      entry.payload.Clear();
      if (!parsed || change.session_id() != entry.session_id) {
        CleanseString(change.mutable_session());
        RelayLocked(event.log_id, std::move(run));
        run.clear();
        ++seq;
        continue;
      }
      if (std::optional<absl::Duration> lag = Since(change.origin_unix_micros())) {
        feed_->lag_->Observe({"log"}, *lag);
      }
      run.push_back(std::make_shared<const FeedChange>(seq++, std::move(change), feed_->total_bytes_));
    }
    RelayLocked(event.log_id, std::move(run));
  }

  // Keeps `changes` (consecutive) in the ring and hands them to every follower. Changes the
  // feed already stands past (published between its subscription and its reading of the
  // log's position) are dropped: its start accounted for them.
  void RelayLocked(const std::string& log_id, std::vector<FeedChangePtr> changes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!changes.empty() && log_id == at_.log_id && changes.front()->seq() <= at_.seq) {
      const uint64_t at = at_.seq;
      changes.erase(changes.begin(),
                    std::find_if(changes.begin(), changes.end(),
                                 [at](const FeedChangePtr& c) { return c->seq() > at; }));
    }
    if (changes.empty()) return;
    const uint64_t first = changes.front()->seq();
    if (!ContinuesFrom(at_, log_id, first)) {  // the ring cannot span a gap
      ring_.clear();
      ring_bytes_ = 0;
    }
    at_ = LogPoint{log_id, changes.back()->seq()};
    feed_->changes_->Increment({"log"}, changes.size());
    for (const FeedChangePtr& change : changes) {
      ring_.push_back(change);
      ring_bytes_ += change->bytes();
    }
    const FeedOptions& options = feed_->options_;
    const auto over_budget = [&] {
      return feed_->total_bytes_->load(std::memory_order_relaxed) > options.max_total_bytes;
    };
    while (!ring_.empty() && (ring_bytes_ > options.max_ring_bytes || over_budget())) {
      ring_bytes_ -= ring_.front()->bytes();
      ring_.pop_front();
    }
    const bool over = over_budget();
    window_changes_ += changes.size();
    if (suspended_) return;  // kept in the ring only
    for (auto& [follower, joined] : followers_) {
      if (!joined.push) continue;
      follower->Deliver(log_id, first, changes, over);
      feed_->pushed_.fetch_add(changes.size(), std::memory_order_relaxed);
    }
  }

  SessionFeed* const feed_;
  const std::string ns_;
  absl::Mutex mu_;
  std::map<Follower*, Joined> followers_ ABSL_GUARDED_BY(mu_);
  int pushers_ ABSL_GUARDED_BY(mu_) = 0;  // followers handed changes
  // The push budget (FeedOptions::push_budget).
  absl::Time window_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t window_changes_ ABSL_GUARDED_BY(mu_) = 0;
  bool suspended_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time calm_since_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  // Followers that joined before the log's position was known, with where they resume.
  std::map<Follower*, std::optional<LogPoint>> waiting_ ABSL_GUARDED_BY(mu_);
  bool positioned_ ABSL_GUARDED_BY(mu_) = false;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;  // the subscription broke (kLost), not back yet
  LogPoint at_ ABSL_GUARDED_BY(mu_);
  std::deque<FeedChangePtr> ring_ ABSL_GUARDED_BY(mu_);
  size_t ring_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  std::unique_ptr<Subscription> subscription_ ABSL_GUARDED_BY(mu_);
  bool subscribing_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Queued> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool in_flight_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time retry_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Duration backoff_ ABSL_GUARDED_BY(mu_) = kMinRetry;
};

SessionFeed::SessionFeed(Store* store, FeedOptions options, Metrics* metrics)
    : store_(store),
      options_(std::move(options)),
      total_bytes_(std::make_shared<std::atomic<size_t>>(0)) {
  AddMetrics(metrics);
}

SessionFeed::~SessionFeed() {
  std::map<std::string, std::shared_ptr<Namespace>> namespaces;
  {
    absl::MutexLock lock(&mu_);
    namespaces.swap(namespaces_);
  }
  namespaces.clear();  // outside the lock: a subscription may be waiting for a namespace
}

std::shared_ptr<SessionFeed::Namespace> SessionFeed::Find(const std::string& ns, bool create) {
  absl::MutexLock lock(&mu_);
  auto found = namespaces_.find(ns);
  if (found == namespaces_.end()) {
    if (!create) return nullptr;
    found = namespaces_.emplace(ns, std::make_shared<Namespace>(this, ns)).first;
  }
  found->second->users.fetch_add(1);
  return found->second;
}

void SessionFeed::Release(const std::string& ns) {
  std::shared_ptr<Namespace> released;
  {
    absl::MutexLock lock(&mu_);
    auto found = namespaces_.find(ns);
    if (found == namespaces_.end()) return;
    if (found->second->users.fetch_sub(1) != 1 || !found->second->Idle()) return;
    released = std::move(found->second);
    namespaces_.erase(found);
  }
}

std::vector<std::shared_ptr<SessionFeed::Namespace>> SessionFeed::All() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Namespace>> all;
  for (const auto& [ns, n] : namespaces_) all.push_back(n);
  return all;
}

void SessionFeed::Join(const std::string& ns, Follower* follower,
                       std::optional<LogPoint> resume_after, bool push) {
  absl::Time hand_over_at = absl::InfiniteFuture();
  if (options_.max_follow_age > absl::ZeroDuration()) {
    thread_local absl::BitGen random;
    hand_over_at = absl::Now() + options_.max_follow_age * absl::Uniform(random, 1.0, 1.2);
  }
  std::shared_ptr<Namespace> n = Find(ns, true);
  if (n->Join(follower, std::move(resume_after), hand_over_at, push)) n->Subscribe(store_);
  Release(ns);
}

void SessionFeed::Leave(const std::string& ns, Follower* follower) {
  std::shared_ptr<Namespace> n = Find(ns, false);
  if (n == nullptr) return;
  n->Leave(follower);
  n.reset();
  Release(ns);
}

void SessionFeed::Append(const std::string& ns, LogChange change, AppendDone done) {
  std::shared_ptr<Namespace> n = Find(ns, true);
  n->Append(std::move(change), std::move(done), options_);
  n.reset();
  Release(ns);
}

void SessionFeed::StopAll() {
  for (const auto& n : All()) n->ForEachFollower([](Follower* f, auto&) { f->Stop(); });
}

void SessionFeed::ReauthorizeAll() {
  for (const auto& n : All()) n->ForEachFollower([](Follower* f, auto&) { f->Reauthorize(); });
}

void SessionFeed::HandOverAll(absl::Duration timeout) {
  handing_over_.store(true, std::memory_order_release);
  for (const auto& n : All()) {
    n->ForEachFollower([](Follower* f, Namespace::Joined& joined) {
      joined.asked = true;
      f->HandOver();
    });
  }
  const absl::Time deadline = absl::Now() + timeout;
  while (followers() > 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
}

void SessionFeed::Tick(absl::Time now) {
  for (const auto& n : All()) n->Tick(now, options_);
  // Namespaces left idle by their last append.
  std::vector<std::string> idle;
  for (const auto& n : All()) {
    if (n->Idle()) idle.push_back(n->ns());
  }
  for (const std::string& ns : idle) {
    if (Find(ns, false) != nullptr) Release(ns);
  }
}

bool SessionFeed::PushSuspended(const std::string& ns) {
  std::shared_ptr<Namespace> n = Find(ns, false);
  if (n == nullptr) return false;
  const bool suspended = n->suspended();
  n.reset();
  Release(ns);
  return suspended;
}

size_t SessionFeed::followers() const {
  size_t total = 0;
  for (const auto& n : All()) total += n->follower_count();
  return total;
}

void SessionFeed::AddMetrics(Metrics* metrics) {
  changes_ = metrics->AddCounter("tlscache_feed_changes_total",
                                 "changes of the namespaces' logs this replica relayed to its "
                                 "followers (each once, whatever the number of followers)",
                                 {"source"});
  ended_ = metrics->AddCounter(
      "tlscache_feed_streams_ended_total",
      "Follow streams this replica ended, by why: unread (more batches than the bound not yet "
      "acknowledged), checks (more checks than theirs), denied (the namespace no longer "
      "granted), stuck (a response not read for long)",
      {"reason"});
  lag_ = metrics->AddHistogram(
      "tlscache_push_lag_seconds",
      "from a process sending a change up to this replica relaying it from the log", {"source"});
  using Samples = std::vector<Metrics::GaugeSample>;
  metrics->AddGauge("tlscache_feed_followers",
                    "Follow streams each namespace's changes are pushed to: one per node (its "
                    "follower), whatever the node's processes",
                    {"namespace"}, [this] {
                      Samples samples;
                      for (const auto& n : All()) {
                        samples.push_back({{n->ns()}, static_cast<double>(n->pusher_count())});
                      }
                      return samples;
                    });
  metrics->AddGauge("tlscache_feed_upload_streams",
                    "upload-only Follow streams of each namespace (a node's other processes: "
                    "their stores and deletions, no changes pushed)",
                    {"namespace"}, [this] {
                      Samples samples;
                      for (const auto& n : All()) {
                        samples.push_back({{n->ns()}, static_cast<double>(n->follower_count() -
                                                                          n->pusher_count())});
                      }
                      return samples;
                    });
  const auto counter = [metrics](const char* name, const char* help,
                                 const std::atomic<uint64_t>& value) {
    metrics->AddCounterReader(name, help, [&value] {
      return Samples{{{}, static_cast<double>(value.load())}};
    });
  };
  counter("tlscache_feed_pushed_total",
          "changes written to followers, each counted once per follower it went to (per node: "
          "a farm's pushes per stored session are its nodes)",
          pushed_);
  counter("tlscache_feed_push_suspensions_total",
          "times a namespace's pushes stopped here, over the push budget (--push_budget)",
          suspensions_);
  metrics->AddGauge("tlscache_feed_push_suspended",
                    "1 while a namespace's changes are not pushed from here (over the push "
                    "budget: its nodes look its sessions up in the service)",
                    {"namespace"}, [this] {
                      Samples samples;
                      for (const auto& n : All()) {
                        samples.push_back({{n->ns()}, n->suspended() ? 1.0 : 0.0});
                      }
                      return samples;
                    });
  counter("tlscache_feed_gaps_total",
          "followers told that changes were lost for them (they check their copies)", gaps_);
  counter("tlscache_feed_sent_bytes_total",
          "bytes of the responses written to followers (changes and acknowledgements, before "
          "gRPC's framing)",
          sent_bytes_);
  counter("tlscache_feed_appends_total", "appends to the namespaces' logs", appends_);
  counter("tlscache_feed_append_failures_total",
          "appends that failed (deletions are tried again)", append_failures_);
  counter("tlscache_feed_dropped_total",
          "stores not appended to a log: too many were waiting (their followers look them up)",
          puts_dropped_);
  metrics->AddGauge("tlscache_feed_held_bytes",
                    "bytes of the changes held for followers (rings and queues together)", {},
                    [this] {
                      return Samples{{{}, static_cast<double>(total_bytes_->load())}};
                    });
  // What the followers report of their near caches, summed per namespace.
  auto near = [this](uint64_t (v1::NearCacheReport::*field)() const) {
    return [this, field] {
      Samples samples;
      for (const auto& n : All()) {
        double sum = 0;
        n->ForEachFollower([&](Follower* f, auto&) { sum += static_cast<double>((f->Report().*field)()); });
        samples.push_back({{n->ns()}, sum});
      }
      return samples;
    };
  };
  metrics->AddGauge("tlscache_near_cache_hits",
                    "lookups the followers' near caches answered (since each started following)",
                    {"namespace"}, near(&v1::NearCacheReport::hits));
  metrics->AddGauge("tlscache_near_cache_misses", "lookups the followers' near caches missed",
                    {"namespace"}, near(&v1::NearCacheReport::misses));
  metrics->AddGauge("tlscache_near_cache_entries", "sessions in the followers' near caches",
                    {"namespace"}, near(&v1::NearCacheReport::entries));
  metrics->AddGauge("tlscache_near_cache_bytes", "bytes the followers' near caches hold",
                    {"namespace"}, near(&v1::NearCacheReport::bytes));
}

}  // namespace tlscache::server
