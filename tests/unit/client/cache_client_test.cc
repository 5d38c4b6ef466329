#include "client/cache_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "common/files.h"
#include "gtest/gtest.h"
#include "tests/testing/eventually.h"
#include "tests/testing/fake_session_cache.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/tls_pair.h"

namespace tlscache::client {
namespace {

using ::tlscache::testing::Eventually;
using ::tlscache::testing::FakeSessionCache;

std::shared_ptr<CacheClient> MakeClient(const std::string& addr,
                                        absl::Duration timeout = absl::Milliseconds(200)) {
  ClientOptions options;
  options.addr = addr;
  options.lookup_timeout = timeout;
  options.breaker.failure_threshold = 3;
  options.breaker.initial_open = absl::Milliseconds(200);
  auto client = CacheClient::Create(options);
  EXPECT_TRUE(client.ok()) << client.status();
  return *client;
}

TEST(CacheClientTest, PutIsSentInTheBackgroundAndGetFindsIt) {
  FakeSessionCache fake;
  auto client = MakeClient(fake.addr());
  client->Put("ns", "id", SecretBytes(absl::string_view("session")), 60);
  ASSERT_TRUE(client->Flush(absl::Seconds(5)));
  EXPECT_EQ(fake.puts(), 1);
  auto got = client->Get("ns", "id", false);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->view(), "session");
  EXPECT_TRUE(absl::IsNotFound(client->Get("ns", "other", false).status()));
  client->Delete("ns", "id");
  ASSERT_TRUE(client->Flush(absl::Seconds(5)));
  EXPECT_EQ(fake.deletes(), 1);
  ClientStats stats = client->stats();
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.stores, 2u);
}

TEST(CacheClientTest, ConsumeIsPassedThrough) {
  FakeSessionCache fake;
  auto client = MakeClient(fake.addr());
  (void)client->Get("ns", "id", /*consume=*/true);
  EXPECT_TRUE(fake.last_get_consumed());
  (void)client->Get("ns", "id", /*consume=*/false);
  EXPECT_FALSE(fake.last_get_consumed());
}

TEST(CacheClientTest, ASlowCacheCostsAGetNoMoreThanItsDeadline) {
  FakeSessionCache fake;
  auto client = MakeClient(fake.addr(), absl::Milliseconds(20));
  ASSERT_TRUE(absl::IsNotFound(client->Get("ns", "warm-up", false).status()));
  fake.SetDelay(absl::Seconds(1));
  const absl::Time start = absl::Now();
  auto got = client->Get("ns", "id", false);
  const absl::Duration took = absl::Now() - start;
  EXPECT_TRUE(absl::IsDeadlineExceeded(got.status())) << got.status();
  EXPECT_LT(took, absl::Milliseconds(500)) << took;  // 20 ms deadline; far from 1 s
  EXPECT_EQ(client->stats().timeouts, 1u);
}

TEST(CacheClientTest, RepeatedFailuresOpenTheBreakerThenAProbeClosesIt) {
  FakeSessionCache fake;
  auto client = MakeClient(fake.addr());
  fake.SetGetAnswer(grpc::StatusCode::UNAVAILABLE);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(client->Get("ns", "id", false).ok());
  EXPECT_EQ(client->stats().breaker, BreakerState::kOpen);
  const int asked = fake.gets();
  EXPECT_TRUE(absl::IsUnavailable(client->Get("ns", "id", false).status()));
  EXPECT_EQ(fake.gets(), asked);  // not sent
  EXPECT_EQ(client->stats().skipped, 1u);
  fake.SetGetAnswer(grpc::StatusCode::OK);
  EXPECT_TRUE(Eventually([&] {
    return client->Get("ns", "id", false).status().code() == absl::StatusCode::kNotFound;
  }));
  EXPECT_EQ(client->stats().breaker, BreakerState::kClosed);
}

// The run-queue wait a test's lookups see: each read adds `per_read`.
RunQueueWaitFn FakeRunQueue(std::shared_ptr<std::atomic<int64_t>> per_read_us) {
  auto total = std::make_shared<std::atomic<int64_t>>(0);
  return [per_read_us, total]() -> std::optional<absl::Duration> {
    return absl::Microseconds(total->fetch_add(per_read_us->load()) + per_read_us->load());
  };
}

TEST(CacheClientTest, TimeoutsOfABusyNodeLeaveTheBreakerAndThoseOfASlowCacheOpenIt) {
  FakeSessionCache fake;
  auto per_read_us = std::make_shared<std::atomic<int64_t>>(0);
  ClientOptions options;
  options.addr = fake.addr();
  options.lookup_timeout = absl::Milliseconds(20);
  options.breaker.failure_threshold = 3;
  options.run_queue_wait = FakeRunQueue(per_read_us);
  auto client = *CacheClient::Create(options);
  ASSERT_TRUE(absl::IsNotFound(client->Get("ns", "warm-up", false).status()));
  fake.SetDelay(absl::Seconds(1));
  // The thread waited for a core for half of each lookup: the node, not the cache.
  per_read_us->store(10'000);
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(absl::IsDeadlineExceeded(client->Get("ns", "id", false).status()));
  }
  EXPECT_EQ(client->stats().breaker, BreakerState::kClosed);
  EXPECT_EQ(client->stats().busy_timeouts, 10u);
  // An idle node whose lookups time out: the cache is slow (or black-holed).
  per_read_us->store(0);
  for (int i = 0; i < 3; ++i) (void)client->Get("ns", "id", false);
  EXPECT_EQ(client->stats().breaker, BreakerState::kOpen);
  EXPECT_EQ(client->stats().timeouts, 13u);
}

TEST(CacheClientTest, TheRunQueueWaitOfTheCallingThreadIsReadFromTheKernel) {
  const std::optional<absl::Duration> before = ThreadRunQueueWait();
  ASSERT_TRUE(before.has_value()) << "no /proc/thread-self/schedstat";
  volatile uint64_t spin = 0;
  for (int i = 0; i < 10'000'000; ++i) spin = spin + i;
  const std::optional<absl::Duration> after = ThreadRunQueueWait();
  ASSERT_TRUE(after.has_value());
  EXPECT_GE(*after, *before);  // cumulative: never goes back
}

TEST(CacheClientTest, NoCacheAtAllIsAFastError) {
  const int port = testing::PickFreePort();  // nothing listens there
  auto client = MakeClient("127.0.0.1:" + std::to_string(port), absl::Milliseconds(50));
  for (int i = 0; i < 10; ++i) {
    const absl::Time start = absl::Now();
    EXPECT_FALSE(client->Get("ns", "id", false).ok());
    EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
  }
  client->Put("ns", "id", SecretBytes(absl::string_view("s")), 60);  // must not block
}

TEST(CacheClientTest, AFullQueueDropsAndCountsInsteadOfBlocking) {
  // A cache that accepts connections and never answers: the one call in flight stays there.
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener, 16), 0);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ClientOptions options;
  options.addr = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  options.queue_capacity = 4;
  options.max_in_flight = 1;
  {
    auto client = *CacheClient::Create(options);
    for (int i = 0; i < 1000; ++i) {
      client->Put("ns", std::to_string(i), SecretBytes(absl::string_view("s")), 60);
    }
    // One in flight, four queued, the rest dropped; no call waited for the cache.
    EXPECT_EQ(client->stats().queue_drops, 995u);
  }
  close(listener);
}

TEST(CacheClientTest, CreateRejectsBadOptions) {
  ClientOptions options;
  EXPECT_TRUE(absl::IsInvalidArgument(CacheClient::Create(options).status()));
  options.addr = "127.0.0.1:1";
  options.cert_file = "/nonexistent.pem";
  EXPECT_TRUE(absl::IsInvalidArgument(CacheClient::Create(options).status()));
  options.cert_file.clear();
  options.ca_file = "/nonexistent/ca.pem";
  auto missing = CacheClient::Create(options);
  EXPECT_TRUE(absl::IsInvalidArgument(missing.status()));
  EXPECT_NE(missing.status().message().find("/nonexistent/ca.pem"), absl::string_view::npos);
}

// gRPC cannot follow a fork() once this process used it, so a child of a process that used
// the cache must run without it: fast misses, no hang. (The supported pattern, a parent that
// only attaches and children that serve, is shown end to end with tlscache-tls-server
// --workers in tests/e2e/farm/farm_test.py.)
TEST(CacheClientTest, AChildOfAProcessThatUsedTheCacheRunsWithoutItAndNeverHangs) {
  FakeSessionCache fake;
  auto client = MakeClient(fake.addr());
  ASSERT_TRUE(absl::IsNotFound(client->Get("ns", "id", false).status()));
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const absl::Time start = absl::Now();
    absl::Status got = client->Get("ns", "id", false).status();
    client->Put("ns", "id", SecretBytes(absl::string_view("s")), 60);
    const bool flushed = client->Flush(absl::Seconds(1));
    const bool fast = absl::Now() - start < absl::Seconds(1);
    _exit(absl::IsUnavailable(got) && flushed && fast ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  // The parent is unaffected.
  EXPECT_TRUE(absl::IsNotFound(client->Get("ns", "id", false).status()));
}

class CacheClientTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    ASSERT_TRUE(testing::WriteSelfSignedPem("server", Path("server.pem"), Path("server.key")).ok());
    ASSERT_TRUE(testing::WriteSelfSignedPem("client", Path("client.pem"), Path("client.key")).ok());
  }
  std::string Path(const std::string& name) const { return dir_.Path(name); }
  std::string Read(const std::string& name) const { return *ReadSmallFile(Path(name)); }

  std::shared_ptr<grpc::ServerCredentials> ServerCredentials(bool require_client_cert) const {
    grpc::SslServerCredentialsOptions options(
        require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                            : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    options.pem_root_certs = require_client_cert ? Read("client.pem") : "";
    options.pem_key_cert_pairs.push_back({Read("server.key"), Read("server.pem")});
    return grpc::SslServerCredentials(options);
  }

  std::shared_ptr<CacheClient> Client(const std::string& addr, bool tls, bool client_cert) {
    ClientOptions options;
    options.addr = addr;
    options.lookup_timeout = absl::Milliseconds(500);
    if (tls) options.ca_file = Path("server.pem");
    if (client_cert) {
      options.cert_file = Path("client.pem");
      options.key_file = Path("client.key");
    }
    auto client = CacheClient::Create(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return *client;
  }

  const testing::TempDir dir_{"tls"};
};

TEST_F(CacheClientTlsTest, TlsToTheCacheWithItsCa) {
  FakeSessionCache fake(ServerCredentials(/*require_client_cert=*/false));
  EXPECT_TRUE(absl::IsNotFound(Client(fake.addr(), true, false)->Get("ns", "id", false).status()));
  EXPECT_FALSE(Client(fake.addr(), false, false)->Get("ns", "id", false).ok());  // plaintext
}

TEST_F(CacheClientTlsTest, MutualTlsNeedsTheClientCertificate) {
  FakeSessionCache fake(ServerCredentials(/*require_client_cert=*/true));
  EXPECT_TRUE(absl::IsNotFound(Client(fake.addr(), true, true)->Get("ns", "id", false).status()));
  EXPECT_FALSE(Client(fake.addr(), true, false)->Get("ns", "id", false).ok());
  EXPECT_EQ(fake.gets(), 1);
}

}  // namespace
}  // namespace tlscache::client
