// What the unit tests of the session side (server/sessions/) share: followers of a SessionFeed
// that record what it gives them, and a fixture of the memory store, a feed and the write
// path on them.
#ifndef TLSCACHE_TESTS_TESTING_SESSION_FEED_FIXTURE_H_
#define TLSCACHE_TESTS_TESTING_SESSION_FEED_FIXTURE_H_

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "server/observability/metrics.h"
#include "server/sessions/session_feed.h"
#include "server/sessions/session_writes.h"
#include "server/store/memory_store.h"
#include "tests/testing/store_sync.h"

namespace tlscache::server::testing {

using ::tlscache::testing::AwaitStore;

// The feed's calls other than Begin and Deliver, ignored (the fakes below implement those).
class QuietFollower : public SessionFeed::Follower {
 public:
  void Stop() override {}
  void HandOver() override {}
  void Reauthorize() override {}
  void Tick(absl::Time) override {}
  void Pause(bool) override {}
  v1::NearCacheReport Report() const override { return {}; }
};

// A follower that records what the feed gives it.
class RecordingFollower final : public QuietFollower {
 public:
  void Pause(bool paused) override {
    absl::MutexLock lock(&mu_);
    paused_ = paused;
  }
  void Begin(const LogPoint& at, std::vector<FeedChangePtr> replay, bool gap) override {
    absl::MutexLock lock(&mu_);
    begun_ = true;
    at_ = at;
    gaps_ += gap ? 1 : 0;
    for (const FeedChangePtr& change : replay) Take(change);
  }
  void Deliver(absl::string_view log_id, uint64_t first, const std::vector<FeedChangePtr>& changes,
               bool over_budget) override {
    absl::MutexLock lock(&mu_);
    const uint64_t last = changes.empty() ? first - 1 : changes.back()->seq();
    if (!ContinuesFrom(at_, log_id, first) || (changes.empty() && last != at_.seq)) ++gaps_;
    at_.log_id = std::string(log_id);
    for (const FeedChangePtr& change : changes) Take(change);
    at_.seq = std::max(at_.seq, last);
  }

  bool begun() {
    absl::MutexLock lock(&mu_);
    return begun_;
  }
  bool paused() {
    absl::MutexLock lock(&mu_);
    return paused_;
  }
  int gaps() {
    absl::MutexLock lock(&mu_);
    return gaps_;
  }
  LogPoint at() {
    absl::MutexLock lock(&mu_);
    return at_;
  }
  uint64_t last_ttl_ms() {
    absl::MutexLock lock(&mu_);
    return last_ttl_ms_;
  }
  // "put ID" or "delete ID" for each change, in order.
  std::vector<std::string> seen() {
    absl::MutexLock lock(&mu_);
    return seen_;
  }

 private:
  void Take(const FeedChangePtr& change) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const v1::SessionChange& c = change->change();
    seen_.push_back(absl::StrCat(c.session().empty() ? "delete " : "put ", c.session_id()));
    last_ttl_ms_ = c.ttl_ms();
    at_.seq = change->seq();
  }

  absl::Mutex mu_;
  bool begun_ ABSL_GUARDED_BY(mu_) = false;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  int gaps_ ABSL_GUARDED_BY(mu_) = 0;
  LogPoint at_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> seen_ ABSL_GUARDED_BY(mu_);
  uint64_t last_ttl_ms_ ABSL_GUARDED_BY(mu_) = 0;
};

// A follower that keeps every change it is given (as a stream that cannot write does) and
// records whether the feed said it holds too much.
class HoldingFollower final : public QuietFollower {
 public:
  void Begin(const LogPoint&, std::vector<FeedChangePtr>, bool) override {}
  void Deliver(absl::string_view, uint64_t, const std::vector<FeedChangePtr>& changes,
               bool over_budget) override {
    absl::MutexLock lock(&mu_);
    held_.insert(held_.end(), changes.begin(), changes.end());
    told_over_budget_ |= over_budget;
  }

  bool told_over_budget() {
    absl::MutexLock lock(&mu_);
    return told_over_budget_;
  }
  void LetGo() {
    absl::MutexLock lock(&mu_);
    held_.clear();
  }

 private:
  absl::Mutex mu_;
  std::vector<FeedChangePtr> held_ ABSL_GUARDED_BY(mu_);
  bool told_over_budget_ ABSL_GUARDED_BY(mu_) = false;
};

// The value of an unlabelled series in `metrics`' exposition.
inline double Sample(const Metrics& metrics, absl::string_view name) {
  const std::string text = metrics.Render();
  const std::string line = absl::StrCat("\n", name, " ");
  const size_t at = text.find(line);
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + line.size()));
}

class SessionsTest : public ::testing::Test {
 protected:
  SessionsTest()
      : store_(*MemoryStore::Create(MemoryStoreOptions())),
        feed_(store_.get(), Options(), &metrics_),
        writes_(store_.get(), &feed_, ServiceOptions()) {}

  static FeedOptions Options() {
    FeedOptions options;
    options.max_ring_bytes = 4 << 10;
    options.max_follower_bytes = 8 << 10;
    return options;
  }

  absl::StatusOr<bool> Put(absl::string_view id, absl::string_view session = "session") {
    return AwaitStore<absl::StatusOr<bool>>([&](auto done) {
      writes_.Put("ns", id, session, 60, 0, absl::Now() + absl::Seconds(5), std::move(done));
    });
  }
  absl::StatusOr<bool> Delete(absl::string_view id, absl::string_view tls_id = "") {
    return AwaitStore<absl::StatusOr<bool>>([&](auto done) {
      writes_.Delete("ns", id, 60, tls_id, absl::Now() + absl::Seconds(5), std::move(done));
    });
  }

  Metrics metrics_;
  std::unique_ptr<MemoryStore> store_;
  SessionFeed feed_;
  SessionWrites writes_;
};

}  // namespace tlscache::server::testing

#endif  // TLSCACHE_TESTS_TESTING_SESSION_FEED_FIXTURE_H_
