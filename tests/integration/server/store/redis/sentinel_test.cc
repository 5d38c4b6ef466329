// The Redis store on Redis Sentinel, with real redis-server processes: one master, one
// replica and three sentinels. The master is killed with SIGKILL; the store follows the
// failover by itself, fails fast meanwhile, and keeps what was replicated before the kill.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/redis/redis_store.h"
#include "server/store/store_factory.h"
#include "tests/testing/eventually.h"
#include "tests/testing/log_collector.h"
#include "tests/testing/store_sync.h"
#include "tests/testing/store_under_test.h"

namespace tlscache::server {
namespace {

using ::testing::HasSubstr;
using ::tlscache::testing::AwaitRecovery;
using ::tlscache::testing::LogCollector;
using ::tlscache::testing::ConnectStore;
using ::tlscache::testing::DeleteSync;
using ::tlscache::testing::Eventually;
using ::tlscache::testing::GetSync;
using ::tlscache::testing::PutSync;
using ::tlscache::testing::Recovery;
using ::tlscache::testing::StoreKind;
using ::tlscache::testing::StoreUnderTest;

class RedisSentinelTest : public ::testing::Test {
 protected:
  void SetUp() override { TLSCACHE_START_STORE_OR_SKIP(StoreKind::kSentinel, sentinel_); }

  std::unique_ptr<Store> ConnectedStore() {
    auto store = ConnectStore(sentinel_.url, absl::Milliseconds(200));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  // One master, one replica, three sentinels (tests/testing/store_under_test.h).
  StoreUnderTest sentinel_;
};

TEST_F(RedisSentinelTest, TheStoreFindsTheMasterThroughTheSentinels) {
  auto store = ConnectedStore();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->Describe(), HasSubstr("sentinel tlscache"));
  ASSERT_TRUE(PutSync(*store, "ns", "id", "session", absl::Seconds(60)).ok());
  EXPECT_EQ(*sentinel_.redis->Cli({"EXISTS", "tlscache:ns:6964"}), "1\n");
}

TEST_F(RedisSentinelTest, AnUnknownMasterNameIsUnavailableAndSaysWhy) {
  StoreConfig config;
  config.url =
      absl::StrCat("redis-sentinel://127.0.0.1:", sentinel_.sentinels[0]->port(), "/nobody");
  auto store = CreateStore(config);
  ASSERT_TRUE(store.ok());
  // The sentinels' answer, once it came.
  EXPECT_TRUE(Eventually([&] {
    return absl::StrContains((*store)->Health().message(), "does not know master nobody");
  })) << (*store)->Health();
  EXPECT_FALSE((*store)->Health().ok());
  EXPECT_THAT(std::string((*store)->Health().message()), HasSubstr("does not know master nobody"));
  EXPECT_TRUE(absl::IsUnavailable(GetSync(**store, "ns", "id").status()));
}

TEST_F(RedisSentinelTest, AfterTheMasterIsKilledTheStoreFollowsTheFailoverAndLosesNothing) {
  auto store = ConnectedStore();
  ASSERT_NE(store, nullptr);
  constexpr int kEntries = 200;
  for (int i = 0; i < kEntries; ++i) {
    ASSERT_TRUE(
        PutSync(*store, "ns", absl::StrCat("id", i), absl::StrCat("s", i), absl::Seconds(300))
            .ok());
  }
  // Replicated before the kill: the replica holds every entry. (A WAIT from another
  // connection proves nothing: it waits only for that connection's own writes.)
  ASSERT_TRUE(Eventually([&] {
    absl::StatusOr<std::string> size = sentinel_.replica->Cli({"DBSIZE"});
    return size.ok() && *size == absl::StrCat(kEntries, "\n");
  }, absl::Seconds(20))) << "the replica has " << *sentinel_.replica->Cli({"DBSIZE"});

  const absl::Time killed = absl::Now();
  sentinel_.redis->Kill();
  const Recovery recovery = AwaitRecovery(*store, {{"after", "failover"}}, killed);
  ASSERT_TRUE(recovery.recovered) << "no recovery within 30 s";
  std::printf(
      "  figure: Sentinel failover: writes and reads again %s after SIGKILL of the "
      "master; %d calls failed meanwhile, the slowest in %s\n",
      absl::FormatDuration(recovery.after).c_str(), recovery.failed,
      absl::FormatDuration(recovery.slowest_failure).c_str());
  EXPECT_TRUE(recovery.unexpected.empty()) << recovery.unexpected.front();
  EXPECT_LE(recovery.after, absl::Seconds(15));
  EXPECT_LE(recovery.slowest_failure, absl::Seconds(1));  // fail fast, never hang
  int lost = 0;
  for (int i = 0; i < kEntries; ++i) {
    auto entry = GetSync(*store, "ns", absl::StrCat("id", i));
    if (!entry.ok() || entry->session.view() != absl::StrCat("s", i)) ++lost;
  }
  EXPECT_EQ(lost, 0);
  // The new master is the former replica, and it is written to.
  EXPECT_EQ(*sentinel_.replica->Cli({"EXISTS", "tlscache:ns:6166746572"}), "1\n");
}

TEST_F(RedisSentinelTest, TheLogReachesAnotherReplicaBeforeAndAfterAFailover) {
  auto first = ConnectedStore();
  auto second = ConnectedStore();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  LogCollector other(*second, "ns");
  ASSERT_TRUE(other.AppendUntilReceived(*first, "ns", "id", "before the failover"));
  const LogCollector::Received before = other.changes().back();
  sentinel_.redis->Kill();
  // The subscription moves to the master the sentinels elect, the appends too.
  EXPECT_TRUE(other.AppendUntilReceived(*first, "ns", "id", "after the failover", absl::Seconds(40)));
  // Another server holds the log now (its replication ID changed): its numbers are another
  // log's, never taken for a continuation of the old one's.
  EXPECT_GE(other.starts(), 2);
  EXPECT_NE(other.changes().back().log_id, before.log_id);
}

TEST_F(RedisSentinelTest, ADeletionSurvivesTheFailoverThatFollowsIt) {
  auto store = ConnectedStore();
  ASSERT_NE(store, nullptr);
  // The fixture's replica takes the master's stream (StoreUnderTest).
  ASSERT_TRUE(*PutSync(*store, "ns", "ticket", "session", absl::Seconds(60)));
  // Acknowledged only once the replica has it (WAIT): the master dies at once after.
  ASSERT_TRUE(*DeleteSync(*store, "ns", "ticket"));
  sentinel_.redis->Kill();
  ASSERT_TRUE(Eventually([&] { return store->Health().ok(); }, absl::Seconds(40)));
  EXPECT_TRUE(Eventually(
      [&] { return absl::IsNotFound(GetSync(*store, "ns", "ticket").status()); }, absl::Seconds(10)));
  EXPECT_FALSE(*PutSync(*store, "ns", "ticket", "session", absl::Seconds(60)));
  StoreStats stats;
  store->AddStats(&stats);
  ASSERT_TRUE(stats.redis_unreplicated.has_value());
  EXPECT_EQ(*stats.redis_unreplicated, 0u);
}

TEST_F(RedisSentinelTest, ADeletionNoReplicaConfirmedFailsAndTheOneSentAgainStands) {
  auto store = ConnectedStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(*PutSync(*store, "ns", "ticket", "session", absl::Seconds(60)));
  ASSERT_TRUE(*PutSync(*store, "ns", "single-use", "session", absl::Seconds(60)));
  // The replica connected but not reading: the master holds the deletion alone.
  sentinel_.replica->Pause();
  absl::StatusOr<bool> deleted = DeleteSync(*store, "ns", "ticket");
  EXPECT_TRUE(absl::IsUnavailable(deleted.status())) << deleted.status();
  EXPECT_THAT(std::string(deleted.status().message()), HasSubstr("no replica confirmed"));
  // A consuming lookup is not answered either: the session is not handed out while a
  // failover could hand it out again.
  absl::StatusOr<StoreEntry> consumed = GetSync(*store, "ns", "single-use", /*consume=*/true);
  EXPECT_TRUE(absl::IsUnavailable(consumed.status())) << consumed.status();
  StoreStats stats;
  store->AddStats(&stats);
  ASSERT_TRUE(stats.redis_unreplicated.has_value());
  EXPECT_EQ(*stats.redis_unreplicated, 2u);
  sentinel_.replica->Resume();
  // What a node does with a deletion that failed: sends it again until it stands.
  EXPECT_TRUE(Eventually([&] { return DeleteSync(*store, "ns", "ticket").ok(); }));
  sentinel_.redis->Kill();
  ASSERT_TRUE(Eventually([&] { return store->Health().ok(); }, absl::Seconds(40)));
  EXPECT_TRUE(Eventually(
      [&] { return absl::IsNotFound(GetSync(*store, "ns", "ticket").status()); }, absl::Seconds(10)));
  EXPECT_FALSE(*PutSync(*store, "ns", "ticket", "session", absl::Seconds(60)));
}

TEST_F(RedisSentinelTest, WithNoReplicaADeletionIsNotHeldUp) {
  auto store = ConnectedStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(*PutSync(*store, "ns", "ticket", "session", absl::Seconds(60)));
  sentinel_.replica->Kill();
  // The store's next look at the master (INFO, every 5 s) finds no replica.
  ASSERT_TRUE(Eventually([&] {
    StoreStats stats;
    store->AddStats(&stats);
    return stats.redis_master_replicas.has_value() && *stats.redis_master_replicas == 0;
  }, absl::Seconds(15)));
  // Nothing could confirm it and there is nothing a failover could promote: it stands.
  EXPECT_TRUE(*DeleteSync(*store, "ns", "ticket"));
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store, "ns", "ticket", /*consume=*/true).status()));
  ASSERT_TRUE(*PutSync(*store, "ns", "single-use", "session", absl::Seconds(60)));
  EXPECT_TRUE(GetSync(*store, "ns", "single-use", /*consume=*/true).ok());
  StoreStats stats;
  store->AddStats(&stats);
  EXPECT_EQ(*stats.redis_unreplicated, 0u);
}

}  // namespace
}  // namespace tlscache::server
