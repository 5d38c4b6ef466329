// SessionWrites, the one path of every change, on the memory store: stores and deletions,
// their checks and lifetimes, and what reaches the log and when.
#include "server/sessions/session_writes.h"

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

class SessionWritesTest : public testing::SessionsTest {};

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

}  // namespace
}  // namespace tlscache::server
