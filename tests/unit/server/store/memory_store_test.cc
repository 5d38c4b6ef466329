#include "server/store/memory_store.h"
// Unit tests of MemoryStore with a fake clock; the contract shared with the Redis store, and
// concurrency, are in tests/integration/server/store/store_contract_test.cc (StoreContractTest/Memory).

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/store_sync.h"

namespace tlscache::server {
namespace {

using ::tlscache::testing::DeleteSync;
using ::tlscache::testing::FakeClock;
using ::tlscache::testing::GetSync;
using ::tlscache::testing::PutSync;

class MemoryStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<MemoryStore> Make(size_t max_bytes = 1 << 20, int shards = 4,
                                    size_t max_session = 1024) {
    MemoryStoreOptions options;
    options.max_bytes = max_bytes;
    options.num_shards = shards;
    options.max_session_bytes = max_session;
    options.clock = &clock_;
    auto store = MemoryStore::Create(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return *std::move(store);
  }

  FakeClock clock_;
};

TEST_F(MemoryStoreTest, GetReturnsWhatWasPutWithItsRemainingTtl) {
  auto store = Make();
  ASSERT_TRUE(PutSync(*store, "ns", "id1", "session-bytes", absl::Seconds(300)).ok());
  clock_.Advance(absl::Seconds(100));
  auto entry = GetSync(*store, "ns", "id1");
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_EQ(entry->session.view(), "session-bytes");
  EXPECT_EQ(entry->ttl_remaining, absl::Seconds(200));
}

TEST_F(MemoryStoreTest, ExpiryIsExactToTheNanosecond) {
  auto store = Make();
  ASSERT_TRUE(PutSync(*store, "ns", "id", "s", absl::Seconds(10)).ok());
  clock_.Advance(absl::Seconds(10) - absl::Nanoseconds(1));
  EXPECT_TRUE(GetSync(*store, "ns", "id").ok());
  clock_.Advance(absl::Nanoseconds(1));
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store, "ns", "id").status()));
}

TEST_F(MemoryStoreTest, GetAfterTtlExpiryIsNotFoundAndFreesTheEntry) {
  auto store = Make();
  ASSERT_TRUE(PutSync(*store, "ns", "id", "s", absl::Seconds(1)).ok());
  clock_.Advance(absl::Seconds(2));
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store, "ns", "id").status()));
  EXPECT_EQ(store->entries(), 0u);
  EXPECT_EQ(store->bytes(), 0u);
}

TEST_F(MemoryStoreTest, MissIsNotFound) {
  auto store = Make();
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store, "ns", "nope").status()));
}

TEST_F(MemoryStoreTest, ConsumeReturnsTheEntryOnceThenNotFound) {
  auto store = Make();
  ASSERT_TRUE(PutSync(*store, "ns", "id", "ticket", absl::Seconds(60)).ok());
  auto first = GetSync(*store, "ns", "id", /*consume=*/true);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->session.view(), "ticket");
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store, "ns", "id", true).status()));
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store, "ns", "id").status()));
}

TEST_F(MemoryStoreTest, DeleteReportsWhetherTheEntryExisted) {
  auto store = Make();
  ASSERT_TRUE(PutSync(*store, "ns", "id", "s", absl::Seconds(60)).ok());
  EXPECT_EQ(*DeleteSync(*store, "ns", "id"), true);
  EXPECT_EQ(*DeleteSync(*store, "ns", "id"), false);
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store, "ns", "id").status()));
}

TEST_F(MemoryStoreTest, DeleteOfAnExpiredEntryReportsItDidNotExist) {
  auto store = Make();
  ASSERT_TRUE(PutSync(*store, "ns", "id", "s", absl::Seconds(1)).ok());
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(*DeleteSync(*store, "ns", "id"), false);
}

TEST_F(MemoryStoreTest, NamespacesNeverSeeEachOthersEntries) {
  auto store = Make();
  ASSERT_TRUE(PutSync(*store, "tenant-a", "id", "a-session", absl::Seconds(60)).ok());
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store, "tenant-b", "id").status()));
  ASSERT_TRUE(*PutSync(*store, "tenant-b", "id", "b-session", absl::Seconds(60)));
  EXPECT_EQ(GetSync(*store, "tenant-a", "id")->session.view(), "a-session");
  EXPECT_EQ(GetSync(*store, "tenant-b", "id")->session.view(), "b-session");
  // A deletion in one namespace leaves the other's entry alone.
  EXPECT_TRUE(*DeleteSync(*store, "tenant-b", "id"));
  EXPECT_EQ(GetSync(*store, "tenant-a", "id")->session.view(), "a-session");
}

TEST_F(MemoryStoreTest, PutReplacesTheSessionAndTtl) {
  auto store = Make();
  ASSERT_TRUE(PutSync(*store, "ns", "id", "old", absl::Seconds(5)).ok());
  ASSERT_TRUE(PutSync(*store, "ns", "id", "new", absl::Seconds(50)).ok());
  clock_.Advance(absl::Seconds(10));
  auto entry = GetSync(*store, "ns", "id");
  ASSERT_TRUE(entry.ok());
  EXPECT_EQ(entry->session.view(), "new");
  EXPECT_EQ(store->entries(), 1u);
}

TEST_F(MemoryStoreTest, BinarySessionIdsAndSessionsRoundTrip) {
  auto store = Make();
  const std::string id("\0\xff\r\n", 4);
  const std::string session("\0\0\x01\x02\r\n\xff", 7);
  ASSERT_TRUE(PutSync(*store, "ns", id, session, absl::Seconds(60)).ok());
  EXPECT_EQ(GetSync(*store, "ns", id)->session.view(), session);
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store, "ns", std::string("\0\xff\r", 3)).status()));
}

TEST_F(MemoryStoreTest, EvictsLeastRecentlyUsedPastTheByteBound) {
  // One shard holding exactly four entries of this size.
  const std::string session(200, 's');
  const size_t entry_cost =
      std::string("ns:idN").size() + session.size() + MemoryStore::kEntryOverhead;
  auto store = Make(/*max_bytes=*/4 * entry_cost, /*shards=*/1, /*max_session=*/200);
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(PutSync(*store, "ns", absl::StrCat("id", i), session, absl::Seconds(60)).ok());
  }
  // Touch id0 so that id1 is now the least recently used.
  ASSERT_TRUE(GetSync(*store, "ns", "id0").ok());
  ASSERT_TRUE(PutSync(*store, "ns", "id4", session, absl::Seconds(60)).ok());
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store, "ns", "id1").status()));
  for (const char* kept : {"id0", "id2", "id3", "id4"}) {
    EXPECT_TRUE(GetSync(*store, "ns", kept).ok()) << kept;
  }
  EXPECT_LE(store->bytes(), 4 * entry_cost);
}

TEST_F(MemoryStoreTest, BytesStayWithinTheBoundUnderManyPuts) {
  const size_t max_bytes = 64 << 10;
  auto store = Make(max_bytes, /*shards=*/4, /*max_session=*/1024);
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(PutSync(*store, "ns", absl::StrCat("id", i), std::string(100 + i % 900, 'x'),
                        absl::Seconds(60))
                    .ok());
    ASSERT_LE(store->bytes(), max_bytes);
  }
  EXPECT_GT(store->entries(), 0u);
}

TEST_F(MemoryStoreTest, ExpiredEntriesAreReclaimedByLaterPuts) {
  auto store = Make(1 << 20, /*shards=*/1);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(PutSync(*store, "ns", absl::StrCat("old", i), "s", absl::Seconds(1)).ok());
  }
  clock_.Advance(absl::Seconds(5));
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(PutSync(*store, "ns", absl::StrCat("new", i), "s", absl::Seconds(60)).ok());
  }
  EXPECT_EQ(store->entries(), 10u);
}

TEST_F(MemoryStoreTest, CreateRejectsABoundTooSmallForOneSession) {
  MemoryStoreOptions options;
  options.max_bytes = 1000;
  options.num_shards = 16;
  options.max_session_bytes = 16 << 10;
  auto store = MemoryStore::Create(options);
  EXPECT_TRUE(absl::IsInvalidArgument(store.status()));
  EXPECT_NE(store.status().message().find("too small"), absl::string_view::npos);
}

}  // namespace
}  // namespace tlscache::server
