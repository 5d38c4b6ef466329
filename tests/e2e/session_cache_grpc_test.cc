// SessionCache through a real gRPC channel to an in-process CacheServer, on both stores.
#include <grpcpp/create_channel.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/cache_server.h"
#include "server/store/store_factory.h"
#include "tests/testing/grpc_probe.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/store_sync.h"
#include "tests/testing/store_under_test.h"
#include "tlscache/v1/session_cache.grpc.pb.h"

namespace tlscache::server {
namespace {

using ::grpc::health::v1::HealthCheckResponse;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::tlscache::testing::AwaitHealth;
using ::tlscache::testing::CheckHealth;
using ::tlscache::testing::RedisServer;
using ::tlscache::v1::DeleteRequest;
using ::tlscache::v1::DeleteResponse;
using ::tlscache::v1::GetRequest;
using ::tlscache::v1::GetResponse;
using ::tlscache::v1::PutRequest;
using ::tlscache::v1::PutResponse;
using ::tlscache::v1::SessionCache;

constexpr size_t kMaxSession = 4096;

using ::tlscache::testing::StoreKind;
using ::tlscache::testing::StoreKindName;

class SessionCacheGrpcTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    StoreConfig store;
    store.max_session_bytes = kMaxSession;
    store.memory_max_bytes = 8 << 20;
    if (GetParam() == StoreKind::kRedis) {
      TLSCACHE_START_REDIS_OR_SKIP(redis_);
      store.url = redis_->url();
    }
    auto created = CreateStore(store);
    ASSERT_TRUE(created.ok()) << created.status();
    CacheServerOptions options;
    options.listen = "127.0.0.1:0";
    options.service.default_ttl = absl::Seconds(300);
    options.service.max_ttl = absl::Seconds(3600);
    options.service.max_session_bytes = kMaxSession;
    options.health_interval = absl::Milliseconds(50);
    auto server = CacheServer::Start(options, *std::move(created));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = testing::Connect(server_->port());
    stub_ = SessionCache::NewStub(channel_);
    ASSERT_TRUE(AwaitHealth(*channel_, "", HealthCheckResponse::SERVING));
  }

  grpc::Status Put(const std::string& ns, const std::string& id, const std::string& session,
                   uint32_t ttl = 60) {
    PutRequest request;
    request.set_namespace_(ns);
    request.set_session_id(id);
    request.set_session(session);
    request.set_ttl_seconds(ttl);
    PutResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    return stub_->Put(&context, request, &response);
  }

  grpc::Status Get(const std::string& ns, const std::string& id, GetResponse* response,
                   bool consume = false) {
    GetRequest request;
    request.set_namespace_(ns);
    request.set_session_id(id);
    request.set_consume(consume);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    return stub_->Get(&context, request, response);
  }

  grpc::Status Delete(const std::string& ns, const std::string& id, DeleteResponse* response) {
    DeleteRequest request;
    request.set_namespace_(ns);
    request.set_session_id(id);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    return stub_->Delete(&context, request, response);
  }

  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<CacheServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<SessionCache::Stub> stub_;
};

TEST_P(SessionCacheGrpcTest, PutThenGetThenDelete) {
  ASSERT_TRUE(Put("edge", "sid-1", "serialized-session").ok());
  GetResponse got;
  grpc::Status status = Get("edge", "sid-1", &got);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(got.session(), "serialized-session");
  EXPECT_GE(got.ttl_remaining_seconds(), 59u);
  EXPECT_LE(got.ttl_remaining_seconds(), 60u);
  DeleteResponse deleted;
  ASSERT_TRUE(Delete("edge", "sid-1", &deleted).ok());
  EXPECT_TRUE(deleted.existed());
  ASSERT_TRUE(Delete("edge", "sid-1", &deleted).ok());
  EXPECT_FALSE(deleted.existed());
  EXPECT_EQ(Get("edge", "sid-1", &got).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_P(SessionCacheGrpcTest, MissIsNotFound) {
  GetResponse got;
  EXPECT_EQ(Get("edge", "never-stored", &got).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_P(SessionCacheGrpcTest, ConsumeReturnsTheSessionOnce) {
  ASSERT_TRUE(Put("edge", "ticket", "early-data-ticket").ok());
  GetResponse got;
  ASSERT_TRUE(Get("edge", "ticket", &got, /*consume=*/true).ok());
  EXPECT_EQ(got.session(), "early-data-ticket");
  EXPECT_EQ(Get("edge", "ticket", &got, true).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_P(SessionCacheGrpcTest, ZeroTtlGetsTheDefaultAndLargeTtlsAreClamped) {
  ASSERT_TRUE(Put("edge", "default", "s", /*ttl=*/0).ok());
  ASSERT_TRUE(Put("edge", "huge", "s", /*ttl=*/4'000'000'000u).ok());
  GetResponse got;
  ASSERT_TRUE(Get("edge", "default", &got).ok());
  EXPECT_GE(got.ttl_remaining_seconds(), 299u);
  EXPECT_LE(got.ttl_remaining_seconds(), 300u);
  ASSERT_TRUE(Get("edge", "huge", &got).ok());
  EXPECT_GE(got.ttl_remaining_seconds(), 3599u);
  EXPECT_LE(got.ttl_remaining_seconds(), 3600u);
}

TEST_P(SessionCacheGrpcTest, NamespacesAreIsolated) {
  ASSERT_TRUE(Put("tenant-a", "sid", "a").ok());
  GetResponse got;
  EXPECT_EQ(Get("tenant-b", "sid", &got).error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(Get("tenant-a", "sid", &got).ok());
  EXPECT_EQ(got.session(), "a");
}

struct BadRequest {
  std::string ns;
  std::string id;
  std::string session;  // Put only
  std::string field;    // what the message must name
};

TEST_P(SessionCacheGrpcTest, EachInvalidArgumentNamesTheField) {
  const std::vector<BadRequest> cases = {
      {"edge", "", "s", "session_id is empty"},
      {"edge", std::string(33, 'i'), "s", "session_id is 33 bytes"},
      {"", "sid", "s", "namespace is empty"},
      {std::string(65, 'n'), "sid", "s", "namespace is 65 bytes"},
      {"bad:ns", "sid", "s", "namespace may only contain"},
      {"bad ns", "sid", "s", "namespace may only contain"},
  };
  for (const BadRequest& c : cases) {
    grpc::Status put = Put(c.ns, c.id, c.session);
    EXPECT_EQ(put.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_THAT(put.error_message(), HasSubstr(c.field));
    GetResponse got;
    grpc::Status get = Get(c.ns, c.id, &got);
    EXPECT_EQ(get.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_THAT(get.error_message(), HasSubstr(c.field));
    DeleteResponse deleted;
    grpc::Status del = Delete(c.ns, c.id, &deleted);
    EXPECT_EQ(del.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_THAT(del.error_message(), HasSubstr(c.field));
  }
  grpc::Status empty = Put("edge", "sid", "");
  EXPECT_EQ(empty.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(empty.error_message(), HasSubstr("session is empty"));
  grpc::Status over = Put("edge", "sid", std::string(kMaxSession + 1, 'x'));
  EXPECT_EQ(over.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(over.error_message(),
              HasSubstr(absl::StrCat("session is ", kMaxSession + 1, " bytes long; the limit is ",
                                     kMaxSession)));
  EXPECT_TRUE(Put("edge", "sid", std::string(kMaxSession, 'x')).ok());
}

TEST_P(SessionCacheGrpcTest, AMessageFarOverTheLimitIsRefusedAndTheServerGoesOn) {
  // Under the transport's limit (which leaves room for a Follow batch): the field is named.
  grpc::Status status = Put("edge", "sid", std::string(1 << 20, 'x'));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  status = Put("edge", "sid", std::string(8 << 20, 'x'));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_TRUE(Put("edge", "sid", "small").ok());
}

TEST_P(SessionCacheGrpcTest, HealthIsServingForTheServerAndTheService) {
  EXPECT_EQ(*CheckHealth(*channel_, ""), HealthCheckResponse::SERVING);
  EXPECT_EQ(*CheckHealth(*channel_, "tlscache.v1.SessionCache"), HealthCheckResponse::SERVING);
}

TEST_P(SessionCacheGrpcTest, ReflectionListsTheServices) {
  auto services = testing::ListServicesByReflection(channel_);
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_THAT(*services, Contains("tlscache.v1.SessionCache"));
  EXPECT_THAT(*services, Contains("grpc.health.v1.Health"));
}

TEST_P(SessionCacheGrpcTest, EightConcurrentClientsNeverSeeAnotherKeysSession) {
  std::atomic<int> mismatches{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      // Each thread its own channel, as separate TLS server processes would have.
      auto stub = SessionCache::NewStub(testing::Connect(server_->port()));
      for (int i = 0; i < 200; ++i) {
        const std::string id = absl::StrCat("t", t, "-", i % 16);
        const std::string session = absl::StrCat("session-of-", id, "-", i);
        PutRequest put;
        put.set_namespace_("edge");
        put.set_session_id(id);
        put.set_session(session);
        PutResponse put_response;
        grpc::ClientContext put_context;
        if (!stub->Put(&put_context, put, &put_response).ok()) errors++;
        GetRequest get;
        get.set_namespace_("edge");
        get.set_session_id(id);
        GetResponse got;
        grpc::ClientContext get_context;
        if (!stub->Get(&get_context, get, &got).ok()) {
          errors++;
        } else if (got.session() != session) {
          mismatches++;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(errors.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(BothStores, SessionCacheGrpcTest,
                         ::testing::Values(StoreKind::kMemory, StoreKind::kRedis), StoreKindName);

class RedisOutageGrpcTest : public SessionCacheGrpcTest {};

TEST_P(RedisOutageGrpcTest, RedisDownIsUnavailableAndNotServingThenServesAgain) {
  ASSERT_TRUE(Put("edge", "sid", "s").ok());
  redis_->Kill();
  ASSERT_TRUE(AwaitHealth(*channel_, "tlscache.v1.SessionCache", HealthCheckResponse::NOT_SERVING));
  EXPECT_TRUE(AwaitHealth(*channel_, "", HealthCheckResponse::NOT_SERVING));
  // The process itself is alive: a liveness probe must not restart it for Redis's outage.
  EXPECT_EQ(*CheckHealth(*channel_, "tlscache.v1.Process"), HealthCheckResponse::SERVING);
  GetResponse got;
  grpc::Status status = Get("edge", "sid", &got);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(absl::StrCat("127.0.0.1:", redis_->port())));
  EXPECT_EQ(Put("edge", "sid", "s").error_code(), grpc::StatusCode::UNAVAILABLE);
  ASSERT_TRUE(redis_->Restart().ok());
  ASSERT_TRUE(AwaitHealth(*channel_, "tlscache.v1.SessionCache", HealthCheckResponse::SERVING));
  EXPECT_TRUE(Put("edge", "sid", "back").ok());
  ASSERT_TRUE(Get("edge", "sid", &got).ok());
  EXPECT_EQ(got.session(), "back");
}

INSTANTIATE_TEST_SUITE_P(Redis, RedisOutageGrpcTest, ::testing::Values(StoreKind::kRedis),
                         StoreKindName);

}  // namespace
}  // namespace tlscache::server
