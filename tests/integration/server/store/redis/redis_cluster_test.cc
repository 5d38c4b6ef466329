// The Redis store on a real Redis Cluster: three masters, each with a replica, made with
// `redis-cli --cluster create`. Entries spread over every master by slot; a slot range moved
// with `redis-cli --cluster reshard` under load; a master killed with SIGKILL and replaced by
// its replica. Never wrong data; errors only while the cluster changes, and fast.
#include "tests/testing/eventually.h"
#include "tests/testing/redis_cluster.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/redis/cluster_slots.h"
#include "server/store/store_factory.h"
#include "tests/testing/log_collector.h"
#include "tests/testing/store_sync.h"
#include "tests/testing/store_under_test.h"

namespace tlscache::server {
namespace {

using ::testing::HasSubstr;
using ::tlscache::testing::AwaitRecovery;
using ::tlscache::testing::LogCollector;
using ::tlscache::testing::ConnectStore;
using ::tlscache::testing::GetSync;
using ::tlscache::testing::Probe;
using ::tlscache::testing::PutSync;
using ::tlscache::testing::Recovery;
using ::tlscache::testing::RedisClusterServers;
using ::tlscache::testing::StoreKind;
using ::tlscache::testing::StoreUnderTest;

constexpr int kMasters = 3;

std::string Id(int i) { return absl::StrCat("id", i); }
std::string Session(int i) { return absl::StrCat("session-", i); }
std::string RedisKeyOf(const std::string& id) {
  return absl::StrCat("tlscache:ns:", absl::BytesToHexString(id));
}

class RedisClusterTest : public ::testing::Test {
 protected:
  // kCluster: kMasters masters, each with a replica (tests/testing/store_under_test.h).
  void SetUp() override {
    TLSCACHE_START_STORE_OR_SKIP(StoreKind::kCluster, under_test_);
    cluster_ = under_test_.cluster.get();
    store_ = under_test_.store.get();
  }

  void Fill(int entries) {
    for (int i = 0; i < entries; ++i) {
      ASSERT_TRUE(PutSync(*store_, "ns", Id(i), Session(i), absl::Seconds(600)).ok()) << i;
    }
  }

  // Entries 0..entries-1 that are missing or wrong, or that the cluster still does not serve
  // 3 s from now: a node comes back from the cluster's failed state a little after the others.
  int Lost(int entries) {
    int lost = 0;
    const absl::Time give_up = absl::Now() + absl::Seconds(3);
    for (int i = 0; i < entries; ++i) {
      auto entry = GetSync(*store_, "ns", Id(i));
      while (absl::IsUnavailable(entry.status()) && absl::Now() < give_up) {
        absl::SleepFor(absl::Milliseconds(20));
        entry = GetSync(*store_, "ns", Id(i));
      }
      if (!entry.ok() || entry->session.view() != Session(i)) {
        ++lost;
        std::printf("  entry %d: %s\n", i,
                    entry.ok() ? "another value" : entry.status().ToString().c_str());
      }
    }
    return lost;
  }

  std::vector<RedisClusterServers::Node> Masters() {
    auto nodes = cluster_->Nodes();
    EXPECT_TRUE(nodes.ok()) << nodes.status();
    std::vector<RedisClusterServers::Node> masters;
    if (nodes.ok()) {
      for (const auto& node : *nodes) {
        if (node.master && node.slots > 0) masters.push_back(node);
      }
    }
    return masters;
  }

  int KeysOn(int port) {
    auto size = cluster_->server(port).Cli({"DBSIZE"});
    int keys = -1;
    if (size.ok()) (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(*size), &keys);
    return keys;
  }

  StoreUnderTest under_test_;
  RedisClusterServers* cluster_ = nullptr;  // owned by under_test_
  Store* store_ = nullptr;                  // owned by under_test_
};

TEST_F(RedisClusterTest, SlotsAgreeWithTheClusters) {
  for (const std::string key : {"foo", "tlscache:ns:6964", "{tag}a", "a{tag}", "x{}y", "{{z}}"}) {
    auto slot = cluster_->Cli({"CLUSTER", "KEYSLOT", key});
    ASSERT_TRUE(slot.ok()) << slot.status();
    EXPECT_EQ(absl::StrCat(redis::KeySlot(key), "\n"), *slot) << key;
  }
  for (int i = 0; i < 30; ++i) {
    const std::string key = RedisKeyOf(Id(i));
    auto slot = cluster_->Cli({"CLUSTER", "KEYSLOT", key});
    ASSERT_TRUE(slot.ok()) << slot.status();
    EXPECT_EQ(absl::StrCat(redis::KeySlot(key), "\n"), *slot) << key;
  }
}

TEST_F(RedisClusterTest, TenThousandEntriesSpreadOverEveryMasterAndReadBack) {
  EXPECT_THAT(store_->Describe(), HasSubstr("redis cluster"));
  constexpr int kEntries = 10000;
  Fill(kEntries);
  int total = 0;
  for (const auto& master : Masters()) {
    const int keys = KeysOn(master.port);
    std::printf("  figure: master %d serves %d slots and holds %d of %d entries\n", master.port,
                master.slots, keys, kEntries);
    EXPECT_GT(keys, kEntries / 5) << master.port;  // about a third each
    total += keys;
  }
  EXPECT_EQ(total, kEntries);
  EXPECT_EQ(Lost(kEntries), 0);
  // Delete and a consuming Get route too.
  auto consumed = GetSync(*store_, "ns", Id(7), /*consume=*/true);
  ASSERT_TRUE(consumed.ok()) << consumed.status();
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store_, "ns", Id(7)).status()));
  EXPECT_TRUE(*tlscache::testing::DeleteSync(*store_, "ns", Id(8)));
  // And the ticket key ring, a hash swapped by a script.
  EXPECT_TRUE(*tlscache::testing::SwapRingSync(*store_, "ns", 0, 1, "ring-v1"));
  EXPECT_EQ(tlscache::testing::GetRingSync(*store_, "ns")->version, 1u);
}

TEST_F(RedisClusterTest, ReshardingUnderLoadNeverReturnsWrongDataAndErrorsOnlyWhileItMoves) {
  constexpr int kEntries = 2000;
  Fill(kEntries);
  std::vector<RedisClusterServers::Node> masters = Masters();
  ASSERT_EQ(masters.size(), static_cast<size_t>(kMasters));
  const RedisClusterServers::Node from = masters[0];
  const RedisClusterServers::Node to = masters[1];

  std::atomic<bool> stop{false};
  std::atomic<int> calls{0}, wrong{0}, missing{0};
  absl::Mutex mu;
  std::map<std::string, int> errors;  // by code
  std::vector<std::thread> load;
  for (int t = 0; t < 4; ++t) {
    load.emplace_back([&, t] {
      int i = t;
      while (!stop.load()) {
        i = (i + 7) % kEntries;
        absl::Status status;
        if (i % 4 == 0) {
          status = PutSync(*store_, "ns", Id(i), Session(i), absl::Seconds(600)).status();
        } else {
          auto entry = GetSync(*store_, "ns", Id(i));
          status = entry.status();
          if (entry.ok() && entry->session.view() != Session(i)) ++wrong;
          if (absl::IsNotFound(status)) ++missing;
        }
        ++calls;
        if (!status.ok() && !absl::IsNotFound(status)) {
          absl::MutexLock lock(&mu);
          ++errors[absl::StatusCodeToString(status.code())];
        }
      }
    });
  }
  absl::SleepFor(absl::Milliseconds(300));
  const absl::Time started = absl::Now();
  auto moved = cluster_->Cli(
      {"--cluster", "reshard", absl::StrCat("127.0.0.1:", from.port), "--cluster-from", from.id,
       "--cluster-to", to.id, "--cluster-slots", "1500", "--cluster-yes"},
      absl::Seconds(180));
  const absl::Duration resharding = absl::Now() - started;
  absl::SleepFor(absl::Milliseconds(300));
  stop = true;
  for (auto& thread : load) thread.join();
  ASSERT_TRUE(moved.ok()) << moved.status();

  int errored = 0;
  for (const auto& [code, count] : errors) {
    EXPECT_TRUE(code == "UNAVAILABLE" || code == "DEADLINE_EXCEEDED") << code;
    errored += count;
  }
  std::printf(
      "  figure: resharding 1500 slots took %s under load: %d calls, %d errors, "
      "%d wrong, %d missing\n",
      absl::FormatDuration(resharding).c_str(), calls.load(), errored, wrong.load(),
      missing.load());
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(missing.load(), 0);
  EXPECT_LE(errored, calls.load() / 100);  // transient: ASK and MOVED are followed, not failed
  // The slots moved, and everything is where the store finds it, without an error.
  int moved_slots = 0;
  for (const auto& master : Masters()) {
    if (master.id == to.id) moved_slots = master.slots - to.slots;
  }
  EXPECT_EQ(moved_slots, 1500);
  EXPECT_EQ(Lost(kEntries), 0);
  // The load met the moving slots, and followed MOVED and ASK to where the keys went.
  StoreStats stats;
  store_->AddStats(&stats);
  ASSERT_TRUE(stats.redis_redirects.has_value());
  std::printf("  figure: %llu redirections followed\n",
              static_cast<unsigned long long>(*stats.redis_redirects));
  EXPECT_GT(*stats.redis_redirects, 0u);
}

TEST_F(RedisClusterTest, AKilledMasterIsReplacedByItsReplicaAndTheStoreRecovers) {
  constexpr int kEntries = 1000;
  Fill(kEntries);
  std::vector<RedisClusterServers::Node> masters = Masters();
  ASSERT_EQ(masters.size(), static_cast<size_t>(kMasters));
  for (const auto& master : masters) {
    // Replicated before the kill: each master waits for its replica.
    EXPECT_EQ(*cluster_->server(master.port).Cli({"WAIT", "1", "5000"}), "1\n");
  }
  // The victim is the master of entry 0. The cluster refuses every slot while a master is
  // down, so recovery is a write and a read of an entry on each master, the victim's included.
  int victim = 0;
  std::vector<Probe> probes;
  for (const auto& master : masters) {
    for (int i = 0; i < kEntries; ++i) {
      if (*cluster_->server(master.port).Cli({"EXISTS", RedisKeyOf(Id(i))}) == "1\n") {
        if (i == 0) victim = master.port;
        probes.push_back({Id(i), Session(i)});
        break;
      }
    }
  }
  ASSERT_NE(victim, 0);
  ASSERT_EQ(probes.size(), masters.size());

  const absl::Time killed = absl::Now();
  cluster_->server(victim).Kill();
  const Recovery recovery = AwaitRecovery(*store_, probes, killed);
  ASSERT_TRUE(recovery.recovered) << "no recovery within 30 s";
  const int lost = Lost(kEntries);
  std::printf(
      "  figure: Cluster failover: every master writes and reads again %s after SIGKILL "
      "of one; %d calls failed meanwhile, the slowest in %s; %d of %d entries lost\n",
      absl::FormatDuration(recovery.after).c_str(), recovery.failed,
      absl::FormatDuration(recovery.slowest_failure).c_str(), lost, kEntries);
  EXPECT_TRUE(recovery.unexpected.empty()) << recovery.unexpected.front();
  EXPECT_LE(recovery.after, absl::Seconds(15));
  EXPECT_LE(recovery.slowest_failure, absl::Seconds(1));  // fail fast, never hang
  EXPECT_EQ(lost, 0);
  EXPECT_TRUE(cluster_->WaitUntilHealthy(kMasters, absl::Seconds(10)).ok());
  // The store reads the new map by itself, within a refresh or two.
  EXPECT_TRUE(
      tlscache::testing::Eventually([&] { return store_->Health().ok(); }, absl::Seconds(5)))
      << store_->Health();
}

TEST_F(RedisClusterTest, TheLogReachesAnotherReplicaThroughShardedPubSub) {
  auto second = ConnectStore(cluster_->url(), absl::Milliseconds(100));
  ASSERT_TRUE(second.ok()) << second.status();
  // Namespaces whose logs hash to different slots, so to different shards.
  LogCollector first_ns(**second, "ns");
  LogCollector second_ns(**second, "other");
  EXPECT_TRUE(first_ns.AppendUntilReceived(*store_, "ns", "id", "change of ns"));
  EXPECT_TRUE(second_ns.AppendUntilReceived(*store_, "other", "id", "change of other"));
  EXPECT_FALSE(first_ns.Has("change of other"));
  EXPECT_TRUE(first_ns.Consecutive());
  // A deletion the log holds keeps a later store of that session out, on a cluster too (the
  // namespace's log and its deletions live in one slot).
  std::vector<LogChange> deletion;
  deletion.push_back(tlscache::testing::Change("k", "delete k", true, absl::Seconds(60)));
  ASSERT_TRUE(tlscache::testing::AppendSync(*store_, "ns", std::move(deletion)).ok());
  std::vector<LogChange> late;
  late.push_back(tlscache::testing::Change("k", "late put of k"));
  late.push_back(tlscache::testing::Change("j", "put of j"));
  ASSERT_TRUE(tlscache::testing::AppendSync(**second, "ns", std::move(late)).ok());
  EXPECT_TRUE(tlscache::testing::Eventually([&] { return first_ns.Has("put of j"); }));
  EXPECT_FALSE(first_ns.Has("late put of k"));
  EXPECT_TRUE(first_ns.Consecutive());
  // Sharded: the shard that owns the channel's slot holds the subscription, no other node.
  int subscribed = 0;
  for (const auto& node : Masters()) {
    auto count = cluster_->server(node.port)
                     .Cli({"PUBSUB", "SHARDNUMSUB", "tlscache:default:0@log:{ns}"});
    if (count.ok() && absl::StrContains(*count, "\n1\n")) ++subscribed;
  }
  EXPECT_EQ(subscribed, 1);
}

}  // namespace
}  // namespace tlscache::server
