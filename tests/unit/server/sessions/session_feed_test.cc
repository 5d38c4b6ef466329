// SessionFeed, the change log as a replica's followers see it, on the memory store: followers
// placed in the log, resumed, cut loose and released, upload-only streams, what the feed holds,
// and the push budget.
#include "server/sessions/session_feed.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/eventually.h"
#include "tests/testing/session_feed_fixture.h"
#include "tests/testing/store_sync.h"

namespace tlscache::server {
namespace {

using ::tlscache::testing::AwaitStore;
using ::tlscache::testing::Eventually;
using testing::HoldingFollower;
using testing::RecordingFollower;
using testing::Sample;

class SessionFeedTest : public testing::SessionsTest {};

TEST_F(SessionFeedTest, AFollowerResumesFromItsPositionWhenTheFeedKeptWhatCameSince) {
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

TEST_F(SessionFeedTest, AResumeFromBeforeWhatTheRingKeptIsAGap) {
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

TEST_F(SessionFeedTest, TheLastFollowerLeavingReleasesTheNamespace) {
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

TEST_F(SessionFeedTest, WhatTheFeedHoldsStaysUnderItsCapAndALaggingFollowerIsToldSo) {
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

TEST_F(SessionFeedTest, AnUploadOnlyFollowerIsBegunAtOnceAndHandedNoChanges) {
  RecordingFollower pusher, uploader;
  feed_.Join("ns", &pusher, std::nullopt);
  feed_.Join("ns", &uploader, std::nullopt, /*push=*/false);
  EXPECT_TRUE(uploader.begun());
  EXPECT_EQ(feed_.followers(), 2u);
  ASSERT_TRUE(*Put("a"));
  ASSERT_TRUE(*Delete("a"));
  ASSERT_TRUE(Eventually([&] { return pusher.seen().size() == 2; }));
  EXPECT_TRUE(uploader.seen().empty());
  feed_.Leave("ns", &pusher);
  feed_.Leave("ns", &uploader);
}

// The budget is measured over the feed's ticks, at the times they are given: no waiting.
TEST_F(SessionFeedTest, PastThePushBudgetFollowersArePausedAndGoOnWithAGapOnceCalm) {
  FeedOptions options;
  options.push_budget = 10;
  options.push_calm = absl::Seconds(5);
  Metrics metrics;
  SessionFeed feed(store_.get(), options, &metrics);
  SessionWrites writes(store_.get(), &feed, ServiceOptions());
  auto put = [&](absl::string_view id) {
    return AwaitStore<absl::StatusOr<bool>>([&](auto done) {
      writes.Put("ns", id, "session", 60, 0, absl::Now() + absl::Seconds(5), std::move(done));
    });
  };
  RecordingFollower follower;
  feed.Join("ns", &follower, std::nullopt);
  const absl::Time t0 = absl::Now();
  feed.Tick(t0);
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(*put(absl::StrCat("id", i)));
  ASSERT_TRUE(Eventually([&] { return follower.seen().size() == 30; }));
  feed.Tick(t0 + absl::Seconds(1));  // 30 pushes a second, over 10
  EXPECT_TRUE(feed.PushSuspended("ns"));
  EXPECT_TRUE(follower.paused()) << "its near cache must not answer what it is not told";
  for (int i = 30; i < 35; ++i) ASSERT_TRUE(*put(absl::StrCat("id", i)));
  EXPECT_EQ(follower.seen().size(), 30u) << "a change was pushed past the budget";

  feed.Tick(t0 + absl::Seconds(2));  // 5 a second: half the budget, calm from here
  feed.Tick(t0 + absl::Seconds(6));
  EXPECT_TRUE(feed.PushSuspended("ns")) << "went on before the calm period";
  EXPECT_EQ(follower.gaps(), 0);
  feed.Tick(t0 + absl::Seconds(7));
  EXPECT_FALSE(feed.PushSuspended("ns"));
  EXPECT_FALSE(follower.paused());
  EXPECT_EQ(follower.gaps(), 1) << "the five changes it missed are a gap to check";
  ASSERT_TRUE(*put("after"));
  ASSERT_TRUE(Eventually([&] { return follower.seen().size() == 31; }));
  EXPECT_EQ(follower.seen().back(), "put after");
  feed.Leave("ns", &follower);
}

}  // namespace
}  // namespace tlscache::server
