// The plugin's callbacks in real (in-memory) OpenSSL handshakes against a fake cache service.
#include "plugins/openssl/plugin.h"

#include <openssl/ssl.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/time/clock.h"
#include "common/threads.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/eventually.h"
#include "tests/testing/fake_session_cache.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/tls_pair.h"
#include "tlscache/openssl.h"

namespace tlscache::openssl {
namespace {

using ::testing::HasSubstr;
using ::tlscache::testing::Eventually;
using ::tlscache::testing::FakeSessionCache;
using ::tlscache::testing::MakeClientContext;
using ::tlscache::testing::EndWithFatalAlert;
using ::tlscache::testing::MakeServerContext;
using ::tlscache::testing::RunHandshake;
using ::tlscache::testing::TempDir;
using ::tlscache::testing::WriteSelfSignedPem;

class PluginTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    // Two nodes of a farm: the same certificate is not needed, the same cache is.
    origin_ = MakeServerContext();
    other_ = MakeServerContext();
    client_ctx_ = MakeClientContext(GetParam());
    Attach(origin_.get());
    Attach(other_.get());
  }

  void Attach(SSL_CTX* ctx) {
    const std::string config = "addr=" + fake_.addr() + ";timeout_ms=500;namespace=test";
    ASSERT_EQ(tlscache_attach(ctx, config.c_str()), 1) << tlscache_last_error();
  }

  // A full handshake on the origin node; returns the client's session once it was stored.
  SslSessionPtr SessionFromOrigin() {
    const int puts = fake_.puts();
    auto h = RunHandshake(client_ctx_.get(), origin_.get(), nullptr);
    EXPECT_TRUE(h.ok()) << h.status();
    if (!h.ok()) return nullptr;
    EXPECT_FALSE(h->resumed);
    EXPECT_TRUE(Eventually([&] { return fake_.puts() > puts; }));
    return SslSessionPtr(SSL_get1_session(h->client.get()));
  }

  PluginStats StatsOf(SSL_CTX* ctx) {
    PluginStats stats;
    EXPECT_TRUE(GetPluginStats(ctx, &stats));
    return stats;
  }

  FakeSessionCache fake_;
  SslCtxPtr origin_, other_, client_ctx_;
};

TEST_P(PluginTest, AnotherNodeResumesTheSessionTheOriginStored) {
  SslSessionPtr session = SessionFromOrigin();
  ASSERT_NE(session, nullptr);
  auto h = RunHandshake(client_ctx_.get(), other_.get(), session.get());
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_TRUE(h->resumed);
  EXPECT_EQ(StatsOf(other_.get()).resumed, 1u);
  EXPECT_GE(StatsOf(origin_.get()).stored, 1u);
}

// The ID a client offers with `session`: its TLS 1.3 ticket (a stateful ticket is the
// server's session ID), else its session ID.
std::string OfferedId(SSL_SESSION* session) {
  const unsigned char* ticket = nullptr;
  size_t ticket_len = 0;
  SSL_SESSION_get0_ticket(session, &ticket, &ticket_len);
  if (ticket_len > 0) return std::string(reinterpret_cast<const char*>(ticket), ticket_len);
  unsigned int id_len = 0;
  const unsigned char* id = SSL_SESSION_get_id(session, &id_len);
  return std::string(reinterpret_cast<const char*>(id), id_len);
}

TEST_P(PluginTest, TheCacheHoldsASessionBeforeTheHandshakeThatMadeItEnds) {
  // A client may come back to another node as soon as it has the session: the store was
  // acknowledged before the handshake gave it out.
  auto h = RunHandshake(client_ctx_.get(), origin_.get(), nullptr);
  ASSERT_TRUE(h.ok()) << h.status();
  SslSessionPtr session(SSL_get1_session(h->client.get()));
  EXPECT_TRUE(fake_.Holds(OfferedId(session.get())));
}

TEST_P(PluginTest, TlscacheStatsCountsAContextOrTheWholeProcessAsJson) {
  SslSessionPtr session = SessionFromOrigin();
  ASSERT_NE(session, nullptr);
  auto h = RunHandshake(client_ctx_.get(), other_.get(), session.get());
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_TRUE(h->resumed);
  const char* other = tlscache_stats(other_.get());
  ASSERT_NE(other, nullptr) << tlscache_last_error();
  EXPECT_THAT(other, ::testing::StartsWith("{\"contexts\":1,\"sessions\":{"));
  EXPECT_THAT(other, ::testing::HasSubstr("\"resumed\":1,"));
  EXPECT_THAT(other, ::testing::HasSubstr("\"lookups\":{\"hits\":1,"));
  EXPECT_THAT(other, ::testing::HasSubstr("\"breaker\":\"closed\"}"));
  const std::string origin = tlscache_stats(origin_.get());
  EXPECT_THAT(origin, ::testing::HasSubstr("\"resumed\":0,"));
  EXPECT_THAT(origin, ::testing::Not(::testing::HasSubstr("\"stored\":0,")));
  // The process: at least these two contexts (other tests' contexts may still be alive).
  const std::string process = tlscache_stats(nullptr);
  int contexts = 0;
  ASSERT_EQ(std::sscanf(process.c_str(), "{\"contexts\":%d", &contexts), 1) << process;
  EXPECT_GE(contexts, 2);
  // A context without tlscache has no stats, and says so.
  SslCtxPtr plain = MakeServerContext();
  EXPECT_EQ(tlscache_stats(plain.get()), nullptr);
  EXPECT_THAT(tlscache_last_error(), ::testing::HasSubstr("not attached"));
}

TEST_P(PluginTest, AttachingAContextTwiceCountsItOnce) {
  auto contexts = [] {
    int count = 0;
    const char* stats = tlscache_stats(nullptr);
    EXPECT_NE(stats, nullptr) << tlscache_last_error();
    EXPECT_EQ(std::sscanf(stats, "{\"contexts\":%d", &count), 1) << stats;
    return count;
  };
  const int before = contexts();
  Attach(other_.get());  // the configuration again: it replaces the first
  Attach(other_.get());
  EXPECT_EQ(contexts(), before);
  // And the replaced configuration still serves handshakes.
  SslSessionPtr session = SessionFromOrigin();
  ASSERT_NE(session, nullptr);
  auto h = RunHandshake(client_ctx_.get(), other_.get(), session.get());
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_TRUE(h->resumed);
  {
    SslCtxPtr freed = MakeServerContext();
    Attach(freed.get());
    EXPECT_EQ(contexts(), before + 1);
  }
  EXPECT_EQ(contexts(), before);  // a freed context leaves the count
}

TEST(PluginAbiTest, TheLibraryReportsTheAbiOfItsHeader) {
  EXPECT_EQ(tlscache_abi_version(), TLSCACHE_ABI_VERSION);
  EXPECT_GE(TLSCACHE_ABI_VERSION, 1);
}

TEST_P(PluginTest, GarbageTruncatedOrForeignSessionsAreAMissNotACrash) {
  SslSessionPtr offered = SessionFromOrigin();
  SslSessionPtr other = SessionFromOrigin();
  ASSERT_NE(offered, nullptr);
  ASSERT_NE(other, nullptr);
  std::vector<std::string> stored = fake_.StoredSessions();
  ASSERT_GE(stored.size(), 2u);
  // Whichever stored session is not the offered one belongs to another ID.
  std::vector<std::string> blobs = {std::string("\x30\x82garbage", 9), std::string(1, '\0'),
                                    std::string(5000, '\xff')};
  for (const std::string& der : stored) {
    blobs.push_back(der.substr(0, der.size() / 2));  // truncated
    blobs.push_back(der + "x");                      // trailing bytes
  }
  uint64_t rejected_before = StatsOf(other_.get()).rejected;
  for (const std::string& blob : blobs) {
    fake_.SetBlob(blob);
    auto h = RunHandshake(client_ctx_.get(), other_.get(), offered.get());
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_FALSE(h->resumed);
  }
  EXPECT_EQ(StatsOf(other_.get()).rejected - rejected_before, blobs.size());
  // Exactly one of the stored sessions belongs to the offered ID; the others are foreign.
  // Each is offered to a node of its own, whose internal cache has not seen the session yet.
  int resumed = 0;
  for (const std::string& der : stored) {
    fake_.SetBlob(der);
    SslCtxPtr node = MakeServerContext();
    Attach(node.get());
    auto h = RunHandshake(client_ctx_.get(), node.get(), offered.get());
    ASSERT_TRUE(h.ok()) << h.status();
    resumed += h->resumed ? 1 : 0;
  }
  EXPECT_EQ(resumed, 1);
}

// A session that ends in a fatal alert ends in the farm too (RFC 5246 7.2.2).
TEST_P(PluginTest, AFatalAlertDeletesTheSessionFromTheFarm) {
  auto h = RunHandshake(client_ctx_.get(), origin_.get(), nullptr, /*leave_open=*/true);
  ASSERT_TRUE(h.ok()) << h.status();
  SslSessionPtr session(SSL_get1_session(h->client.get()));  // the newest ticket, in TLS 1.3
  ASSERT_TRUE(Eventually([&] { return fake_.Holds(OfferedId(session.get())); }));
  ASSERT_TRUE(EndWithFatalAlert(*h).ok());
  EXPECT_TRUE(Eventually([&] { return !fake_.Holds(OfferedId(session.get())); }));
  EXPECT_EQ(StatsOf(origin_.get()).deleted, 1u);  // once, though two callbacks saw it
  // Another node no longer resumes it.
  auto again = RunHandshake(client_ctx_.get(), other_.get(), session.get());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->resumed);
}

// OpenSSL evicts from a full internal cache: those sessions are good for the rest of the farm.
// A fatal alert there still deletes.
TEST_P(PluginTest, AnEvictionFromAFullInternalCacheDeletesNothingButAFatalAlertStillDoes) {
  SSL_CTX_sess_set_cache_size(origin_.get(), 2);
  std::vector<SslSessionPtr> sessions;
  for (int i = 0; i < 6; ++i) {
    auto h = RunHandshake(client_ctx_.get(), origin_.get(), nullptr);
    ASSERT_TRUE(h.ok()) << h.status();
    sessions.emplace_back(SSL_get1_session(h->client.get()));
  }
  ASSERT_GE(SSL_CTX_sess_cache_full(origin_.get()), 4);  // evictions happened
  EXPECT_EQ(fake_.deletes(), 0);
  for (const SslSessionPtr& session : sessions) {
    EXPECT_TRUE(Eventually([&] { return fake_.Holds(OfferedId(session.get())); }));
  }
  auto h = RunHandshake(client_ctx_.get(), origin_.get(), nullptr, /*leave_open=*/true);
  ASSERT_TRUE(h.ok()) << h.status();
  SslSessionPtr doomed(SSL_get1_session(h->client.get()));
  ASSERT_TRUE(Eventually([&] { return fake_.Holds(OfferedId(doomed.get())); }));
  ASSERT_TRUE(EndWithFatalAlert(*h).ok());
  EXPECT_TRUE(Eventually([&] { return !fake_.Holds(OfferedId(doomed.get())); }));
  EXPECT_EQ(fake_.deletes(), 1);
}

// OpenSSL keeps what a lookup returned in its own cache only after the lookup returned: a
// withdrawal that arrives in between finds nothing there to remove. The handshake, once done,
// looks again: the session resumes there no more.
TEST(PluginWithdrawalTest, ASessionWithdrawnAsItsLookupIsAnsweredResumesThereNoMore) {
  FakeSessionCache fake;
  fake.FollowChanges();
  SslCtxPtr origin = MakeServerContext();
  SslCtxPtr other = MakeServerContext();
  // Two nodes, each with its own client (their settings differ): the fake pushes no stores,
  // so the other node's near cache never has the session and its lookup asks the fake.
  for (auto [ctx, timeout] : {std::pair{origin.get(), 500}, std::pair{other.get(), 499}}) {
    const std::string config =
        "addr=" + fake.addr() + ";timeout_ms=" + std::to_string(timeout) + ";namespace=test";
    ASSERT_EQ(tlscache_attach(ctx, config.c_str()), 1) << tlscache_last_error();
    Prepare(ctx);
  }
  ASSERT_TRUE(Eventually([&] { return fake.follow_streams() == 2; }));
  SslCtxPtr client = MakeClientContext(TLS1_2_VERSION);
  auto made = RunHandshake(client.get(), origin.get(), nullptr);
  ASSERT_TRUE(made.ok()) << made.status();
  SslSessionPtr session(SSL_get1_session(made->client.get()));
  const std::string id = OfferedId(session.get());
  ASSERT_TRUE(Eventually([&] { return fake.Holds(id); }));
  // The fake withdraws the session (another node deleted it) as it answers the lookup.
  fake.BeforeGetAnswers([&](const v1::GetRequest& request) {
    if (request.session_id() != id) return;
    fake.Withdraw(request.namespace_(), request.session_id());
    absl::SleepFor(absl::Milliseconds(300));  // the push reaches the process first
  });
  auto raced = RunHandshake(client.get(), other.get(), session.get());
  ASSERT_TRUE(raced.ok()) << raced.status();
  ASSERT_EQ(fake.gets(), 1);
  fake.BeforeGetAnswers(nullptr);
  for (SSL_CTX* ctx : {other.get(), origin.get()}) {
    auto again = RunHandshake(client.get(), ctx, session.get());
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_FALSE(again->resumed);
  }
}

TEST_P(PluginTest, ACacheThatFailsMeansAFullHandshake) {
  SslSessionPtr session = SessionFromOrigin();
  ASSERT_NE(session, nullptr);
  fake_.SetGetAnswer(grpc::StatusCode::UNAVAILABLE);
  auto h = RunHandshake(client_ctx_.get(), other_.get(), session.get());
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_FALSE(h->resumed);
  fake_.Stop();
  auto after_stop = RunHandshake(client_ctx_.get(), other_.get(), session.get());
  ASSERT_TRUE(after_stop.ok()) << after_stop.status();
  EXPECT_FALSE(after_stop->resumed);
}

INSTANTIATE_TEST_SUITE_P(Versions, PluginTest, ::testing::Values(TLS1_2_VERSION, TLS1_3_VERSION),
                         [](const ::testing::TestParamInfo<int>& param_info) {
                           return param_info.param == TLS1_2_VERSION ? "Tls12" : "Tls13";
                         });

// The names of this process's threads that tlscache started (common/threads.h).
std::vector<std::string> TlscacheThreads() {
  std::vector<std::string> names;
  std::error_code ignored;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ignored)) {
    std::string name;
    std::getline(std::ifstream(task.path() / "comm"), name);
    if (name.rfind(tlscache::kThreadNamePrefix, 0) == 0) names.push_back(name);
  }
  return names;
}

// Runs at exit after the library's own handler (registered before it, so called after it):
// fails the exit when a tlscache thread is still there.
void ExitWithoutTlscacheThreads() {
  const std::vector<std::string> left = TlscacheThreads();
  if (left.empty()) return;
  std::fprintf(stderr, "tlscache threads still running at exit: %zu\n", left.size());
  std::_Exit(3);
}

// A server that exits without freeing its contexts: the library's threads (the sender, the
// completion thread, the Follow stream's, the key ring's) stop and are joined at exit.
TEST(PluginExitTest, TheLibrarysThreadsStopAtExitWithTheContextStillAttached) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // a fresh process, not a fork of this one
  EXPECT_EXIT(
      {
        std::atexit(ExitWithoutTlscacheThreads);
        FakeSessionCache fake;
        // Never freed, as at a server's exit: one with farm tickets (the key ring's thread),
        // one with sessions in the cache (the sender, the Follow stream's reader and writer).
        SSL_CTX* farm_tickets = MakeServerContext().release();
        SSL_CTX* sessions = MakeServerContext().release();
        SslCtxPtr client = MakeClientContext(TLS1_3_VERSION);
        const std::string config = "addr=" + fake.addr() + ";namespace=test";
        if (tlscache_attach(farm_tickets, (config + ";tickets=farm").c_str()) != 1 ||
            tlscache_attach(sessions, config.c_str()) != 1) {
          std::_Exit(4);
        }
        for (SSL_CTX* node : {farm_tickets, sessions}) {
          if (!RunHandshake(client.get(), node, nullptr).ok()) std::_Exit(5);
        }
        if (!Eventually([] { return TlscacheThreads().size() >= 4; })) std::_Exit(6);
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(PluginTls13Test, StatelessTicketsAreNotStored) {
  FakeSessionCache fake;
  SslCtxPtr server = MakeServerContext();
  const std::string config = "addr=" + fake.addr();
  ASSERT_EQ(tlscache_attach(server.get(), config.c_str()), 1) << tlscache_last_error();
  SSL_CTX_clear_options(server.get(), SSL_OP_NO_TICKET);  // the application turns them back on
  SslCtxPtr client = MakeClientContext(TLS1_3_VERSION);
  ASSERT_TRUE(RunHandshake(client.get(), server.get(), nullptr).ok());
  PluginStats stats;
  ASSERT_TRUE(GetPluginStats(server.get(), &stats));
  EXPECT_EQ(stats.stored, 0u);
  EXPECT_GE(stats.skipped, 1u);
}

TEST(PluginTls13Test, WithEarlyDataLookupsConsumeTheTicket) {
  FakeSessionCache fake;
  SslCtxPtr origin = MakeServerContext();
  SslCtxPtr other = MakeServerContext();
  for (SSL_CTX* ctx : {origin.get(), other.get()}) {
    SSL_CTX_set_max_early_data(ctx, 16384);
    const std::string config = "addr=" + fake.addr() + ";timeout_ms=500";
    ASSERT_EQ(tlscache_attach(ctx, config.c_str()), 1) << tlscache_last_error();
    // The farm is the only place a ticket is found, so consuming it there is final.
    EXPECT_NE(SSL_CTX_get_session_cache_mode(ctx) & SSL_SESS_CACHE_NO_INTERNAL_LOOKUP, 0);
  }
  SslCtxPtr client = MakeClientContext(TLS1_3_VERSION);
  auto first = RunHandshake(client.get(), origin.get(), nullptr);
  ASSERT_TRUE(first.ok());
  SslSessionPtr session(SSL_get1_session(first->client.get()));
  // A full handshake issues two tickets, each stored on its own: wait for the one the client
  // offers (a stateful ticket is the session ID it names).
  const unsigned char* ticket = nullptr;
  size_t ticket_len = 0;
  SSL_SESSION_get0_ticket(session.get(), &ticket, &ticket_len);
  const std::string identity(reinterpret_cast<const char*>(ticket), ticket_len);
  ASSERT_TRUE(Eventually([&] { return fake.Holds(identity); }));
  auto resumed = RunHandshake(client.get(), other.get(), session.get());
  ASSERT_TRUE(resumed.ok());
  EXPECT_TRUE(resumed->resumed);
  EXPECT_TRUE(fake.last_get_consumed());
}

// A server context that asks for client certificates from the CA in `ca_file`.
SslCtxPtr ClientAuthContext(const std::string& ca_file, int mode) {
  SslCtxPtr ctx = MakeServerContext();
  EXPECT_EQ(SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr), 1);
  SSL_CTX_set_client_CA_list(ctx.get(), SSL_load_client_CA_file(ca_file.c_str()));
  SSL_CTX_set_verify(ctx.get(), mode, nullptr);
  return ctx;
}

class PluginClientAuthTest : public ::testing::TestWithParam<std::tuple<int, std::string>> {};

TEST_P(PluginClientAuthTest, ASessionNeverResumesUnderOtherClientCertificateRequirements) {
  const auto& [version, config] = GetParam();
  FakeSessionCache fake;
  TempDir dir("client-auth");
  const std::string ca_a = dir.path() + "/ca-a.pem", ca_b = dir.path() + "/ca-b.pem";
  ASSERT_TRUE(WriteSelfSignedPem("CA A", ca_a, dir.path() + "/ca-a.key").ok());
  ASSERT_TRUE(WriteSelfSignedPem("CA B", ca_b, dir.path() + "/ca-b.key").ok());
  // The application gives every context the same session ID context, as HAProxy does.
  SslCtxPtr origin = ClientAuthContext(ca_a, SSL_VERIFY_PEER);
  SslCtxPtr twin = ClientAuthContext(ca_a, SSL_VERIFY_PEER);
  SslCtxPtr other_ca = ClientAuthContext(ca_b, SSL_VERIFY_PEER);
  SslCtxPtr required = ClientAuthContext(ca_a, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
  SslCtxPtr no_client_auth = MakeServerContext();
  for (SSL_CTX* ctx :
       {origin.get(), twin.get(), other_ca.get(), required.get(), no_client_auth.get()}) {
    SSL_CTX_set_session_id_context(ctx, reinterpret_cast<const unsigned char*>("app"), 3);
    const std::string text = "addr=" + fake.addr() + ";timeout_ms=500" + config;
    ASSERT_EQ(tlscache_attach(ctx, text.c_str()), 1) << tlscache_last_error();
  }
  // The client presents no certificate: SSL_VERIFY_PEER alone lets it through.
  SslCtxPtr client = MakeClientContext(version);
  auto first = RunHandshake(client.get(), origin.get(), nullptr);
  ASSERT_TRUE(first.ok()) << first.status();
  SslSessionPtr session(SSL_get1_session(first->client.get()));
  auto same = RunHandshake(client.get(), twin.get(), session.get());
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_TRUE(same->resumed) << "identically configured contexts share";
  for (SSL_CTX* ctx : {other_ca.get(), no_client_auth.get()}) {
    auto h = RunHandshake(client.get(), ctx, session.get());
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_FALSE(h->resumed);
  }
  // Requiring a certificate the client does not have fails the full handshake: what matters
  // is that the session did not resume past the requirement.
  auto h = RunHandshake(client.get(), required.get(), session.get());
  EXPECT_TRUE(!h.ok() || !h->resumed);
}

INSTANTIATE_TEST_SUITE_P(
    VersionsAndModes, PluginClientAuthTest,
    ::testing::Combine(::testing::Values(TLS1_2_VERSION, TLS1_3_VERSION),
                       ::testing::Values(std::string(""), std::string(";sid_ctx=farm"))),
    [](const ::testing::TestParamInfo<std::tuple<int, std::string>>& param_info) {
      return std::string(std::get<0>(param_info.param) == TLS1_2_VERSION ? "Tls12" : "Tls13") +
             (std::get<1>(param_info.param).empty() ? "AppSidCtx" : "FarmSidCtx");
    });

TEST(PluginAttachTest, AContextWhoseSessionCacheIsOffStaysOutOfTheFarm) {
  SslCtxPtr ctx = MakeServerContext();
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  EXPECT_EQ(tlscache_attach(ctx.get(), "addr=127.0.0.1:1"), 0);
  EXPECT_THAT(tlscache_last_error(), HasSubstr("SSL_SESS_CACHE_OFF"));
  EXPECT_EQ(SSL_CTX_sess_get_new_cb(ctx.get()), nullptr);
  EXPECT_EQ(SSL_CTX_get_session_cache_mode(ctx.get()), SSL_SESS_CACHE_OFF);
  EXPECT_EQ(SSL_CTX_get_options(ctx.get()) & SSL_OP_NO_TICKET, 0u);
}

TEST(PluginAttachTest, ABadConfigLeavesTheContextAloneAndSaysWhy) {
  SslCtxPtr ctx = MakeServerContext();
  EXPECT_EQ(tlscache_attach(ctx.get(), "addr=127.0.0.1:1;bogus=1"), 0);
  EXPECT_THAT(tlscache_last_error(), HasSubstr("unknown key 'bogus'"));
  EXPECT_EQ(SSL_CTX_sess_get_new_cb(ctx.get()), nullptr);
  EXPECT_EQ(SSL_CTX_get_options(ctx.get()) & SSL_OP_NO_TICKET, 0u);
  EXPECT_EQ(tlscache_attach(ctx.get(), "addr=127.0.0.1:1;tickets=sometimes"), 0);
  EXPECT_THAT(tlscache_last_error(), HasSubstr("tickets"));
  EXPECT_EQ(tlscache_attach(nullptr, "addr=127.0.0.1:1"), 0);
  EXPECT_EQ(tlscache_attach(ctx.get(), nullptr), 0);
  EXPECT_EQ(tlscache_attach(ctx.get(), "addr=127.0.0.1:1;sid_ctx=farm"), 1);
  EXPECT_STREQ(tlscache_last_error(), "");
  EXPECT_NE(SSL_CTX_sess_get_new_cb(ctx.get()), nullptr);
  EXPECT_NE(SSL_CTX_get_options(ctx.get()) & SSL_OP_NO_TICKET, 0u);
}

}  // namespace
}  // namespace tlscache::openssl
