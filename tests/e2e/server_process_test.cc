// The tlscache-server binary as operators run it: flags, startup errors, SIGTERM, replicas and
// restarts on one Redis.
#include <signal.h>
#include <sys/stat.h>

#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/cache_client.h"
#include "common/secret_bytes.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/grpc_probe.h"
#include "tests/testing/redis_server.h"
#include "tlscache/v1/session_cache.grpc.pb.h"
#include "tlscache/v1/ticket_keys.grpc.pb.h"

namespace tlscache {
namespace {

using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;
using ::tlscache::testing::AwaitHealth;
using ::tlscache::testing::RedisServer;
using ::tlscache::testing::ServerProcess;
using ::tlscache::testing::StartServerProcess;
using ::tlscache::testing::Subprocess;

grpc::Status PutVia(int port, const std::string& id, const std::string& session) {
  return testing::PutSession(testing::Connect(port), "edge", id, session);
}

absl::StatusOr<std::string> GetVia(int port, const std::string& id,
                                   absl::Duration deadline = absl::Seconds(5)) {
  return testing::GetSession(testing::Connect(port), "edge", id, deadline);
}

ServerProcess MustStart(const std::vector<std::string>& flags) {
  auto server = StartServerProcess(flags);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : ServerProcess{};
}

TEST(ServerProcessTest, ServesOnTheMemoryStoreAndExitsZeroOnSigterm) {
  ServerProcess server = MustStart({});
  ASSERT_NE(server.process, nullptr);
  auto channel = testing::Connect(server.port);
  ASSERT_TRUE(AwaitHealth(*channel, "", HealthCheckResponse::SERVING));
  ASSERT_TRUE(PutVia(server.port, "sid", "s").ok());
  EXPECT_EQ(*GetVia(server.port, "sid"), "s");
  channel.reset();
  server.process->Signal(SIGTERM);
  auto code = server.process->Wait(absl::Seconds(15));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << server.process->output();
  EXPECT_THAT(server.process->output(), HasSubstr("received SIGTERM"));
}

TEST(ServerProcessTest, AFollowerNoticesAServiceThatStoppedAnsweringWhileItsWriteIsBlocked) {
  ServerProcess server = MustStart({});
  ASSERT_NE(server.process, nullptr);
  client::ClientOptions options;
  options.addr = absl::StrCat("127.0.0.1:", server.port);
  auto follower = client::CacheClient::Create(options);
  ASSERT_TRUE(follower.ok()) << follower.status();
  std::shared_ptr<client::CacheClient> c = *follower;
  c->Prepare("edge", false);
  const absl::Time up_by = absl::Now() + absl::Seconds(10);
  while (c->stats().streams_up != 1) {
    ASSERT_LT(absl::Now(), up_by) << "the Follow stream did not come up";
    absl::SleepFor(absl::Milliseconds(10));
  }
  // An acknowledged store: the stream is idle, its next heartbeat half a second away.
  ASSERT_TRUE(c->Put("edge", "a", SecretBytes(absl::string_view("s")), 60, /*await_ack=*/true));
  // The service stops (a frozen host); a batch far larger than the stream's flow-control
  // window goes up at once, and its write cannot complete.
  server.process->Signal(SIGSTOP);
  const absl::Time stopped = absl::Now();
  c->Put("edge", "big", SecretBytes(std::string(900 << 10, 'b')), 60);
  // The watchdog does not run on the writer: four heartbeats (2 s) later the stream ends.
  while (c->stats().streams_up != 0) {
    ASSERT_LT(absl::Now() - stopped, absl::Seconds(10)) << "the stream stayed up";
    absl::SleepFor(absl::Milliseconds(20));
  }
  const absl::Duration noticed = absl::Now() - stopped;
  EXPECT_GE(noticed, absl::Milliseconds(1500));
  EXPECT_LT(noticed, absl::Seconds(5));
  std::printf("figure: a stopped service noticed in %s\n",
              absl::FormatDuration(absl::Trunc(noticed, absl::Milliseconds(1))).c_str());
  // Back: the stream comes up again.
  server.process->Signal(SIGCONT);
  const absl::Time back_by = absl::Now() + absl::Seconds(10);
  while (c->stats().streams_up != 1) {
    ASSERT_LT(absl::Now(), back_by) << "the stream did not come back";
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(c->stats().streams, 2u);
  c.reset();
  server.process->Signal(SIGTERM);
  EXPECT_EQ(*server.process->Wait(absl::Seconds(15)), 0);
}

TEST(ServerProcessTest, SigtermTurnsHealthNotServingAndLetsInFlightCallsFinish) {
  std::unique_ptr<RedisServer> redis;
  TLSCACHE_START_REDIS_OR_SKIP(redis);
  ServerProcess server = MustStart({"--store=" + redis->url(), "--redis_timeout_ms=5000"});
  ASSERT_NE(server.process, nullptr);
  auto channel = testing::Connect(server.port);
  ASSERT_TRUE(AwaitHealth(*channel, "", HealthCheckResponse::SERVING));
  ASSERT_TRUE(PutVia(server.port, "sid", "in-flight").ok());

  // Watch health as a load balancer would, then hold a call in flight by pausing Redis.
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext watch_context;
  watch_context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  grpc::health::v1::HealthCheckRequest watch_request;
  auto watch = health->Watch(&watch_context, watch_request);
  grpc::health::v1::HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  ASSERT_EQ(update.status(), HealthCheckResponse::SERVING);

  redis->Pause();
  auto in_flight = std::async(std::launch::async, [&] { return GetVia(server.port, "sid"); });
  // Nothing outside the paused Redis can show that the Get reached it; a local call gets there
  // in well under this, even on a loaded machine.
  absl::SleepFor(absl::Seconds(1));
  server.process->Signal(SIGTERM);

  ASSERT_TRUE(watch->Read(&update)) << server.process->output();
  EXPECT_EQ(update.status(), HealthCheckResponse::NOT_SERVING) << server.process->output();
  watch_context.TryCancel();

  redis->Resume();
  absl::StatusOr<std::string> got = in_flight.get();
  ASSERT_TRUE(got.ok()) << got.status() << "\n" << server.process->output();
  EXPECT_EQ(*got, "in-flight");
  auto code = server.process->Wait(absl::Seconds(15));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << server.process->output();
}

TEST(ServerProcessTest, TwoReplicasOnOneRedisShareEntriesAndARestartFindsThem) {
  std::unique_ptr<RedisServer> redis;
  TLSCACHE_START_REDIS_OR_SKIP(redis);
  const std::string store = "--store=" + redis->url();
  ServerProcess a = MustStart({store});
  ServerProcess b = MustStart({store});
  ASSERT_NE(a.process, nullptr);
  ASSERT_NE(b.process, nullptr);
  ASSERT_TRUE(AwaitHealth(*testing::Connect(a.port), "", HealthCheckResponse::SERVING));
  ASSERT_TRUE(AwaitHealth(*testing::Connect(b.port), "", HealthCheckResponse::SERVING));
  ASSERT_TRUE(PutVia(a.port, "made-on-a", "session-a").ok());
  ASSERT_TRUE(PutVia(b.port, "made-on-b", "session-b").ok());
  EXPECT_EQ(*GetVia(b.port, "made-on-a"), "session-a");
  EXPECT_EQ(*GetVia(a.port, "made-on-b"), "session-b");

  a.process->Signal(SIGTERM);
  ASSERT_EQ(*a.process->Wait(absl::Seconds(15)), 0);
  ServerProcess restarted = MustStart({store});
  ASSERT_NE(restarted.process, nullptr);
  ASSERT_TRUE(AwaitHealth(*testing::Connect(restarted.port), "", HealthCheckResponse::SERVING));
  EXPECT_EQ(*GetVia(restarted.port, "made-on-a"), "session-a");
  EXPECT_EQ(*GetVia(restarted.port, "made-on-b"), "session-b");
}

TEST(ServerProcessTest, RedisUnreachableAtStartIsNotFatal) {
  std::unique_ptr<RedisServer> redis;
  TLSCACHE_START_REDIS_OR_SKIP(redis);
  redis->Kill();
  ServerProcess server = MustStart({"--store=" + redis->url()});
  ASSERT_NE(server.process, nullptr);
  auto channel = testing::Connect(server.port);
  ASSERT_TRUE(AwaitHealth(*channel, "", HealthCheckResponse::NOT_SERVING));
  EXPECT_TRUE(server.process->WaitForOutput("not answering", absl::Seconds(10)).ok());
  auto got = GetVia(server.port, "sid");
  EXPECT_TRUE(absl::IsUnavailable(got.status())) << got.status();
  ASSERT_TRUE(redis->Restart().ok());
  ASSERT_TRUE(AwaitHealth(*channel, "", HealthCheckResponse::SERVING));
  EXPECT_TRUE(PutVia(server.port, "sid", "s").ok());
  EXPECT_TRUE(server.process->running());
}

struct BadFlags {
  std::vector<std::string> flags;
  std::string says;
};

TEST(ServerProcessTest, BadFlagsAreOneClearLineAndANonZeroExit) {
  const std::vector<BadFlags> cases = {
      {{"--store=memcached://h:1"}, "--store=memcached://h:1: unsupported store"},
      {{"--store=redis://h:99999"}, "port '99999'"},
      {{"--redis_pool_size=0"}, "--redis_pool_size=0"},
      {{"--redis_timeout_ms=0"}, "--redis_timeout_ms"},
      {{"--default_ttl=2h", "--max_ttl=1h"}, "--default_ttl=2h"},
      {{"--max_session_bytes=0"}, "--max_session_bytes=0"},
      {{"--memory_max_bytes=1000"}, "--memory_max_bytes"},
      {{"--default_ttl=soon"}, "default_ttl"},
      {{"--no_such_flag=1"}, "no_such_flag"},
      {{"--max_concurrent_streams=0"}, "--max_concurrent_streams=0"},
      {{"--tls_cert=/etc/hostname"}, "--tls_cert and --tls_key go together"},
      {{"--tls_client_ca=/etc/hostname"}, "--tls_client_ca needs --tls_cert"},
      {{"--tls_cert=/nonexistent.pem", "--tls_key=/nonexistent.key"}, "/nonexistent.pem"},
      {{"--tls_cert=/etc/hostname", "--tls_key=/etc/hostname"}, "no PEM certificate"},
      {{"--authz_file=/etc/hostname"}, "--authz_file needs --tls_client_ca"},
      {{"--seal_key_file=/nonexistent"}, "/nonexistent"},
      {{"--seal_key_file=/etc/hostname"}, "--seal_key_file=/etc/hostname: line 1"},
      {{"--listen=0.0.0.0:0"}, "--listen=0.0.0.0:0 is not a loopback address"},
  };
  for (const BadFlags& c : cases) {
    std::vector<std::string> argv = {testing::BuiltBinary("tlscache-server"),
                                     "--listen=127.0.0.1:0"};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    auto process = Subprocess::Start(argv);
    ASSERT_TRUE(process.ok());
    auto code = (*process)->Wait(absl::Seconds(10));
    ASSERT_TRUE(code.ok()) << c.says << ": still running";
    EXPECT_NE(*code, 0) << c.says;
    auto output = (*process)->FullOutput(absl::Seconds(5));
    ASSERT_TRUE(output.ok());
    EXPECT_THAT(*output, HasSubstr(c.says));
    std::vector<absl::string_view> lines =
        absl::StrSplit(absl::StripTrailingAsciiWhitespace(*output), '\n');
    EXPECT_EQ(lines.size(), 1u) << *output;
  }
}

TEST(ServerProcessTest, AnAddressInUseIsAClearStartupError) {
  ServerProcess first = MustStart({});
  ASSERT_NE(first.process, nullptr);
  auto second = Subprocess::Start(
      {testing::BuiltBinary("tlscache-server"), absl::StrCat("--listen=127.0.0.1:", first.port)});
  ASSERT_TRUE(second.ok());
  auto code = (*second)->Wait(absl::Seconds(10));
  ASSERT_TRUE(code.ok());
  EXPECT_NE(*code, 0);
  auto output = (*second)->FullOutput(absl::Seconds(5));
  ASSERT_TRUE(output.ok());
  EXPECT_EQ(*output, absl::StrCat("tlscache-server: cannot listen on 127.0.0.1:", first.port,
                                  ": Address already in use\n"));
}

}  // namespace
}  // namespace tlscache

namespace tlscache {
namespace {

using ::tlscache::testing::CertFiles;
using ::tlscache::testing::TestPki;

class SecureServerProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = TestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *std::move(pki);
  }

  std::string Path(const std::string& name) const { return pki_->dir().Path(name); }
  void Write(const std::string& name, const std::string& text) { pki_->dir().Write(name, text); }

  std::unique_ptr<TestPki> pki_;
};

TEST_F(SecureServerProcessTest, SighupReloadsTheAuthzFileAndABadFileKeepsThePolicyInForce) {
  CertFiles tenant = *pki_->IssueClient("tenant", "t", "URI:spiffe://farm/t");
  Write("authz", "spiffe://farm/t shop\n");
  ServerProcess server =
      MustStart({"--tls_cert=" + pki_->server().cert, "--tls_key=" + pki_->server().key,
                 "--tls_client_ca=" + pki_->ca_file(), "--authz_file=" + Path("authz"),
                 "--shutdown_grace=2s"});
  ASSERT_NE(server.process, nullptr);
  EXPECT_THAT(server.process->output(), HasSubstr("(mTLS, authorization by --authz_file)"));
  auto channel = testing::ConnectTls(server.port, pki_->ca_file(), &tenant);
  ASSERT_TRUE(testing::PutSession(channel, "shop", "id", "session").ok());
  ASSERT_EQ(testing::PutSession(channel, "blog", "id", "session").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  Write("authz", "spiffe://farm/t shop,blog\n");
  server.process->Signal(SIGHUP);
  ASSERT_TRUE(server.process->WaitForOutput("SIGHUP: reloaded", absl::Seconds(10)).ok());
  EXPECT_TRUE(testing::PutSession(channel, "blog", "id", "session").ok());

  Write("authz", "spiffe://farm/t shop\nspiffe://farm/t blog\n");
  server.process->Signal(SIGHUP);
  auto why =
      server.process->WaitForOutput("keeping the authorization policy in force", absl::Seconds(10));
  ASSERT_TRUE(why.ok()) << server.process->output();
  EXPECT_THAT(*why, HasSubstr("line 2"));
  EXPECT_TRUE(testing::PutSession(channel, "blog", "id", "session").ok());
  server.process->Signal(SIGTERM);
  EXPECT_EQ(*server.process->Wait(absl::Seconds(15)), 0);
}

// Authorization holds for streams already open: an identity that loses a namespace by a
// reload stops receiving its sessions and ticket keys within a second.
TEST_F(SecureServerProcessTest, AReloadEndsTheOpenStreamsOfAnIdentityThatLostTheNamespace) {
  CertFiles tenant = *pki_->IssueClient("tenant", "t", "URI:spiffe://farm/t");
  Write("authz", "spiffe://farm/t shop,blog\n");
  ServerProcess server =
      MustStart({"--tls_cert=" + pki_->server().cert, "--tls_key=" + pki_->server().key,
                 "--tls_client_ca=" + pki_->ca_file(), "--authz_file=" + Path("authz"),
                 "--shutdown_grace=1s"});
  ASSERT_NE(server.process, nullptr);
  auto channel = testing::ConnectTls(server.port, pki_->ca_file(), &tenant);

  // A Follow stream on each namespace, both answered.
  auto sessions = v1::SessionCache::NewStub(channel);
  struct Following {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReaderWriter<v1::FollowRequest, v1::FollowResponse>> stream;
  };
  auto follow = [&](const std::string& ns) {
    auto following = std::make_unique<Following>();
    // A bound, so that a stream left open fails the test rather than hanging it.
    following->context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    following->stream = sessions->Follow(&following->context);
    v1::FollowRequest hello;
    hello.set_namespace_(ns);
    hello.set_batch(1);
    EXPECT_TRUE(following->stream->Write(hello));
    v1::FollowResponse response;  // until the hello's acknowledgement
    while (response.acks_size() == 0 && following->stream->Read(&response)) {
    }
    EXPECT_EQ(response.acks_size(), 1) << ns;
    return following;
  };
  std::unique_ptr<Following> shop = follow("shop");
  std::unique_ptr<Following> blog = follow("blog");
  // And a WatchTicketKeys stream on "shop", its first ring read.
  auto tickets = v1::TicketKeys::NewStub(channel);
  grpc::ClientContext watch_context;
  watch_context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  v1::TicketKeysRequest watch_request;
  watch_request.set_namespace_("shop");
  auto watch = tickets->WatchTicketKeys(&watch_context, watch_request);
  v1::TicketKeySet ring;
  ASSERT_TRUE(watch->Read(&ring));
  ASSERT_GT(ring.keys_size(), 0);

  Write("authz", "spiffe://farm/t blog\n");
  server.process->Signal(SIGHUP);
  ASSERT_TRUE(server.process->WaitForOutput("SIGHUP: reloaded", absl::Seconds(10)).ok());
  const absl::Time reloaded = absl::Now();

  // Each "shop" stream ends (reads run until the stream does), with PERMISSION_DENIED.
  v1::FollowResponse response;
  while (shop->stream->Read(&response)) {
  }
  const grpc::Status follow_status = shop->stream->Finish();
  while (watch->Read(&ring)) {
  }
  const grpc::Status watch_status = watch->Finish();
  const absl::Duration took = absl::Now() - reloaded;
  EXPECT_EQ(follow_status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << follow_status.error_message();
  EXPECT_THAT(follow_status.error_message(), HasSubstr("shop"));
  EXPECT_EQ(watch_status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << watch_status.error_message();
  EXPECT_THAT(watch_status.error_message(), HasSubstr("shop"));
  EXPECT_LT(took, absl::Seconds(1));
  // The namespace still granted keeps its stream: it still answers a batch.
  v1::FollowRequest batch;
  batch.set_batch(2);
  ASSERT_TRUE(blog->stream->Write(batch));
  do {
    response.Clear();
    ASSERT_TRUE(blog->stream->Read(&response));
  } while (response.acks_size() == 0);
  EXPECT_EQ(response.acks(0).batch(), 2u);
  blog->context.TryCancel();
  blog->stream->Finish();
  server.process->Signal(SIGTERM);
  EXPECT_EQ(*server.process->Wait(absl::Seconds(15)), 0);
}

TEST_F(SecureServerProcessTest, TlscachectlTalksMtlsWithItsCertificateAndFailsClearlyWithout) {
  CertFiles ops = *pki_->IssueClient("ops", "ops", "URI:spiffe://farm/ops");
  Write("authz", "spiffe://farm/ops *\n");
  ServerProcess server =
      MustStart({"--tls_cert=" + pki_->server().cert, "--tls_key=" + pki_->server().key,
                 "--tls_client_ca=" + pki_->ca_file(), "--authz_file=" + Path("authz")});
  ASSERT_NE(server.process, nullptr);
  const std::string addr = absl::StrCat("--addr=localhost:", server.port);
  const std::string ctl = testing::BuiltBinary("tlscachectl");
  auto run = [](const std::vector<std::string>& argv) {
    auto process = Subprocess::Start(argv);
    EXPECT_TRUE(process.ok());
    auto code = (*process)->Wait(absl::Seconds(20));
    EXPECT_TRUE(code.ok());
    return std::make_pair(*code, *(*process)->FullOutput(absl::Seconds(5)));
  };
  auto [ok_code, ok_output] =
      run({ctl, addr, "--ca_file=" + pki_->ca_file(), "--cert_file=" + ops.cert,
           "--key_file=" + ops.key, "keys", "show"});
  EXPECT_EQ(ok_code, 0) << ok_output;
  EXPECT_THAT(ok_output, HasSubstr("ring version 1"));
  auto [anonymous_code, anonymous_output] =
      run({ctl, addr, "--ca_file=" + pki_->ca_file(), "--timeout=2s", "keys", "show"});
  EXPECT_NE(anonymous_code, 0);
  EXPECT_THAT(anonymous_output, HasSubstr("tlscachectl: keys show at localhost:"));
  auto [half_code, half_output] = run({ctl, addr, "--cert_file=" + ops.cert, "keys", "show"});
  EXPECT_EQ(half_code, 2);
  EXPECT_THAT(half_output, HasSubstr("--cert_file and key_file go together"));
}

TEST_F(SecureServerProcessTest, PlaintextBeyondLoopbackNeedsAllowInsecure) {
  auto process = Subprocess::Start(
      {testing::BuiltBinary("tlscache-server"), "--listen=0.0.0.0:0", "--allow_insecure"});
  ASSERT_TRUE(process.ok());
  EXPECT_TRUE((*process)->WaitForOutput("(plaintext)", absl::Seconds(20)).ok())
      << (*process)->output();
  (*process)->Signal(SIGTERM);
  EXPECT_EQ(*(*process)->Wait(absl::Seconds(15)), 0);
}

TEST_F(SecureServerProcessTest, ARedisStoreWithoutASealKeyIsWarnedAbout) {
  // Redis need not be up: the warning comes at startup.
  ServerProcess unsealed = MustStart({"--store=redis://127.0.0.1:1"});
  ASSERT_NE(unsealed.process, nullptr);
  EXPECT_THAT(unsealed.process->output(), HasSubstr("in the clear"));

  Write("seal.keys", "# current\n" + std::string(64, 'a') + "\n");
  chmod(Path("seal.keys").c_str(), 0600);
  ServerProcess sealed =
      MustStart({"--store=redis://127.0.0.1:1", "--seal_key_file=" + Path("seal.keys")});
  ASSERT_NE(sealed.process, nullptr);
  EXPECT_THAT(sealed.process->output(), HasSubstr("sealed (1 key)"));
  EXPECT_THAT(sealed.process->output(), ::testing::Not(HasSubstr("in the clear")));
  EXPECT_THAT(sealed.process->output(), ::testing::Not(HasSubstr("aaaaaaaa")));
}

}  // namespace
}  // namespace tlscache
