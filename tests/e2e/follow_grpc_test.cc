// SessionCache/Follow end to end: CacheClients (the plugin's client, with its near cache)
// following a namespace through in-process CacheServers, on the memory store (one replica)
// and on one real Redis shared by two replicas (each client on its own replica).
#include <memory>
#include <string>
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

  std::unique_ptr<CacheServer> StartReplica(int port) {
    StoreConfig store;
    if (redis_ != nullptr) store.url = redis_->url();
    auto created = CreateStore(store);
    EXPECT_TRUE(created.ok()) << created.status();
    if (!created.ok()) return nullptr;
    CacheServerOptions options;
    options.listen = absl::StrCat("127.0.0.1:", port);
    auto server = CacheServer::Start(options, *std::move(created));
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  static std::shared_ptr<CacheClient> Client(int port) {
    ClientOptions options;
    options.addr = absl::StrCat("127.0.0.1:", port);
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
  b_->SetWithdrawnListener([&](absl::string_view ns, absl::string_view key) {
    absl::MutexLock lock(&mu);
    withdrawn.push_back(absl::StrCat(ns, "/", key));
  });
  ASSERT_TRUE(a_->Put(kNs, "doomed", SecretBytes(absl::string_view("s")), 60, true));
  ASSERT_TRUE(AwaitNearEntries(*b_, 1));
  a_->Delete(kNs, "doomed");
  ASSERT_TRUE(AwaitNearEntries(*b_, 0));
  EXPECT_TRUE(absl::IsNotFound(b_->Get(kNs, "doomed", false).status()));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(withdrawn, std::vector<std::string>{"farm/doomed"});
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
      << b_->stats().push_dropped << " dropped";
  for (int i = 0; i < kStores; i += 97) {
    EXPECT_TRUE(testing::GetSync(*first_->store(), kNs, absl::StrCat("id-", i)).ok()) << i;
  }
}

TEST_P(FollowTest, AProcessThatReconnectsStartsColdAndFillsAgain) {
  ASSERT_TRUE(a_->Put(kNs, "old", SecretBytes(absl::string_view("s")), 60, true));
  ASSERT_TRUE(AwaitNearEntries(*b_, 1));
  const int port = second_port_;
  if (second_ != nullptr) {
    second_.reset();
    second_ = StartReplica(port);
  } else {
    a_.reset();  // its replica goes away with it
    first_.reset();
    first_ = StartReplica(port);
    a_ = Client(port);
    a_->Prepare(kNs, false);
  }
  ASSERT_NE(second_ != nullptr ? second_ : first_, nullptr);
  ASSERT_TRUE(Eventually([&] { return b_->stats().streams == 2 && Up(*b_) && Up(*a_); }));
  EXPECT_EQ(b_->stats().near_entries, 0u);  // what it held may have been deleted meanwhile
  ASSERT_TRUE(a_->Put(kNs, "new", SecretBytes(absl::string_view("s2")), 60, true));
  ASSERT_TRUE(AwaitNearEntries(*b_, 1));
  auto got = b_->Get(kNs, "new", false);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->view(), "s2");
}

TEST_P(FollowTest, AnUnknownOrRefusedNamespaceEndsTheStreamAndStoresGoAsUnaryCalls) {
  auto c = Client(first_->port());
  c->Prepare("bad namespace!", false);
  // The service refuses the stream; the Put goes (and fails) as a unary call.
  EXPECT_FALSE(c->Put("bad namespace!", "id", SecretBytes(absl::string_view("s")), 60, true));
  EXPECT_EQ(c->stats().streams_up, 0u);
}

INSTANTIATE_TEST_SUITE_P(Stores, FollowTest,
                         ::testing::Values(StoreKind::kMemory, StoreKind::kRedis), StoreKindName);

}  // namespace
}  // namespace tlscache::server
