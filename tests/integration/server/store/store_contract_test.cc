// The contract of server/store/store.h, defined once and run against every store the server
// builds (memory, sealed memory, Redis, sealed Redis, Sentinel, Cluster), each on real servers
// and with real time.
#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/store/store.h"
#include "server/store/store_sync.h"
#include "tests/testing/eventually.h"
#include "tests/testing/log_collector.h"
#include "tests/testing/store_sync.h"
#include "tests/testing/store_under_test.h"

namespace tlscache::server {
namespace {

using ::tlscache::testing::AppendSync;
using ::tlscache::testing::Change;
using ::tlscache::testing::DeleteSync;
using ::tlscache::testing::Eventually;
using ::tlscache::testing::GetRingSync;
using ::tlscache::testing::GetSync;
using ::tlscache::testing::kEveryStore;
using ::tlscache::testing::LiveSync;
using ::tlscache::testing::LogCollector;
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
  auto put = PutSync(*store_, "ns", "id", "session", absl::Seconds(300));
  ASSERT_TRUE(put.ok()) << put.status();
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

TEST_P(StoreContractTest, AFollowerReportReplacesItsLastAndARemovedOneIsGone) {
  auto report = [&](const std::string& follower, uint64_t version, int64_t lease_ends) {
    return AwaitStore<absl::Status>([&](auto done) {
      store_->ReportFollower("ns", {follower, version, lease_ends}, absl::Now() + absl::Seconds(5),
                             std::move(done));
    });
  };
  ASSERT_TRUE(report("node-1/nginx[12]", 3, 1000).ok());
  ASSERT_TRUE(report("node-2/keysync:/run/keys", 2, 2000).ok());
  ASSERT_TRUE(report("node-1/nginx[12]", 4, 3000).ok());
  auto listed = ListFollowersSync(*store_, "ns", absl::Seconds(5));
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 2u);
  std::sort(listed->begin(), listed->end(),
            [](const FollowerReport& a, const FollowerReport& b) { return a.follower < b.follower; });
  EXPECT_EQ((*listed)[0].follower, "node-1/nginx[12]");
  EXPECT_EQ((*listed)[0].version, 4u);
  EXPECT_EQ((*listed)[0].lease_ends_unix_ms, 3000);
  EXPECT_EQ((*listed)[1].version, 2u);
  auto forget = [&](const std::string& follower, uint64_t version, int64_t lease_ends) {
    return AwaitStore<absl::Status>([&](auto done) {
      store_->ForgetFollower("ns", {follower, version, lease_ends}, absl::Now() + absl::Seconds(5),
                             std::move(done));
    });
  };
  ASSERT_TRUE(forget("node-1/nginx[12]", 3, 1000).ok());  // it reported since: stays
  ASSERT_EQ(ListFollowersSync(*store_, "ns", absl::Seconds(5))->size(), 2u);
  ASSERT_TRUE(forget("node-1/nginx[12]", 4, 3000).ok());  // still that report: goes
  ASSERT_EQ(ListFollowersSync(*store_, "ns", absl::Seconds(5))->size(), 1u);
  ASSERT_TRUE(report("node-1/nginx[12]", 5, 4000).ok());
  ASSERT_TRUE(report("node-1/nginx[12]", 0, 0).ok());  // lease 0: removed, whatever it held
  listed = ListFollowersSync(*store_, "ns", absl::Seconds(5));
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].follower, "node-2/keysync:/run/keys");
  EXPECT_TRUE(ListFollowersSync(*store_, "other-ns", absl::Seconds(5))->empty());
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

TEST_P(StoreContractTest, ADeletedSessionIsNotStoredAgainWhileItsDeletionStands) {
  ASSERT_TRUE(*PutSync(*store_, "ns", "id", "session", absl::Seconds(60)));
  ASSERT_TRUE(*DeleteSync(*store_, "ns", "id", absl::Seconds(1)));
  // A put that comes late (sent again after a broken stream, say) is refused: the deletion
  // stands as long as the entry would have lived (60 s), longer than its own hold.
  auto again = PutSync(*store_, "ns", "id", "session", absl::Seconds(60));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(*again);
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store_, "ns", "id").status()));
  EXPECT_FALSE(*LiveSync(*store_, "ns", "id"));
  // Deleting it again says it was not there.
  EXPECT_FALSE(*DeleteSync(*store_, "ns", "id"));
}

TEST_P(StoreContractTest, AConsumedSessionIsNotStoredAgain) {
  ASSERT_TRUE(*PutSync(*store_, "ns", "ticket", "session", absl::Seconds(60)));
  ASSERT_TRUE(GetSync(*store_, "ns", "ticket", /*consume=*/true).ok());
  EXPECT_FALSE(*PutSync(*store_, "ns", "ticket", "session", absl::Seconds(60)));
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store_, "ns", "ticket", true).status()));
}

TEST_P(StoreContractTest, ADeletionOfAnAbsentSessionStandsForItsHoldThenLapses) {
  // The deletion came before the store (reordered): the store is refused for the hold.
  EXPECT_FALSE(*DeleteSync(*store_, "ns", "early", absl::Milliseconds(300)));
  EXPECT_FALSE(*PutSync(*store_, "ns", "early", "session", absl::Seconds(60)));
  EXPECT_TRUE(Eventually(
      [&] { return *PutSync(*store_, "ns", "early", "session", absl::Seconds(60)); },
      absl::Seconds(5)));
  EXPECT_TRUE(*LiveSync(*store_, "ns", "early"));
}

TEST_P(StoreContractTest, LiveSaysWhetherALiveEntryIsThere) {
  ASSERT_TRUE(*PutSync(*store_, "ns", "live", "session", absl::Seconds(60)));
  EXPECT_TRUE(*LiveSync(*store_, "ns", "live"));
  EXPECT_FALSE(*LiveSync(*store_, "ns", "never"));
  EXPECT_FALSE(*LiveSync(*store_, "other-ns", "live"));
}

TEST_P(StoreContractTest, TheLogNumbersWhatIsAppendedAndDeliversItInOrder) {
  LogCollector first(*store_, "ns");
  ASSERT_TRUE(first.Started());
  const LogCollector::Received start = first.received().front();
  std::vector<LogChange> changes;
  changes.push_back(Change("a", "put a"));
  changes.push_back(Change("b", "put b"));
  changes.push_back(Change("a", "delete a", /*deletion=*/true, absl::Seconds(60)));
  ASSERT_TRUE(AppendSync(*store_, "ns", std::move(changes)).ok());
  ASSERT_TRUE(Eventually([&] { return first.changes().size() == 3; })) << first.changes().size();
  const std::vector<LogCollector::Received> got = first.changes();
  EXPECT_EQ(got[0].payload, "put a");
  EXPECT_EQ(got[1].payload, "put b");
  EXPECT_EQ(got[2].payload, "delete a");
  EXPECT_EQ(got[2].session_id, "a");
  EXPECT_TRUE(first.Consecutive());
  // A subscriber that comes later starts where the log stands: after those three.
  LogCollector second(*store_, "ns");
  ASSERT_TRUE(second.Started());
  EXPECT_EQ(second.received().front().seq, start.seq + 3);
  EXPECT_EQ(second.received().front().log_id, got[2].log_id);
  // Another namespace has a log of its own.
  LogCollector other(*store_, "other-ns");
  ASSERT_TRUE(other.Started());
  EXPECT_TRUE(other.changes().empty());
}

TEST_P(StoreContractTest, TheLogLeavesOutAStoreOfASessionItHoldsTheDeletionOf) {
  LogCollector collector(*store_, "ns");
  ASSERT_TRUE(collector.Started());
  std::vector<LogChange> deletion;
  deletion.push_back(Change("k", "delete k", true, absl::Seconds(60)));
  ASSERT_TRUE(AppendSync(*store_, "ns", std::move(deletion)).ok());
  // A replica whose store of k came after the deletion in the log: left out, however late.
  std::vector<LogChange> late;
  late.push_back(Change("k", "late put of k"));
  late.push_back(Change("other", "put of other"));
  ASSERT_TRUE(AppendSync(*store_, "ns", std::move(late)).ok());
  ASSERT_TRUE(Eventually([&] { return collector.Has("put of other"); }));
  EXPECT_FALSE(collector.Has("late put of k"));
  EXPECT_EQ(collector.changes().size(), 2u);
  EXPECT_TRUE(collector.Consecutive());  // nothing numbered for what was left out
}

INSTANTIATE_TEST_SUITE_P(EveryStore, StoreContractTest, ::testing::ValuesIn(kEveryStore),
                         StoreKindName);

}  // namespace
}  // namespace tlscache::server
