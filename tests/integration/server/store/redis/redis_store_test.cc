// The Redis store against a real redis-server: the change log across replicas through pub/sub,
// restarts, a paused server, pooling, bounds; and what a sealed store leaves in Redis. The
// contract every store keeps is in ../store_contract_test.cc.
#include "server/store/redis/redis_store.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/memory_store.h"
#include "server/store/redis/redis_subscriber.h"
#include "server/store/sealed_store.h"
#include "tests/testing/eventually.h"
#include "tests/testing/log_collector.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/store_sync.h"
#include "tests/testing/store_under_test.h"

namespace tlscache::server {
namespace {

using ::testing::HasSubstr;
using ::tlscache::testing::AppendSync;
using ::tlscache::testing::Change;
using ::tlscache::testing::DeleteSync;
using ::tlscache::testing::Eventually;
using ::tlscache::testing::GetRingSync;
using ::tlscache::testing::GetSync;
using ::tlscache::testing::LogCollector;
using ::tlscache::testing::PutSync;
using ::tlscache::testing::RedisServer;
using ::tlscache::testing::SwapRingSync;

redis::RedisStoreOptions OptionsFor(const RedisServer& server) {
  redis::RedisStoreOptions options;
  options.endpoint.host = "127.0.0.1";
  options.endpoint.port = server.port();
  options.timeout = absl::Milliseconds(200);
  options.min_backoff = absl::Milliseconds(20);
  options.max_backoff = absl::Milliseconds(200);
  options.idle_check = absl::Milliseconds(100);
  return options;
}

constexpr char kSealKeyA[] = "6a1f0c9e3b7d25e48f10a2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f607";
static_assert(absl::string_view(kSealKeyA) == ::tlscache::testing::kTestSealKey);
constexpr char kSealKeyB[] = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

std::unique_ptr<redis::RedisStore> ConnectedStore(const redis::RedisStoreOptions& options) {
  auto store = redis::RedisStore::Create(options);
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return nullptr;
  EXPECT_TRUE(Eventually([&] { return (*store)->Health().ok(); })) << (*store)->Health();
  return *std::move(store);
}

using ::tlscache::testing::StoreKind;
using ::tlscache::testing::StoreKindName;
using ::tlscache::testing::TestSealer;

// ---- the change log across replicas (pub/sub) ----------------------------------------------

// Two replicas' stores on one Redis, sealed or not.
class LogAcrossReplicasTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    TLSCACHE_START_REDIS_OR_SKIP(redis_);
    for (auto* store : {&first_, &second_}) {
      *store = Replica(OptionsFor(*redis_));
      ASSERT_NE(*store, nullptr);
    }
  }

  std::unique_ptr<Store> Replica(const redis::RedisStoreOptions& options) {
    std::unique_ptr<Store> store = ConnectedStore(options);
    if (store != nullptr && GetParam() == StoreKind::kSealedRedis) {
      const int db = options.endpoint.db;
      const std::string scope =
          options.deployment == "default" && db == 0 ? "" : absl::StrCat(options.deployment, ":", db);
      store = std::make_unique<SealedStore>(std::move(store), TestSealer(kSealKeyA, scope));
    }
    return store;
  }

  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<Store> first_, second_;
};

TEST_P(LogAcrossReplicasTest, AChangeAppendedThroughOneReachesTheSubscribersOfEvery) {
  LogCollector other(*second_, "ns");
  LogCollector unrelated(*second_, "other-ns");
  LogCollector own(*first_, "ns");
  ASSERT_TRUE(other.Started() && own.Started() && unrelated.Started());
  EXPECT_TRUE(other.AppendUntilReceived(*first_, "ns", "id", "change with session bytes"));
  EXPECT_TRUE(Eventually([&] { return own.Has("change with session bytes"); }));
  EXPECT_TRUE(unrelated.changes().empty());
  // Both saw the same numbers, in order.
  EXPECT_TRUE(other.Consecutive());
  EXPECT_EQ(own.changes().back().seq, other.changes().back().seq);
  EXPECT_EQ(own.changes().back().log_id, other.changes().back().log_id);
}

TEST_P(LogAcrossReplicasTest, WithSealingNothingCrossesRedisInTheClear) {
  // A subscriber on the raw channel, as anyone with access to Redis could be.
  absl::Mutex mu;
  std::vector<std::string> raw;
  redis::SubscriberOptions options;
  options.channel = "tlscache:default:0@log:{ns}";
  options.locate = [port = redis_->port()]() -> absl::StatusOr<redis::Endpoint> {
    redis::Endpoint endpoint;
    endpoint.host = "127.0.0.1";
    endpoint.port = port;
    return endpoint;
  };
  redis::RedisSubscriber tap(options, [&](SecretBytes message) {
    absl::MutexLock lock(&mu);
    raw.emplace_back(message.view());
  });
  ASSERT_TRUE(Eventually([&] { return tap.subscriptions() > 0; }));
  LogCollector other(*second_, "ns");
  const std::string secret = "MASTER-SECRET-0123456789abcdef";
  ASSERT_TRUE(other.AppendUntilReceived(*first_, "ns", "id", secret));
  ASSERT_TRUE(Eventually([&] {
    absl::MutexLock lock(&mu);
    return !raw.empty();
  }));
  absl::MutexLock lock(&mu);
  for (const std::string& message : raw) {
    EXPECT_THAT(message, HasSubstr("tlscache-log-v1|"));
    if (GetParam() == StoreKind::kSealedRedis) {
      EXPECT_THAT(message, ::testing::Not(HasSubstr(secret)));
    } else {
      EXPECT_THAT(message, HasSubstr(secret));  // the same tap sees an unsealed store's bytes
    }
  }
}

TEST_P(LogAcrossReplicasTest, ASubscriptionCutOffStartsAgainAndItsNumbersShowWhatItMissed) {
  LogCollector other(*second_, "ns");
  ASSERT_TRUE(other.AppendUntilReceived(*first_, "ns", "id", "before"));
  // Every pub/sub connection cut, as a Redis restart or a network blip would, while changes
  // are appended: whatever the subscription missed, its next start stands past it.
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(redis_->Cli({"CLIENT", "KILL", "TYPE", "pubsub"}).ok());
    std::vector<LogChange> changes;
    changes.push_back(Change("a", absl::StrCat("during ", i)));
    ASSERT_TRUE(AppendSync(*first_, "ns", std::move(changes)).ok());
  }
  ASSERT_TRUE(other.AppendUntilReceived(*first_, "ns", "id", "after", absl::Seconds(20)));
  EXPECT_GE(other.starts(), 2);
  EXPECT_TRUE(other.EveryRestartAfterALoss());  // the feed pauses its followers at once
  // Each change is either received, or numbered at or before the start that came after it:
  // a follower knows exactly where it may have missed something.
  EXPECT_TRUE(other.Consecutive());  // no number skipped without a start to say so
  LogCollector whole(*first_, "ns");  // a subscription of its own, for the log's end
  ASSERT_TRUE(whole.Started());
  EXPECT_EQ(other.changes().back().payload, "after");
  EXPECT_EQ(other.changes().back().seq, whole.received().front().seq);
}

TEST_P(LogAcrossReplicasTest, ASubscriptionWhoseRedisGoesSilentIsLostWithinSeconds) {
  // A Redis that stops answering (here stopped; a path that went silent is the same to the
  // subscriber): no reset ever comes, and only its own PING finds out.
  LogCollector other(*second_, "ns");
  ASSERT_TRUE(other.AppendUntilReceived(*first_, "ns", "id", "before"));
  redis_->Pause();
  const absl::Time paused = absl::Now();
  const bool lost = Eventually([&] { return other.losses() == 1; }, absl::Seconds(10));
  const absl::Duration took = absl::Now() - paused;
  redis_->Resume();
  ASSERT_TRUE(lost);
  // A PING after a quiet second, two more for its answer.
  EXPECT_GE(took, absl::Seconds(2));
  EXPECT_LT(took, absl::Seconds(5));
  EXPECT_TRUE(other.AppendUntilReceived(*first_, "ns", "id", "after", absl::Seconds(20)));
  EXPECT_EQ(other.starts(), 2);
  EXPECT_TRUE(other.EveryRestartAfterALoss());
}

TEST_P(LogAcrossReplicasTest, ASubscriptionComesBackAfterRedisRestarts) {
  LogCollector other(*second_, "ns");
  ASSERT_TRUE(other.AppendUntilReceived(*first_, "ns", "id", "before"));
  redis_->Kill();
  ASSERT_TRUE(redis_->Restart().ok());
  EXPECT_TRUE(other.AppendUntilReceived(*first_, "ns", "id", "after", absl::Seconds(20)));
  EXPECT_TRUE(other.EveryRestartAfterALoss());
  // Redis came back empty: the log began again, under another ID.
  EXPECT_NE(other.changes().front().log_id, other.changes().back().log_id);
}

TEST_P(LogAcrossReplicasTest, DeploymentsSharingARedisNeverSeeEachOthersChanges) {
  // Production on database 0, staging on database 1, and a third deployment named apart on
  // database 0: one namespace name for all. Pub/sub channels are not per database.
  auto staging_options = OptionsFor(*redis_);
  staging_options.endpoint.db = 1;
  auto named_options = OptionsFor(*redis_);
  named_options.deployment = "canary";
  std::unique_ptr<Store> staging = Replica(staging_options);
  std::unique_ptr<Store> canary = Replica(named_options);
  ASSERT_NE(staging, nullptr);
  ASSERT_NE(canary, nullptr);
  LogCollector production_follower(*second_, "default");
  LogCollector staging_follower(*staging, "default");
  LogCollector canary_follower(*canary, "default");
  ASSERT_TRUE(production_follower.AppendUntilReceived(*first_, "default", "id", "production"));
  ASSERT_TRUE(staging_follower.AppendUntilReceived(*staging, "default", "id", "staging"));
  ASSERT_TRUE(canary_follower.AppendUntilReceived(*canary, "default", "id", "canary"));
  EXPECT_FALSE(production_follower.Has("staging"));
  EXPECT_FALSE(production_follower.Has("canary"));
  EXPECT_FALSE(staging_follower.Has("production"));
  EXPECT_FALSE(staging_follower.Has("canary"));
  EXPECT_FALSE(canary_follower.Has("production"));
  EXPECT_FALSE(canary_follower.Has("staging"));
}

INSTANTIATE_TEST_SUITE_P(RedisStores, LogAcrossReplicasTest,
                         ::testing::Values(StoreKind::kRedis, StoreKind::kSealedRedis),
                         StoreKindName);

// ---- Redis only ---------------------------------------------------------------------------

class RedisStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { TLSCACHE_START_REDIS_OR_SKIP(redis_); }

  std::unique_ptr<RedisServer> redis_;
};

TEST_F(RedisStoreTest, ADeletionIsAnEmptyStringThatKeepsTheEntrysExpiry) {
  auto store = ConnectedStore(OptionsFor(*redis_));
  ASSERT_TRUE(*PutSync(*store, "edge", "\x01\xab", "s", absl::Seconds(120)));
  ASSERT_TRUE(*DeleteSync(*store, "edge", "\x01\xab", absl::Seconds(1)));
  EXPECT_EQ(*redis_->Cli({"STRLEN", "tlscache:edge:01ab"}), "0\n");
  auto pttl = redis_->Cli({"PTTL", "tlscache:edge:01ab"});
  int64_t ms = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(*pttl), &ms)) << *pttl;
  EXPECT_GT(ms, 118'000);  // the entry's lifetime, not the shorter hold
}

TEST_F(RedisStoreTest, EntriesAreRedisStringsWithAnExpiry) {
  auto store = ConnectedStore(OptionsFor(*redis_));
  ASSERT_TRUE(PutSync(*store, "edge", "\x01\xab", "s", absl::Seconds(120)).ok());
  auto pttl = redis_->Cli({"PTTL", "tlscache:edge:01ab"});
  ASSERT_TRUE(pttl.ok()) << pttl.status();
  int64_t ms = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(*pttl), &ms)) << *pttl;
  EXPECT_GT(ms, 118'000);
  EXPECT_LE(ms, 120'000);
}

TEST_F(RedisStoreTest, TwoStoresOnOneRedisShareEverything) {
  auto a = ConnectedStore(OptionsFor(*redis_));
  auto b = ConnectedStore(OptionsFor(*redis_));
  ASSERT_TRUE(PutSync(*a, "ns", "id", "made-on-a", absl::Seconds(60)).ok());
  EXPECT_EQ(GetSync(*b, "ns", "id")->session.view(), "made-on-a");
  EXPECT_TRUE(GetSync(*b, "ns", "id", true).ok());
  EXPECT_TRUE(absl::IsNotFound(GetSync(*a, "ns", "id").status()));
}

TEST_F(RedisStoreTest, DatabaseFromTheEndpointIsUsed) {
  auto options = OptionsFor(*redis_);
  options.endpoint.db = 5;
  auto store = ConnectedStore(options);
  ASSERT_TRUE(PutSync(*store, "ns", "id", "s", absl::Seconds(60)).ok());
  EXPECT_EQ(absl::StripAsciiWhitespace(*redis_->Cli({"-n", "5", "EXISTS", "tlscache:ns:6964"})),
            "1");
  EXPECT_EQ(absl::StripAsciiWhitespace(*redis_->Cli({"-n", "0", "EXISTS", "tlscache:ns:6964"})),
            "0");
}

TEST_F(RedisStoreTest, ConnectionsArePooledNotOpenedPerCall) {
  auto options = OptionsFor(*redis_);
  options.pool_size = 3;
  auto store = ConnectedStore(options);
  ASSERT_TRUE(Eventually([&] {
    auto clients = redis_->Cli({"CLIENT", "LIST"});
    return clients.ok() && std::count(clients->begin(), clients->end(), '\n') == 4;  // + cli
  }));
  auto before = redis_->Cli({"INFO", "stats"});
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(PutSync(*store, "ns", absl::StrCat(i), "s", absl::Seconds(60)).ok());
    ASSERT_TRUE(GetSync(*store, "ns", absl::StrCat(i)).ok());
  }
  auto received = [&](const std::string& info) {
    for (absl::string_view line : absl::StrSplit(info, '\n')) {
      if (absl::ConsumePrefix(&line, "total_connections_received:")) {
        int64_t n = 0;
        (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &n);
        return n;
      }
    }
    return int64_t{-1};
  };
  auto after = redis_->Cli({"INFO", "stats"});
  ASSERT_TRUE(before.ok() && after.ok());
  // Only the redis-cli that asked connected in between.
  EXPECT_EQ(received(*after) - received(*before), 1);
}

TEST_F(RedisStoreTest, RedisDownAtStartFailsFastThenServesWhenItComesUp) {
  const int port = redis_->port();
  redis_->Kill();
  auto options = OptionsFor(*redis_);
  auto store = redis::RedisStore::Create(options);
  ASSERT_TRUE(store.ok());
  EXPECT_TRUE(absl::IsUnavailable((*store)->Health()));
  const absl::Time start = absl::Now();
  const absl::Status status = PutSync(**store, "ns", "id", "s", absl::Seconds(60)).status();
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("127.0.0.1:", port)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  ASSERT_TRUE(redis_->Restart().ok());
  EXPECT_TRUE(Eventually([&] { return (*store)->Health().ok(); }));
  EXPECT_TRUE(PutSync(**store, "ns", "id", "s", absl::Seconds(60)).ok());
}

TEST_F(RedisStoreTest, RedisKilledIsUnavailableThenServiceResumesAfterRestart) {
  auto store = ConnectedStore(OptionsFor(*redis_));
  ASSERT_TRUE(PutSync(*store, "ns", "id", "s", absl::Seconds(60)).ok());
  redis_->Kill();
  for (int i = 0; i < 5; ++i) {
    const absl::Time start = absl::Now();
    auto got = GetSync(*store, "ns", "id");
    EXPECT_TRUE(absl::IsUnavailable(got.status()) || absl::IsDeadlineExceeded(got.status()))
        << got.status();
    EXPECT_LT(absl::Now() - start, absl::Seconds(2));  // bounded, never a hang
  }
  EXPECT_TRUE(Eventually([&] { return !store->Health().ok(); }));
  ASSERT_TRUE(redis_->Restart().ok());
  EXPECT_TRUE(Eventually([&] { return store->Health().ok(); }));
  EXPECT_TRUE(PutSync(*store, "ns", "id", "again", absl::Seconds(60)).ok());
  EXPECT_EQ(GetSync(*store, "ns", "id")->session.view(), "again");
}

TEST_F(RedisStoreTest, PausedRedisTimesOutWithinTheTimeoutAndRecovers) {
  auto options = OptionsFor(*redis_);
  options.timeout = absl::Milliseconds(100);
  auto store = ConnectedStore(options);
  ASSERT_TRUE(PutSync(*store, "ns", "id", "s", absl::Seconds(60)).ok());
  redis_->Pause();
  const absl::Time start = absl::Now();
  auto got = GetSync(*store, "ns", "id");
  const absl::Duration took = absl::Now() - start;
  redis_->Resume();
  EXPECT_TRUE(absl::IsDeadlineExceeded(got.status()) || absl::IsUnavailable(got.status()))
      << got.status();
  // One timeout to fail the call; far from a hang.
  EXPECT_LT(took, absl::Seconds(1)) << took;
  EXPECT_TRUE(Eventually([&] { return GetSync(*store, "ns", "id").ok(); }));
}

TEST_F(RedisStoreTest, AnOversizedValueInRedisIsNotHandedOut) {
  auto options = OptionsFor(*redis_);
  options.max_session_bytes = 100;
  auto store = ConnectedStore(options);
  ASSERT_TRUE(redis_->Cli({"SET", "tlscache:ns:6964", std::string(101, 'x')}).ok());
  auto got = GetSync(*store, "ns", "id");
  EXPECT_TRUE(absl::IsDataLoss(got.status())) << got.status();
  EXPECT_THAT(got.status().message(), HasSubstr("101 bytes"));
}

TEST_F(RedisStoreTest, AWrongTypeUnderTheKeyIsAnErrorNotACrash) {
  auto store = ConnectedStore(OptionsFor(*redis_));
  ASSERT_TRUE(redis_->Cli({"LPUSH", "tlscache:ns:6964", "x"}).ok());
  auto got = GetSync(*store, "ns", "id");
  EXPECT_FALSE(got.ok());
  EXPECT_THAT(got.status().message(), HasSubstr("WRONGTYPE"));
  EXPECT_TRUE(Eventually([&] { return store->Health().ok(); }));
  EXPECT_TRUE(PutSync(*store, "ns", "other", "s", absl::Seconds(60)).ok());
}

TEST_F(RedisStoreTest, ScriptFlushIsSurvived) {
  auto store = ConnectedStore(OptionsFor(*redis_));
  ASSERT_TRUE(PutSync(*store, "ns", "id", "s", absl::Seconds(60)).ok());
  ASSERT_TRUE(redis_->Cli({"SCRIPT", "FLUSH"}).ok());
  // The first Get on a connection may meet NOSCRIPT; the connection is rebuilt and reloads.
  EXPECT_TRUE(Eventually([&] { return GetSync(*store, "ns", "id").ok(); }));
}

}  // namespace
}  // namespace tlscache::server

// ---- credentials ----------------------------------------------------------------------------

namespace tlscache::server::redis {
namespace {

// A "server" on a loopback port that answers the first command it reads with `reply`, then
// keeps the connection open.
class OneReplyServer {
 public:
  explicit OneReplyServer(std::string reply) : reply_(std::move(reply)) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(listen_fd_, 1);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      conn_fd_ = accept(listen_fd_, nullptr, nullptr);
      char buffer[256];
      if (conn_fd_ >= 0 && read(conn_fd_, buffer, sizeof(buffer)) > 0) {
        (void)!write(conn_fd_, reply_.data(), reply_.size());
      }
    });
  }
  ~OneReplyServer() {
    shutdown(listen_fd_, SHUT_RDWR);
    thread_.join();
    if (conn_fd_ >= 0) close(conn_fd_);
    close(listen_fd_);
  }
  int port() const { return port_; }

 private:
  const std::string reply_;
  int listen_fd_ = -1;
  int conn_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

TEST(RedisConnectionTest, AnArrayBeyondTheBoundFailsAtOnceInsteadOfBeingAllocated) {
  // Announced, never sent: an unbounded reader would allocate the table and wait for elements.
  OneReplyServer server(absl::StrCat("*", redis::kMaxReplyElements + 1, "\r\n"));
  auto conn = redis::RedisConnection::Connect({"127.0.0.1", server.port()}, absl::Seconds(1),
                                              absl::Seconds(5));
  ASSERT_TRUE(conn.ok()) << conn.status();
  const absl::Time start = absl::Now();
  auto reply = (*conn)->Command({"PING"});
  ASSERT_FALSE(reply.ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));  // not the 5-s read timeout
  EXPECT_THAT(std::string(reply.status().message()), HasSubstr("too large to read"));
  EXPECT_TRUE((*conn)->broken());
}

TEST(RedisConnectionTest, AnArrayWithinTheBoundIsRead) {
  OneReplyServer server("*3\r\n:1\r\n$2\r\nok\r\n*-1\r\n");
  auto conn = redis::RedisConnection::Connect({"127.0.0.1", server.port()}, absl::Seconds(1),
                                              absl::Seconds(5));
  ASSERT_TRUE(conn.ok()) << conn.status();
  auto reply = (*conn)->Command({"PING"});
  ASSERT_TRUE(reply.ok()) << reply.status();
  ASSERT_EQ((*reply)->type, REDIS_REPLY_ARRAY);
  EXPECT_EQ((*reply)->elements, 3u);
  EXPECT_EQ((*reply)->element[0]->integer, 1);
  EXPECT_EQ(std::string((*reply)->element[1]->str, (*reply)->element[1]->len), "ok");
}

TEST(RedisAuthTest, CredentialsFilesAreAPasswordOrAUserAndAPassword) {
  auto password = ParseRedisAuth("s3cret\n");
  ASSERT_TRUE(password.ok());
  EXPECT_EQ(password->user, "");
  EXPECT_EQ(password->password.view(), "s3cret");
  auto acl = ParseRedisAuth("  tlscache   s3cret ");
  ASSERT_TRUE(acl.ok());
  EXPECT_EQ(acl->user, "tlscache");
  EXPECT_EQ(acl->password.view(), "s3cret");
  for (const char* bad : {"", "\n", "a b c", "a\nb"}) {
    auto parsed = ParseRedisAuth(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
  }
  EXPECT_THAT(std::string(ParseRedisAuth("u p extra").status().message()),
              ::testing::Not(HasSubstr("extra")));
}

TEST(RedisAuthTest, AStoreAuthenticatesAndAWrongPasswordSaysSoWithoutRevealingIt) {
  std::unique_ptr<RedisServer> redis;
  auto started = RedisServer::Start({"--requirepass", "s3cret-pw"});
  if (absl::IsNotFound(started.status())) GTEST_SKIP() << started.status().message();
  ASSERT_TRUE(started.ok()) << started.status();
  redis = *std::move(started);
  RedisStoreOptions options = OptionsFor(*redis);
  RedisAuth auth;
  auth.user = "default";
  auth.password = SecretBytes("s3cret-pw");
  options.auth = std::make_shared<RedisCredentials>(std::move(auth));
  auto store = ConnectedStore(options);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(PutSync(*store, "ns", "id", "session", absl::Seconds(60)).ok());
  EXPECT_EQ(GetSync(*store, "ns", "id")->session.view(), "session");

  // A store with other credentials (or none) is refused, and its health says so: `says`.
  auto refused_saying = [&](std::shared_ptr<RedisCredentials> credentials, const char* says) {
    options.auth = std::move(credentials);
    auto refused = RedisStore::Create(options);
    EXPECT_TRUE(refused.ok());
    EXPECT_TRUE(Eventually([&] { return absl::StrContains((*refused)->Health().message(), says); }))
        << (*refused)->Health();
    return std::string((*refused)->Health().message());
  };
  RedisAuth wrong;
  wrong.password = SecretBytes("not-the-pw");
  EXPECT_THAT(refused_saying(std::make_shared<RedisCredentials>(std::move(wrong)), "WRONGPASS"), ::testing::Not(HasSubstr("not-the-pw")));
  refused_saying(nullptr, "NOAUTH");
}

}  // namespace
}  // namespace tlscache::server::redis

// ---- sealed ---------------------------------------------------------------------------------

namespace tlscache::server {
namespace {

class SealedRedisStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TLSCACHE_START_REDIS_OR_SKIP(redis_);
    auto inner = ConnectedStore(OptionsFor(*redis_));
    ASSERT_NE(inner, nullptr);
    store_ = std::make_unique<SealedStore>(std::move(inner), TestSealer(kSealKeyA));
  }

  std::string Raw(const std::string& key) { return *redis_->Cli({"GET", key}); }

  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<SealedStore> store_;
};

TEST_F(SealedRedisStoreTest, RedisHoldsNeitherTheSessionNorTheRingInTheClear) {
  const std::string session = "MASTER-SECRET-0123456789abcdef";
  ASSERT_TRUE(PutSync(*store_, "edge", "\x01", session, absl::Seconds(60)).ok());
  const std::string raw = Raw("tlscache:edge:01");
  EXPECT_FALSE(raw.empty());
  EXPECT_EQ(raw.find("MASTER-SECRET"), std::string::npos) << raw;
  EXPECT_EQ(GetSync(*store_, "edge", "\x01")->session.view(), session);

  const std::string ring = "RING-WITH-TICKET-KEYS";
  ASSERT_TRUE(*SwapRingSync(*store_, "edge", 0, 1, ring));
  const std::string raw_ring = *redis_->Cli({"HGET", "tlscache:@ring:edge", "r"});
  EXPECT_FALSE(raw_ring.empty());
  EXPECT_EQ(raw_ring.find("TICKET-KEYS"), std::string::npos) << raw_ring;
  auto stored = GetRingSync(*store_, "edge");
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->ring.view(), ring);
  EXPECT_EQ(store_->open_failures(), 0u);
}

TEST_F(SealedRedisStoreTest, AnEntryMovedOrTamperedWithInRedisIsAMissAndCounted) {
  ASSERT_TRUE(PutSync(*store_, "a", "\x01", "session of a/01", absl::Seconds(60)).ok());
  ASSERT_TRUE(PutSync(*store_, "a", "\x02", "session of a/02", absl::Seconds(60)).ok());
  // Another session's sealed bytes copied over this one, and into another namespace.
  ASSERT_TRUE(redis_->Cli({"COPY", "tlscache:a:01", "tlscache:a:02", "REPLACE"}).ok());
  ASSERT_TRUE(redis_->Cli({"COPY", "tlscache:a:01", "tlscache:b:01"}).ok());
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store_, "a", "\x02").status()));
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store_, "b", "\x01").status()));
  EXPECT_EQ(store_->open_failures(), 2u);
  // One byte changed in place (its lowest bit flipped: changed for certain, whatever it was).
  ASSERT_TRUE(redis_->Cli({"EVAL",
                           "local b = string.byte(redis.call('GETRANGE', KEYS[1], 40, 40)) "
                           "return redis.call('SETRANGE', KEYS[1], 40, string.char(bit.bxor(b, 1)))",
                           "1", "tlscache:a:01"})
                  .ok());
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store_, "a", "\x01").status()));
  EXPECT_EQ(store_->open_failures(), 3u);
  // A value too short to be sealed at all.
  ASSERT_TRUE(redis_->Cli({"SET", "tlscache:a:03", "x"}).ok());
  EXPECT_TRUE(absl::IsNotFound(GetSync(*store_, "a", "\x03").status()));
  EXPECT_EQ(store_->open_failures(), 4u);
}

TEST_F(SealedRedisStoreTest, AfterAKeyRotationOldEntriesStillOpenUntilTheOldKeyIsDropped) {
  ASSERT_TRUE(PutSync(*store_, "ns", "\x01", "sealed with A", absl::Seconds(60)).ok());
  auto both = std::make_unique<SealedStore>(ConnectedStore(OptionsFor(*redis_)),
                                            TestSealer(absl::StrCat(kSealKeyB, "\n", kSealKeyA)));
  EXPECT_EQ(GetSync(*both, "ns", "\x01")->session.view(), "sealed with A");
  ASSERT_TRUE(PutSync(*both, "ns", "\x02", "sealed with B", absl::Seconds(60)).ok());
  auto only_b =
      std::make_unique<SealedStore>(ConnectedStore(OptionsFor(*redis_)), TestSealer(kSealKeyB));
  EXPECT_EQ(GetSync(*only_b, "ns", "\x02")->session.view(), "sealed with B");
  EXPECT_TRUE(absl::IsNotFound(GetSync(*only_b, "ns", "\x01").status()));
  EXPECT_EQ(only_b->open_failures(), 1u);
}

}  // namespace
}  // namespace tlscache::server
