#include "client/near_cache.h"

#include <string>

#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace tlscache::client {
namespace {

using ::tlscache::testing::FakeClock;

// What one entry costs against the bound: key, session and the fixed overhead.
size_t Cost(absl::string_view key, absl::string_view session) {
  return key.size() + session.size() + NearCache::kEntryOverheadBytes;
}

std::string Value(const std::optional<SecretBytes>& got) {
  return got ? std::string(got->view()) : "<none>";
}

TEST(NearCacheTest, ReturnsWhatWasInsertedAndNothingElse) {
  NearCache cache(1 << 20);
  cache.Insert("a", SecretBytes(absl::string_view("session-a")), absl::Seconds(60));
  EXPECT_EQ(Value(cache.Lookup("a")), "session-a");
  EXPECT_EQ(Value(cache.Lookup("b")), "<none>");
  NearCacheStats stats = cache.stats();
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.entries, 1u);
  EXPECT_EQ(stats.bytes, Cost("a", "session-a"));
}

TEST(NearCacheTest, NeverPassesItsBoundAndDropsTheLeastRecentlyUsedFirst) {
  const std::string session(100, 's');
  const size_t cost = Cost("k00", session);  // every key here has three characters
  NearCache cache(3 * cost);  // room for three
  for (const char* key : {"k00", "k01", "k02"}) {
    cache.Insert(key, SecretBytes(session), absl::Seconds(60));
  }
  ASSERT_TRUE(cache.Lookup("k00"));  // k00 is now the most recently used; k01 the least
  cache.Insert("k03", SecretBytes(session), absl::Seconds(60));
  EXPECT_FALSE(cache.Lookup("k01"));
  EXPECT_TRUE(cache.Lookup("k00"));
  EXPECT_TRUE(cache.Lookup("k02"));
  EXPECT_TRUE(cache.Lookup("k03"));
  NearCacheStats stats = cache.stats();
  EXPECT_EQ(stats.entries, 3u);
  EXPECT_EQ(stats.bytes, 3 * cost);
  EXPECT_EQ(stats.evictions, 1u);
  // Many more: the bound holds throughout, and the newest are the ones kept.
  for (int i = 10; i < 100; ++i) {
    cache.Insert("k" + std::to_string(i), SecretBytes(session), absl::Seconds(60));
    EXPECT_LE(cache.stats().bytes, 3 * cost);
  }
  EXPECT_TRUE(cache.Lookup("k99"));
  EXPECT_TRUE(cache.Lookup("k97"));
  EXPECT_FALSE(cache.Lookup("k96"));
}

TEST(NearCacheTest, AnEntryIsNeverReturnedAtOrAfterItsExpiry) {
  FakeClock clock;
  NearCache cache(1 << 20, &clock);
  cache.Insert("short", SecretBytes(absl::string_view("s")), absl::Seconds(10));
  cache.Insert("long", SecretBytes(absl::string_view("l")), absl::Seconds(20));
  clock.Advance(absl::Seconds(10) - absl::Nanoseconds(1));
  EXPECT_TRUE(cache.Lookup("short"));
  clock.Advance(absl::Nanoseconds(1));
  EXPECT_FALSE(cache.Lookup("short"));
  EXPECT_TRUE(cache.Lookup("long"));
  EXPECT_EQ(cache.stats().entries, 1u);  // the expired one was dropped when met
  cache.Insert("gone", SecretBytes(absl::string_view("g")), absl::ZeroDuration());
  EXPECT_FALSE(cache.Lookup("gone"));
}

TEST(NearCacheTest, InsertsDropExpiredEntriesWithoutALookup) {
  FakeClock clock;
  NearCache cache(1 << 20, &clock);
  for (int i = 0; i < 10; ++i) {
    cache.Insert("old" + std::to_string(i), SecretBytes(absl::string_view("x")), absl::Seconds(1));
  }
  clock.Advance(absl::Seconds(2));
  for (int i = 0; i < 10; ++i) {
    cache.Insert("new" + std::to_string(i), SecretBytes(absl::string_view("x")), absl::Seconds(60));
  }
  EXPECT_EQ(cache.stats().entries, 10u);
  EXPECT_EQ(cache.stats().evictions, 0u);  // expiry is not eviction
}

TEST(NearCacheTest, ReplacingAnEntryKeepsTheAccountingExact) {
  NearCache cache(1 << 20);
  cache.Insert("k", SecretBytes(std::string(500, 'a')), absl::Seconds(60));
  cache.Insert("k", SecretBytes(std::string(50, 'b')), absl::Seconds(60));
  EXPECT_EQ(Value(cache.Lookup("k")), std::string(50, 'b'));
  EXPECT_EQ(cache.stats().entries, 1u);
  EXPECT_EQ(cache.stats().bytes, Cost("k", std::string(50, 'b')));
}

TEST(NearCacheTest, AnEntryLargerThanTheBoundIsNotKeptAndEvictsNothing) {
  NearCache cache(Cost("k", std::string(100, 'x')));
  cache.Insert("small", SecretBytes(absl::string_view("x")), absl::Seconds(60));
  cache.Insert("huge", SecretBytes(std::string(1000, 'x')), absl::Seconds(60));
  EXPECT_FALSE(cache.Lookup("huge"));
  EXPECT_TRUE(cache.Lookup("small"));
}

TEST(NearCacheTest, RemoveAndClearDropEntries) {
  NearCache cache(1 << 20);
  cache.Insert("a", SecretBytes(absl::string_view("1")), absl::Seconds(60));
  cache.Insert("b", SecretBytes(absl::string_view("2")), absl::Seconds(60));
  cache.Remove("a");
  cache.Remove("never-there");
  EXPECT_FALSE(cache.Lookup("a"));
  EXPECT_TRUE(cache.Lookup("b"));
  cache.Clear();
  EXPECT_FALSE(cache.Lookup("b"));
  EXPECT_EQ(cache.stats().entries, 0u);
  EXPECT_EQ(cache.stats().bytes, 0u);
}

TEST(NearCacheTest, ALookupHandsOutACopyThatOutlivesTheEntry) {
  NearCache cache(1 << 20);
  cache.Insert("k", SecretBytes(absl::string_view("secret")), absl::Seconds(60));
  std::optional<SecretBytes> copy = cache.Lookup("k");
  cache.Clear();  // wipes and frees the cache's own bytes
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy->view(), "secret");
}

}  // namespace
}  // namespace tlscache::client
