// The contract of server/store/store.h, defined once and run against every store the server
// builds (memory, sealed memory, Redis, sealed Redis, Sentinel, Cluster), each on real servers
// and with real time.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/store/store.h"
#include "tests/testing/store_sync.h"
#include "tests/testing/store_under_test.h"

namespace tlscache::server {
namespace {

using ::tlscache::testing::DeleteSync;
using ::tlscache::testing::Eventually;
using ::tlscache::testing::GetRingSync;
using ::tlscache::testing::GetSync;
using ::tlscache::testing::kEveryStore;
using ::tlscache::testing::PutSync;
using ::tlscache::testing::StoreKind;
using ::tlscache::testing::StoreKindName;
using ::tlscache::testing::StoreUnderTest;
using ::tlscache::testing::SwapRingSync;

class StoreContractTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    TLSCACHE_START_STORE_OR_SKIP(GetParam(), under_test_);
    store_ = under_test_.store.get();
  }

  StoreUnderTest under_test_;
  Store* store_ = nullptr;
};

TEST_P(StoreContractTest, GetReturnsWhatWasPutWithItsRemainingTtl) {
  ASSERT_TRUE(PutSync(*store_, "ns", "id", "session", absl::Seconds(300)).ok());
  auto entry = GetSync(*store_, "ns", "id");
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_EQ(entry->session.view(), "session");
  EXPECT_GT(entry->ttl_remaining, absl::Seconds(298));
  EXPECT_LE(entry->ttl_remaining, absl::Seconds(300));
}

TEST_P(StoreContractTest, GetAfterTtlExpiryIsNotFound) {
  ASSERT_TRUE(PutSync(*store_, "ns", "id", "session", absl::Milliseconds(150)).ok());
  EXPECT_TRUE(GetSync(*store_, "ns", "id").ok());
  EXPECT_TRUE(Eventually([&] { return absl::IsNotFound(GetSync(*store_, "ns", "id").status()); },
                         absl::Seconds(5)));
}

TEST_P(StoreContractTest, ConsumeReturnsOnceThenNotFound) {
  ASSERT_TRUE(PutSync(*store_, "ns", "id", "ticket", absl::Seconds(60)).ok());
  auto first = GetSync(*store_, "ns", "id", /*consume=*/true);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->session.view(), "ticket");
  EXPECT_GT(first->ttl_remaining, absl::Seconds(58));
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store_, "ns", "id", true).status()));
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store_, "ns", "id").status()));
}

TEST_P(StoreContractTest, ConcurrentConsumersGetTheEntryExactlyOnce) {
  for (int round = 0; round < 20; ++round) {
    const std::string id = absl::StrCat("ticket", round);
    ASSERT_TRUE(PutSync(*store_, "ns", id, "ticket", absl::Seconds(60)).ok());
    std::atomic<int> winners{0};
    std::atomic<int> errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&] {
        auto got = GetSync(*store_, "ns", id, true);
        if (got.ok()) {
          winners++;
        } else if (!absl::IsNotFound(got.status())) {
          errors++;
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(winners.load(), 1) << "round " << round;
    EXPECT_EQ(errors.load(), 0);
  }
}

TEST_P(StoreContractTest, DeleteReportsWhetherTheEntryExisted) {
  ASSERT_TRUE(PutSync(*store_, "ns", "id", "s", absl::Seconds(60)).ok());
  auto deleted = DeleteSync(*store_, "ns", "id");
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_TRUE(*deleted);
  EXPECT_FALSE(*DeleteSync(*store_, "ns", "id"));
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store_, "ns", "id").status()));
}

TEST_P(StoreContractTest, NamespacesNeverSeeEachOthersEntries) {
  ASSERT_TRUE(PutSync(*store_, "tenant-a", "id", "a-session", absl::Seconds(60)).ok());
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store_, "tenant-b", "id").status()));
  EXPECT_FALSE(*DeleteSync(*store_, "tenant-b", "id"));
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store_, "tenant-b", "id", true).status()));
  EXPECT_EQ(GetSync(*store_, "tenant-a", "id")->session.view(), "a-session");
}

TEST_P(StoreContractTest, PutReplacesAnExistingEntry) {
  ASSERT_TRUE(PutSync(*store_, "ns", "id", "old", absl::Seconds(60)).ok());
  ASSERT_TRUE(PutSync(*store_, "ns", "id", "new", absl::Seconds(60)).ok());
  EXPECT_EQ(GetSync(*store_, "ns", "id")->session.view(), "new");
}

TEST_P(StoreContractTest, BinaryIdsAndSessionsRoundTrip) {
  const std::string id("\0\xff\r\n:*$", 7);
  std::string session;
  for (int i = 0; i < 4096; ++i) session.push_back(static_cast<char>(i * 7));
  ASSERT_TRUE(PutSync(*store_, "ns", id, session, absl::Seconds(60)).ok());
  EXPECT_EQ(GetSync(*store_, "ns", id)->session.view(), session);
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store_, "ns", id.substr(0, 6)).status()));
}

TEST_P(StoreContractTest, EightConcurrentClientsNeverSeeAnotherKeysSession) {
  std::atomic<int> mismatches{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        const std::string id = absl::StrCat("t", t, "-", i % 20);
        const std::string session = absl::StrCat("session-of-", id, "-", i);
        if (!PutSync(*store_, "ns", id, session, absl::Seconds(60)).ok()) errors++;
        auto got = GetSync(*store_, "ns", id);
        if (!got.ok()) {
          errors++;
        } else if (got->session.view() != session) {
          mismatches++;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(errors.load(), 0);
}

TEST_P(StoreContractTest, ARingIsCreatedOnceAndReplacedOnlyByCompareAndSet) {
  EXPECT_TRUE(absl::IsNotFound(GetRingSync(*store_, "ns").status()));
  EXPECT_TRUE(*SwapRingSync(*store_, "ns", 0, 1, std::string("ring\0one", 8)));
  EXPECT_FALSE(*SwapRingSync(*store_, "ns", 0, 1, "another first ring"));
  auto stored = GetRingSync(*store_, "ns");
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->version, 1u);
  EXPECT_EQ(stored->ring.view(), std::string("ring\0one", 8));
  EXPECT_FALSE(*SwapRingSync(*store_, "ns", 5, 6, "stale"));
  EXPECT_TRUE(*SwapRingSync(*store_, "ns", 1, 2, "ring two"));
  EXPECT_EQ(GetRingSync(*store_, "ns")->ring.view(), "ring two");
  EXPECT_TRUE(absl::IsNotFound(GetRingSync(*store_, "other-ns").status()));
  // Rings and sessions live apart, even under a namespace named like the ring prefix.
  ASSERT_TRUE(PutSync(*store_, "ring", "ns", "session", absl::Seconds(60)).ok());
  EXPECT_EQ(GetRingSync(*store_, "ns")->ring.view(), "ring two");
}

TEST_P(StoreContractTest, OfConcurrentRotationsExactlyOneSwaps) {
  ASSERT_TRUE(*SwapRingSync(*store_, "ns", 0, 1, "v1"));
  for (uint64_t version = 1; version < 11; ++version) {
    std::atomic<int> won{0};
    std::vector<std::thread> replicas;
    for (int r = 0; r < 4; ++r) {
      replicas.emplace_back([&, r] {
        auto swapped = SwapRingSync(*store_, "ns", version, version + 1,
                                    absl::StrCat("v", version + 1, " by ", r));
        if (swapped.ok() && *swapped) won++;
      });
    }
    for (auto& t : replicas) t.join();
    EXPECT_EQ(won.load(), 1) << "version " << version;
    EXPECT_EQ(GetRingSync(*store_, "ns")->version, version + 1);
  }
}

TEST_P(StoreContractTest, ChangesAreSharedExactlyWhenOtherReplicasCanShareTheStore) {
  const bool in_process =
      GetParam() == StoreKind::kMemory || GetParam() == StoreKind::kSealedMemory;
  EXPECT_EQ(store_->SharesChanges(), !in_process);
}

INSTANTIATE_TEST_SUITE_P(EveryStore, StoreContractTest, ::testing::ValuesIn(kEveryStore),
                         StoreKindName);

}  // namespace
}  // namespace tlscache::server
