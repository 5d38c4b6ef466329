// SessionCache/Follow end to end: CacheClients (the plugin's client, with its near cache)
// following a namespace through in-process CacheServers, on the memory store (one replica)
// and on one real Redis shared by two replicas (each client on its own replica).
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/cache_client.h"
#include "gtest/gtest.h"
#include "server/cache_server.h"
#include "server/store/store_factory.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/store_sync.h"
#include "tests/testing/store_under_test.h"

namespace tlscache::server {
namespace {

using ::tlscache::client::CacheClient;
using ::tlscache::client::ClientOptions;
using ::tlscache::client::ClientStats;
using ::tlscache::testing::Eventually;
using ::tlscache::testing::RedisServer;
using ::tlscache::testing::StoreKind;
using ::tlscache::testing::StoreKindName;

constexpr char kNs[] = "farm";

class FollowTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    if (GetParam() != StoreKind::kMemory) TLSCACHE_START_REDIS_OR_SKIP(redis_);
    first_ = StartReplica(0);
    ASSERT_NE(first_, nullptr);
    // On Redis the second process talks to a second replica: what it receives crossed Redis.
    second_port_ = first_->port();
    if (redis_ != nullptr) {
      second_ = StartReplica(0);
      ASSERT_NE(second_, nullptr);
      second_port_ = second_->port();
    }
    a_ = Client(first_->port());
    b_ = Client(second_port_);
    a_->Prepare(kNs, false);
    b_->Prepare(kNs, false);
    ASSERT_TRUE(Eventually([&] { return Up(*a_) && Up(*b_); }));
  }

  std::unique_ptr<CacheServer> StartReplica(int port, absl::Duration max_connection_age = {}) {
    StoreConfig store;
    if (redis_ != nullptr) store.url = redis_->url();
    auto created = CreateStore(store);
    EXPECT_TRUE(created.ok()) << created.status();
    if (!created.ok()) return nullptr;
    CacheServerOptions options;
    options.listen = absl::StrCat("127.0.0.1:", port);
    options.max_connection_age = max_connection_age;
    options.max_connection_age_grace = absl::Seconds(1);
    auto server = CacheServer::Start(options, *std::move(created));
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  static std::shared_ptr<CacheClient> Client(int port) {
    return Client(absl::StrCat("127.0.0.1:", port));
  }
  static std::shared_ptr<CacheClient> Client(const std::string& addr) {
    ClientOptions options;
    options.addr = addr;
    options.lookup_timeout = absl::Seconds(2);  // a test's lookups wait for a slow machine
    auto client = CacheClient::Create(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return *client;
  }

  static bool Up(CacheClient& client) { return client.stats().streams_up == 1; }

  // The pushed sessions arrive in the background: each new one is awaited.
  static bool AwaitNearEntries(CacheClient& client, uint64_t entries) {
    return Eventually([&] { return client.stats().near_entries == entries; });
  }

  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<CacheServer> first_, second_;
  int second_port_ = 0;
  std::shared_ptr<CacheClient> a_, b_;
};

TEST_P(FollowTest, ASessionStoredByOneProcessIsFoundInTheOthersNearCache) {
  ASSERT_TRUE(a_->Put(kNs, "id-1", SecretBytes(absl::string_view("session-1")), 60,
                      /*await_ack=*/true));
  ASSERT_TRUE(AwaitNearEntries(*b_, 1));
  auto got = b_->Get(kNs, "id-1", false);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->view(), "session-1");
  const ClientStats stats = b_->stats();
  EXPECT_EQ(stats.near_hits, 1u);
  EXPECT_EQ(stats.hits, 0u);  // the service was not asked
  EXPECT_GE(stats.pushed, 1u);
  // The store has it too, for a process that was not following yet.
  EXPECT_TRUE(testing::GetSync(*first_->store(), kNs, "id-1").ok());
}

TEST_P(FollowTest, PushedSessionsStillResumeWhenTheServiceIsGone) {
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(a_->Put(kNs, absl::StrCat("id-", i), SecretBytes(absl::StrCat("s-", i)), 60, true));
  }
  ASSERT_TRUE(AwaitNearEntries(*b_, 20));
  first_.reset();
  second_.reset();
  for (int i = 0; i < 20; ++i) {
    auto got = b_->Get(kNs, absl::StrCat("id-", i), false);
    ASSERT_TRUE(got.ok()) << i << ": " << got.status();
    EXPECT_EQ(got->view(), absl::StrCat("s-", i));
  }
}

TEST_P(FollowTest, ADeletionWithdrawsTheSessionFromEveryNearCache) {
  absl::Mutex mu;
  std::vector<std::string> withdrawn;
  // Set before the process's first call in real use; here b_ is already following, and the
  // listener is read on each deletion.
  b_->SetWithdrawnListener(
      [&](absl::string_view ns, absl::string_view key, absl::string_view tls_session_id) {
        absl::MutexLock lock(&mu);
        withdrawn.push_back(absl::StrCat(ns, "/", key, "/", tls_session_id));
      });
  ASSERT_TRUE(a_->Put(kNs, "doomed", SecretBytes(absl::string_view("s")), 60, true));
  ASSERT_TRUE(AwaitNearEntries(*b_, 1));
  a_->Delete(kNs, "doomed", "tls-id", absl::Seconds(60));
  ASSERT_TRUE(AwaitNearEntries(*b_, 0));
  EXPECT_TRUE(absl::IsNotFound(b_->Get(kNs, "doomed", false).status()));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(withdrawn, std::vector<std::string>{"farm/doomed/tls-id"});
}

TEST_P(FollowTest, AConsumedSessionIsWithdrawnAndResumesOnceAcrossTheFarm) {
  ASSERT_TRUE(a_->Put(kNs, "ticket", SecretBytes(absl::string_view("s")), 60, true));
  ASSERT_TRUE(AwaitNearEntries(*b_, 1));
  ASSERT_EQ(a_->stats().near_entries, 1u);  // its own store, kept near too
  // A consuming lookup bypasses the near cache and consumes in the service.
  EXPECT_TRUE(b_->Get(kNs, "ticket", /*consume=*/true).ok());
  EXPECT_TRUE(absl::IsNotFound(a_->Get(kNs, "ticket", /*consume=*/true).status()));
  EXPECT_TRUE(AwaitNearEntries(*a_, 0));
  EXPECT_TRUE(AwaitNearEntries(*b_, 0));
}

TEST_P(FollowTest, StoresTravelUpTheStreamCoalescedIntoBatches) {
  constexpr int kStores = 2000;
  for (int i = 0; i < kStores; ++i) {
    a_->Put(kNs, absl::StrCat("id-", i), SecretBytes(absl::StrCat("s-", i)), 60);
  }
  ASSERT_TRUE(a_->Flush(absl::Seconds(20)));
  const ClientStats stats = a_->stats();
  EXPECT_EQ(stats.stores, static_cast<uint64_t>(kStores));
  EXPECT_EQ(stats.store_failures, 0u);
  EXPECT_EQ(stats.resent, 0u);
  EXPECT_LT(a_->stats().batches, static_cast<uint64_t>(kStores) / 4) << "not coalesced";
  ASSERT_TRUE(AwaitNearEntries(*b_, kStores))
      << b_->stats().near_entries << " entries, " << b_->stats().pushed << " pushed, "
      << b_->stats().gaps << " gaps";
  for (int i = 0; i < kStores; i += 97) {
    EXPECT_TRUE(testing::GetSync(*first_->store(), kNs, absl::StrCat("id-", i)).ok()) << i;
  }
}

TEST_P(FollowTest, AProcessThatReconnectsKeepsWhatItCanVouchForAndWithdrawsTheRest) {
  ASSERT_TRUE(a_->Put(kNs, "kept", SecretBytes(absl::string_view("s")), 60, true));
  ASSERT_TRUE(a_->Put(kNs, "doomed", SecretBytes(absl::string_view("s")), 60, true));
  ASSERT_TRUE(AwaitNearEntries(*b_, 2));
  const int port = second_port_;
  if (second_ != nullptr) {
    // b's replica goes; while it is down, a deletion b cannot hear of.
    second_.reset();
    a_->Delete(kNs, "doomed");
    ASSERT_TRUE(a_->Flush(absl::Seconds(5)));
    second_ = StartReplica(port);
  } else {
    a_.reset();  // the only replica goes, and its memory store with it
    first_.reset();
    first_ = StartReplica(port);
    a_ = Client(port);
    a_->Prepare(kNs, false);
  }
  ASSERT_NE(second_ != nullptr ? second_ : first_, nullptr);
  ASSERT_TRUE(Eventually([&] { return b_->stats().streams == 2 && Up(*b_) && Up(*a_); }));
  // The new stream could not go on from where b stood: b checked its copies.
  ASSERT_TRUE(Eventually([&] { return b_->stats().gaps == 1 && b_->stats().withdrawn >= 1; }));
  EXPECT_TRUE(absl::IsNotFound(b_->Get(kNs, "doomed", false).status()));
  if (second_ != nullptr) {
    // On Redis the session that was not deleted is still live: kept, and served near.
    EXPECT_EQ(b_->stats().near_entries, 1u);
    const uint64_t near_hits = b_->stats().near_hits;
    EXPECT_TRUE(b_->Get(kNs, "kept", false).ok());
    EXPECT_EQ(b_->stats().near_hits, near_hits + 1);
  } else {
    EXPECT_EQ(b_->stats().near_entries, 0u);  // the restarted memory store has nothing
  }
  ASSERT_TRUE(a_->Put(kNs, "new", SecretBytes(absl::string_view("s2")), 60, true));
  ASSERT_TRUE(Eventually([&] { return b_->Get(kNs, "new", false).ok(); }));
  auto got = b_->Get(kNs, "new", false);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->view(), "s2");
}

TEST_P(FollowTest, ABurstOfTenThousandStoresEndsNoStream) {
  // 10,000 stores in about 0.1 s: the service sends them to b in responses b accepts.
  constexpr int kStores = 10000;
  const absl::Time start = absl::Now();
  for (int i = 0; i < kStores; ++i) {
    a_->Put(kNs, absl::StrCat("burst-", i), SecretBytes(absl::StrCat("session-", i)), 60);
  }
  const absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(a_->Flush(absl::Seconds(30)));
  ASSERT_TRUE(Eventually([&] { return b_->stats().near_entries == kStores; }, absl::Seconds(30)))
      << b_->stats().near_entries << " entries, " << b_->stats().gaps << " gaps";
  EXPECT_EQ(b_->stats().streams, 1u) << "a stream ended";
  EXPECT_EQ(a_->stats().streams, 1u) << "a stream ended";
  EXPECT_EQ(b_->stats().gaps, 0u);
  std::printf("figure: %d stores queued in %s reached the other process on one stream\n", kStores,
              absl::FormatDuration(took).c_str());
}

TEST_P(FollowTest, AnUnknownOrRefusedNamespaceEndsTheStreamAndStoresGoAsUnaryCalls) {
  auto c = Client(first_->port());
  c->Prepare("bad namespace!", false);
  // The service refuses the stream; the Put goes (and fails) as a unary call.
  EXPECT_FALSE(c->Put("bad namespace!", "id", SecretBytes(absl::string_view("s")), 60, true));
  EXPECT_EQ(c->stats().streams_up, 0u);
}

// Two replicas on one Redis, a process naming both: its stream moves between them.
class FollowHandOverTest : public FollowTest {
 protected:
  void SetUp() override {
    FollowTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    FollowBothAndFill();
  }

  // c follows through both replicas; a stores 20 sessions, which c's near cache gets.
  void FollowBothAndFill() {
    c_ = Client(absl::StrCat("127.0.0.1:", first_->port(), ",127.0.0.1:", second_->port()));
    c_->Prepare(kNs, false);
    ASSERT_TRUE(Eventually([&] { return Up(*c_); }));
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(a_->Put(kNs, absl::StrCat("id-", i), SecretBytes(absl::StrCat("s-", i)), 60,
                          /*await_ack=*/true));
    }
    ASSERT_TRUE(AwaitNearEntries(*c_, 20));
  }

  // After a move: c kept every session, sent nothing again, and follows deletions made
  // through either replica.
  void ExpectNothingLost() {
    const ClientStats stats = c_->stats();
    EXPECT_EQ(stats.near_entries, 20u);
    EXPECT_EQ(stats.resent, 0u);
    EXPECT_EQ(stats.streams_up, 1u);
    b_->Delete(kNs, "id-3");
    EXPECT_TRUE(AwaitNearEntries(*c_, 19));
    auto got = c_->Get(kNs, "id-7", false);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(c_->stats().near_hits, 1u);
  }

  std::shared_ptr<CacheClient> c_;
};

TEST_P(FollowHandOverTest, AReplicaShuttingDownHandsItsFollowersToAnotherWithNothingLost) {
  CacheServer* holder = first_->followers() == 2 ? first_.get() : second_.get();
  ASSERT_EQ(holder->followers(), 2u);  // c's stream and a's or b's
  const absl::Time start = absl::Now();
  std::thread shutdown([holder] { holder->Shutdown(absl::Seconds(10)); });
  // Its new stream goes to the other replica; the old one overlaps it, then ends.
  EXPECT_TRUE(Eventually([&] { return c_->stats().streams == 2 && Up(*c_); }))
      << c_->stats().streams << " streams, " << c_->stats().streams_up << " up";
  shutdown.join();
  // a's or b's process names only that replica: it has nowhere to go and is ended after
  // the few seconds the followers get to move.
  EXPECT_LT(absl::Now() - start, absl::Seconds(6));
  if (holder == second_.get()) std::swap(a_, b_);  // b_: a process on the replica still up
  ExpectNothingLost();
}

TEST_P(FollowHandOverTest, AStreamOlderThanTheMaximumAgeMovesWithNothingLost) {
  // Both replicas again, with a 2 s maximum connection age (the default is 5 min).
  const int first_port = first_->port(), second_port = second_->port();
  a_.reset();
  b_.reset();
  c_.reset();
  first_.reset();
  second_.reset();
  first_ = StartReplica(first_port, absl::Seconds(2));
  second_ = StartReplica(second_port, absl::Seconds(2));
  ASSERT_NE(first_, nullptr);
  ASSERT_NE(second_, nullptr);
  a_ = Client(first_port);
  b_ = Client(second_port);
  a_->Prepare(kNs, false);
  b_->Prepare(kNs, false);
  ASSERT_TRUE(Eventually([&] { return Up(*a_) && Up(*b_); }));
  FollowBothAndFill();
  // 2 to 2.4 s after each stream came up it is asked to move, and moves.
  EXPECT_TRUE(Eventually([&] { return c_->stats().streams >= 3; }, absl::Seconds(10)));
  ExpectNothingLost();
}

INSTANTIATE_TEST_SUITE_P(Redis, FollowHandOverTest, ::testing::Values(StoreKind::kRedis),
                         StoreKindName);

INSTANTIATE_TEST_SUITE_P(Stores, FollowTest,
                         ::testing::Values(StoreKind::kMemory, StoreKind::kRedis), StoreKindName);

}  // namespace
}  // namespace tlscache::server
