#include "client/node_cache.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fork_child.h"

namespace tlscache::client {

// Takes the lock of the shard `key` falls in, as a process that is then killed would.
class NodeCacheTestPeer {
 public:
  static void LockShardOf(NodeCache& cache, absl::string_view key) {
    uint64_t h = 14695981039346656037ull;  // the cache's own hash (FNV-1a)
    for (unsigned char c : key) {
      h ^= c;
      h *= 1099511628211ull;
    }
    cache.Lock(cache.ShardOf(h));
  }
  static const uint8_t* Data(const NodeCache& cache) { return cache.mapping_.data(); }
};

namespace {

using ::tlscache::testing::ExitedZero;
using ::tlscache::testing::FakeClock;
using ::tlscache::testing::InChild;

std::string Value(const std::optional<SecretBytes>& got) {
  return got ? std::string(got->view()) : "<none>";
}

std::unique_ptr<NodeCache> Make(size_t bytes, Clock* clock = Clock::Real()) {
  absl::StatusOr<std::unique_ptr<NodeCache>> cache = NodeCache::Create(bytes, clock);
  EXPECT_TRUE(cache.ok()) << cache.status();
  return *std::move(cache);
}

TEST(NodeCacheTest, ReturnsWhatWasInsertedAndNothingElse) {
  auto cache = Make(1 << 20);
  cache->Insert("a", "session-a", absl::Seconds(60));
  EXPECT_EQ(Value(cache->Lookup("a")), "session-a");
  EXPECT_EQ(Value(cache->Lookup("b")), "<none>");
  NearCacheStats stats = cache->stats();
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.entries, 1u);
  EXPECT_EQ(stats.bytes, 56u);  // the header, "a" and the session, rounded up to 8
}

TEST(NodeCacheTest, ReplacingAKeyKeepsOneEntryWithTheNewSession) {
  auto cache = Make(1 << 20);
  cache->Insert("a", "old", absl::Seconds(60));
  cache->Insert("a", "new", absl::Seconds(60));
  EXPECT_EQ(Value(cache->Lookup("a")), "new");
  EXPECT_EQ(cache->stats().entries, 1u);
}

TEST(NodeCacheTest, RemoveDropsTheEntry) {
  auto cache = Make(1 << 20);
  cache->Insert("a", "session-a", absl::Seconds(60));
  cache->Remove("a");
  EXPECT_EQ(Value(cache->Lookup("a")), "<none>");
  EXPECT_EQ(cache->stats().entries, 0u);
  EXPECT_EQ(cache->stats().bytes, 0u);
}

TEST(NodeCacheTest, AnEntryIsNeverReturnedAfterItsExpiry) {
  FakeClock clock;
  auto cache = Make(1 << 20, &clock);
  cache->Insert("a", "session-a", absl::Seconds(10));
  clock.Advance(absl::Seconds(10) - absl::Microseconds(1));
  EXPECT_EQ(Value(cache->Lookup("a")), "session-a");
  clock.Advance(absl::Microseconds(1));
  EXPECT_EQ(Value(cache->Lookup("a")), "<none>");
  EXPECT_EQ(cache->stats().entries, 0u);
  cache->Insert("b", "session-b", absl::ZeroDuration());
  EXPECT_EQ(Value(cache->Lookup("b")), "<none>");
}

TEST(NodeCacheTest, NeverPassesItsBoundAndDropsTheOldestFirst) {
  const size_t bound = 256 << 10;
  auto cache = Make(bound);
  const std::string session(200, 's');
  const int n = 10000;  // about 2.5 MB of entries through a 256 KiB cache
  for (int i = 0; i < n; ++i) {
    cache->Insert(absl::StrCat("key-", i), session, absl::Seconds(60));
    ASSERT_LE(cache->stats().bytes, bound);
  }
  const NearCacheStats stats = cache->stats();
  EXPECT_GT(stats.evictions, 0u);
  EXPECT_EQ(stats.entries + stats.evictions, static_cast<uint64_t>(n));
  EXPECT_EQ(Value(cache->Lookup(absl::StrCat("key-", n - 1))), session);  // the newest stays
  EXPECT_EQ(Value(cache->Lookup("key-0")), "<none>");                    // the oldest went
  // The most recent entries are all there: the ring drops from its old end.
  for (int i = n - 50; i < n; ++i) {
    EXPECT_EQ(Value(cache->Lookup(absl::StrCat("key-", i))), session) << i;
  }
}

TEST(NodeCacheTest, AnEntryLargerThanHalfAShardIsNotKept) {
  auto cache = Make(64 << 10);
  cache->Insert("big", std::string(40 << 10, 'x'), absl::Seconds(60));
  EXPECT_EQ(Value(cache->Lookup("big")), "<none>");
  cache->Insert("key-too-long-" + std::string(NodeCache::kMaxKeyBytes, 'k'), "s",
                absl::Seconds(60));
  EXPECT_EQ(cache->stats().entries, 0u);
}

TEST(NodeCacheTest, KeysListsTheLiveKeysUnderAPrefix) {
  FakeClock clock;
  auto cache = Make(1 << 20, &clock);
  cache->Insert("\x01" "a", "s", absl::Seconds(60));
  cache->Insert("\x01" "b", "s", absl::Seconds(1));
  cache->Insert("\x02" "c", "s", absl::Seconds(60));
  clock.Advance(absl::Seconds(2));
  EXPECT_EQ(cache->Keys("\x01"), std::vector<std::string>{"a"});
  EXPECT_EQ(cache->Keys("\x02"), std::vector<std::string>{"c"});
}

TEST(NodeCacheTest, ProcessesForkedAfterItWasMadeShareIt) {
  auto cache = Make(1 << 20);
  cache->Insert("from-parent", "p", absl::Seconds(60));
  const int status = InChild([&] {
    if (Value(cache->Lookup("from-parent")) != "p") _exit(1);
    cache->Insert("from-child", "c", absl::Seconds(60));
  });
  ASSERT_TRUE(ExitedZero(status));
  EXPECT_EQ(Value(cache->Lookup("from-child")), "c");
}

TEST(NodeCacheTest, AProcessKilledHoldingAShardsLockWedgesNothing) {
  auto cache = Make(1 << 20);
  cache->Insert("victim", "v", absl::Seconds(60));
  cache->Insert("bystander", "b", absl::Seconds(60));
  const int status = InChild([&] {
    NodeCacheTestPeer::LockShardOf(*cache, "victim");
    raise(SIGKILL);  // dies holding it
  });
  ASSERT_TRUE(WIFSIGNALED(status));
  // The next locker finds the holder dead and empties that shard; it does not wait.
  EXPECT_EQ(Value(cache->Lookup("victim")), "<none>");
  EXPECT_EQ(cache->stats().repairs, 1u);
  cache->Insert("victim", "again", absl::Seconds(60));
  EXPECT_EQ(Value(cache->Lookup("victim")), "again");
}

TEST(NodeCacheTest, SessionBytesAreWipedFromTheMappingWhenDropped) {
  FakeClock clock;
  auto cache = Make(64 << 10, &clock);
  const std::string secret = "MASTER-SECRET-0123456789abcdef";
  cache->Insert("k", secret, absl::Seconds(60));
  auto contains = [&] {
    const auto* data = reinterpret_cast<const char*>(NodeCacheTestPeer::Data(*cache));
    return std::string(data, cache->max_bytes()).find(secret) != std::string::npos;
  };
  ASSERT_TRUE(contains());
  cache->Remove("k");
  EXPECT_FALSE(contains());
  cache->Insert("k", secret, absl::Seconds(60));
  cache->Insert("k", "replaced", absl::Seconds(60));
  EXPECT_FALSE(contains());
  // Expired, found so by a lookup.
  cache->Insert("k", secret, absl::Seconds(1));
  clock.Advance(absl::Seconds(2));
  EXPECT_FALSE(cache->Lookup("k").has_value());
  EXPECT_FALSE(contains());
  // Passed over by newer entries (the oldest go first).
  cache->Insert("k", secret, absl::Seconds(60));
  for (int i = 0; i < 2000; ++i) {
    cache->Insert(absl::StrCat("other-", i), std::string(100, 'o'), absl::Seconds(60));
  }
  EXPECT_FALSE(cache->Lookup("k").has_value());
  EXPECT_FALSE(contains());
}

}  // namespace
}  // namespace tlscache::client
