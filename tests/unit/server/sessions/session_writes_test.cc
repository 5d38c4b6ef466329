// SessionWrites (the one path of every change) and SessionFeed (the change log as the
// replica's followers see it), on the memory store: stores and deletions, what reaches the log
// and when, followers placed in the log, resumed, cut loose, and released.
#include "server/sessions/session_writes.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "server/observability/metrics.h"
#include "server/sessions/session_feed.h"
#include "server/store/memory_store.h"
#include "tests/testing/eventually.h"
#include "tests/testing/store_sync.h"

namespace tlscache::server {
namespace {

using ::tlscache::testing::AwaitStore;
using ::tlscache::testing::Eventually;

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
  int gaps_ ABSL_GUARDED_BY(mu_) = 0;
  LogPoint at_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> seen_ ABSL_GUARDED_BY(mu_);
  uint64_t last_ttl_ms_ ABSL_GUARDED_BY(mu_) = 0;
};

class SessionWritesTest : public ::testing::Test {
 protected:
  SessionWritesTest()
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

TEST_F(SessionWritesTest, ZeroTtlMeansTheDefaultAndLargeTtlsAreClamped) {
  ServiceOptions options;
  options.default_ttl = absl::Seconds(300);
  options.max_ttl = absl::Seconds(3600);
  SessionWrites writes(nullptr, nullptr, options);
  EXPECT_EQ(writes.EffectiveTtl(0), absl::Seconds(300));
  EXPECT_EQ(writes.EffectiveTtl(1), absl::Seconds(1));
  EXPECT_EQ(writes.EffectiveTtl(3600), absl::Seconds(3600));
  EXPECT_EQ(writes.EffectiveTtl(3601), absl::Seconds(3600));
  EXPECT_EQ(writes.EffectiveTtl(UINT32_MAX), absl::Seconds(3600));
}

TEST_F(SessionWritesTest, ALifetimeOfMoreThan49DaysReachesTheLogWhole) {
  // 55 days is more milliseconds than 32 bits hold: the log carries them in 64.
  ServiceOptions options;
  options.max_ttl = absl::Hours(24 * 60);
  SessionWrites writes(store_.get(), &feed_, options);
  RecordingFollower follower;
  feed_.Join("ns", &follower, std::nullopt);
  constexpr uint32_t kFiftyFiveDays = 55 * 24 * 3600;
  auto stored = AwaitStore<absl::StatusOr<bool>>([&](auto done) {
    writes.Put("ns", "long", "session", kFiftyFiveDays, 0, absl::Now() + absl::Seconds(5),
               std::move(done));
  });
  ASSERT_TRUE(stored.ok() && *stored);
  EXPECT_EQ(follower.last_ttl_ms(), uint64_t{kFiftyFiveDays} * 1000);
  auto deleted = AwaitStore<absl::StatusOr<bool>>([&](auto done) {
    writes.Delete("ns", "long", kFiftyFiveDays, "", absl::Now() + absl::Seconds(5),
                  std::move(done));
  });
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(follower.last_ttl_ms(), uint64_t{kFiftyFiveDays} * 1000);  // the deletion's hold
  feed_.Leave("ns", &follower);
}

TEST_F(SessionWritesTest, BadInputNamesTheFieldAndReachesNeitherTheStoreNorTheLog) {
  RecordingFollower follower;
  feed_.Join("ns", &follower, std::nullopt);
  auto empty_id = Put("");
  EXPECT_TRUE(absl::IsInvalidArgument(empty_id.status()));
  EXPECT_NE(empty_id.status().message().find("session_id"), absl::string_view::npos);
  EXPECT_TRUE(absl::IsInvalidArgument(Put("id", "").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(Delete("id", std::string(33, 'x')).status()));
  EXPECT_TRUE(follower.seen().empty());
  feed_.Leave("ns", &follower);
}

TEST_F(SessionWritesTest, ADeletedSessionStoredAgainReachesNeitherTheStoreNorTheLog) {
  RecordingFollower follower;
  feed_.Join("ns", &follower, std::nullopt);
  ASSERT_TRUE(follower.begun());
  ASSERT_TRUE(*Put("a"));
  ASSERT_TRUE(*Delete("a"));
  // Sent again after a broken stream, say: refused, not an error.
  auto again = Put("a");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(*again);
  ASSERT_TRUE(*Put("b"));
  ASSERT_TRUE(Eventually([&] { return follower.seen().size() == 3; }));
  EXPECT_EQ(follower.seen(), (std::vector<std::string>{"put a", "delete a", "put b"}));
  EXPECT_EQ(follower.gaps(), 0);
  feed_.Leave("ns", &follower);
}

TEST_F(SessionWritesTest, ADeletionIsAcknowledgedOnlyOnceTheLogHoldsIt) {
  RecordingFollower follower;
  feed_.Join("ns", &follower, std::nullopt);
  ASSERT_TRUE(*Put("a"));
  ASSERT_TRUE(*Delete("a", "tls-id-of-a"));
  // The memory store's log delivers as it appends: by the acknowledgement, it is there.
  const std::vector<std::string> seen = follower.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen.back(), "delete a");
  feed_.Leave("ns", &follower);
}

TEST_F(SessionWritesTest, AConsumingGetPutsTheDeletionInTheLog) {
  RecordingFollower follower;
  feed_.Join("ns", &follower, std::nullopt);
  ASSERT_TRUE(*Put("ticket"));
  auto got = AwaitStore<absl::StatusOr<StoreEntry>>([&](auto done) {
    writes_.Get("ns", "ticket", /*consume=*/true, absl::Now() + absl::Seconds(5), std::move(done));
  });
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(Eventually([&] { return follower.seen().size() == 2; }));
  EXPECT_EQ(follower.seen().back(), "delete ticket");
  feed_.Leave("ns", &follower);
}

TEST_F(SessionWritesTest, AFollowerResumesFromItsPositionWhenTheFeedKeptWhatCameSince) {
  RecordingFollower first;
  feed_.Join("ns", &first, std::nullopt);
  ASSERT_TRUE(*Put("a"));
  const LogPoint after_a = first.at();
  ASSERT_TRUE(*Put("b"));
  ASSERT_TRUE(*Delete("a"));
  // A process moving from another replica, where it had applied up to `a`.
  RecordingFollower moved;
  feed_.Join("ns", &moved, after_a);
  EXPECT_EQ(moved.gaps(), 0);
  EXPECT_EQ(moved.seen(), (std::vector<std::string>{"put b", "delete a"}));
  // One that comes with a position the feed cannot go on from (another log) is cut off.
  RecordingFollower stranger;
  feed_.Join("ns", &stranger, LogPoint{"another-log", 7});
  EXPECT_EQ(stranger.gaps(), 1);
  EXPECT_TRUE(stranger.seen().empty());
  for (RecordingFollower* f : {&first, &moved, &stranger}) feed_.Leave("ns", f);
}

TEST_F(SessionWritesTest, AResumeFromBeforeWhatTheRingKeptIsAGap) {
  RecordingFollower first;
  feed_.Join("ns", &first, std::nullopt);
  ASSERT_TRUE(*Put("a"));
  const LogPoint after_a = first.at();
  const std::string session(1024, 's');
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(*Put(absl::StrCat("filler", i), session));  // > 4 KiB
  RecordingFollower late;
  feed_.Join("ns", &late, after_a);
  EXPECT_EQ(late.gaps(), 1);
  feed_.Leave("ns", &first);
  feed_.Leave("ns", &late);
}

// The value of an unlabelled series in `metrics`' exposition.
double Sample(const Metrics& metrics, absl::string_view name) {
  const std::string text = metrics.Render();
  const std::string line = absl::StrCat("\n", name, " ");
  const size_t at = text.find(line);
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + line.size()));
}

TEST_F(SessionWritesTest, TheLastFollowerLeavingReleasesTheNamespace) {
  RecordingFollower follower;
  feed_.Join("ns", &follower, std::nullopt);
  EXPECT_EQ(feed_.followers(), 1u);
  ASSERT_TRUE(*Put("a"));
  ASSERT_TRUE(*Put("b"));
  EXPECT_GT(Sample(metrics_, "tlscache_feed_held_bytes"), 0);  // its ring
  feed_.Leave("ns", &follower);
  EXPECT_EQ(feed_.followers(), 0u);
  feed_.Tick(absl::Now());
  // Nothing of the namespace is left: the gauge has no sample for it, its ring is gone, and
  // the store's log has no subscriber (a change made now reaches nobody, costs nothing).
  EXPECT_EQ(metrics_.Render().find("tlscache_feed_followers{namespace=\"ns\"}"), std::string::npos);
  EXPECT_EQ(Sample(metrics_, "tlscache_feed_held_bytes"), 0);
  ASSERT_TRUE(*Put("c"));
  EXPECT_EQ(Sample(metrics_, "tlscache_feed_held_bytes"), 0);
  EXPECT_EQ(follower.seen(), (std::vector<std::string>{"put a", "put b"}));
}

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

TEST_F(SessionWritesTest, WhatTheFeedHoldsStaysUnderItsCapAndALaggingFollowerIsToldSo) {
  FeedOptions options;
  options.max_total_bytes = 16 << 10;  // rings 1 MiB each, below: only the total binds
  options.max_ring_bytes = 1 << 20;
  Metrics metrics;
  SessionFeed feed(store_.get(), options, &metrics);
  SessionWrites writes(store_.get(), &feed, ServiceOptions());
  auto put = [&](absl::string_view ns, absl::string_view id) {
    return AwaitStore<absl::StatusOr<bool>>([&](auto done) {
      writes.Put(ns, id, std::string(1024, 's'), 60, 0, absl::Now() + absl::Seconds(5),
                 std::move(done));
    });
  };
  // Two namespaces, each with a follower that keeps up; "slow" has one that holds everything.
  RecordingFollower fast, other;
  HoldingFollower slow;
  feed.Join("ns", &fast, std::nullopt);
  feed.Join("ns", &slow, std::nullopt);
  feed.Join("other", &other, std::nullopt);
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(*put("ns", absl::StrCat("id", i)));
  EXPECT_FALSE(slow.told_over_budget());
  for (int i = 12; i < 40; ++i) ASSERT_TRUE(*put("ns", absl::StrCat("id", i)));
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(*put("other", absl::StrCat("id", i)));
  // Past the cap the rings gave their changes up, and the follower holding them was told.
  EXPECT_TRUE(slow.told_over_budget());
  // Those that keep up miss nothing, in either namespace.
  EXPECT_EQ(fast.seen().size(), 40u);
  EXPECT_EQ(other.seen().size(), 40u);
  EXPECT_EQ(fast.gaps() + other.gaps(), 0);
  // Once it lets go (its stream cut loose), the feed holds no more than its cap, and its
  // rings keep recent changes again.
  slow.LetGo();
  EXPECT_LE(Sample(metrics, "tlscache_feed_held_bytes"), options.max_total_bytes);
  ASSERT_TRUE(*put("ns", "after"));
  EXPECT_GT(Sample(metrics, "tlscache_feed_held_bytes"), 0);
  EXPECT_LE(Sample(metrics, "tlscache_feed_held_bytes"), options.max_total_bytes);
  for (SessionFeed::Follower* f : std::vector<SessionFeed::Follower*>{&fast, &slow}) {
    feed.Leave("ns", f);
  }
  feed.Leave("other", &other);
}

}  // namespace
}  // namespace tlscache::server
