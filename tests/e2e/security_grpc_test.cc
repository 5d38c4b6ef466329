// TLS, mTLS and per-identity namespaces, through real gRPC channels to an in-process
// CacheServer with a test CA's certificates.
#include <grpcpp/create_channel.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/cache_server.h"
#include "server/security/authorizer.h"
#include "server/store/store_factory.h"
#include "tests/testing/grpc_probe.h"
#include "tests/testing/test_pki.h"
#include "tlscache/v1/admin.grpc.pb.h"
#include "tlscache/v1/session_cache.grpc.pb.h"
#include "tlscache/v1/ticket_keys.grpc.pb.h"

namespace tlscache::server {
namespace {

using ::testing::HasSubstr;
using ::tlscache::testing::CertFiles;
using ::tlscache::testing::TestPki;

class SecurityGrpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = TestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *std::move(pki);
    tenant_a_ = *pki_->IssueClient("a", "cn-a", "URI:spiffe://farm/a,DNS:a.example.com");
    tenant_b_ = *pki_->IssueClient("b", "cn-b", "DNS:b.example.com");
    cn_only_ = *pki_->IssueClient("c", "tenant-c", "");
    WriteAuthz("spiffe://farm/a shop\nb.example.com blog,shared\ntenant-c shared\n");
    auto authz = Authorizer::FromFile(Path("authz"));
    ASSERT_TRUE(authz.ok()) << authz.status();
    authz_ = *std::move(authz);
  }
  std::string Path(const std::string& name) const { return pki_->dir().Path(name); }
  void WriteAuthz(const std::string& text) { pki_->dir().Write("authz", text); }

  void StartServer(bool client_ca, bool authz, const std::string& health_listen = "") {
    CacheServerOptions options;
    options.listen = "127.0.0.1:0";
    options.health_listen = health_listen;
    options.tls.cert_file = pki_->server().cert;
    options.tls.key_file = pki_->server().key;
    if (client_ca) options.tls.client_ca_file = pki_->ca_file();
    if (authz) {
      options.service.authz = authz_.get();
      options.ticket_keys.authz = authz_.get();
      options.admin_authz = authz_.get();
    }
    auto store = CreateStore(StoreConfig{});
    ASSERT_TRUE(store.ok()) << store.status();
    auto server = CacheServer::Start(options, *std::move(store));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::shared_ptr<grpc::Channel> Channel(const CertFiles* client) {
    return testing::ConnectTls(server_->port(), pki_->ca_file(), client);
  }

  static grpc::Status Put(const std::shared_ptr<grpc::Channel>& channel, const std::string& ns) {
    return testing::PutSession(channel, ns, "id", "session");
  }
  static grpc::Status Get(const std::shared_ptr<grpc::Channel>& channel, const std::string& ns) {
    return ToGrpcStatus(testing::GetSession(channel, ns, "id").status());
  }
  static grpc::Status TicketKeys(const std::shared_ptr<grpc::Channel>& channel,
                                 const std::string& ns) {
    v1::TicketKeysRequest request;
    request.set_namespace_(ns);
    v1::TicketKeySet response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    return v1::TicketKeys::NewStub(channel)->GetTicketKeys(&context, request, &response);
  }
  static grpc::Status Watch(const std::shared_ptr<grpc::Channel>& channel, const std::string& ns) {
    v1::TicketKeysRequest request;
    request.set_namespace_(ns);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    auto stub = v1::TicketKeys::NewStub(channel);
    auto reader = stub->WatchTicketKeys(&context, request);
    v1::TicketKeySet ring;
    if (reader->Read(&ring)) {
      context.TryCancel();
      reader->Finish();
      return grpc::Status::OK;
    }
    return reader->Finish();
  }

  std::unique_ptr<TestPki> pki_;
  CertFiles tenant_a_, tenant_b_, cn_only_;
  std::unique_ptr<Authorizer> authz_;
  std::unique_ptr<CacheServer> server_;
};

TEST_F(SecurityGrpcTest, WithAClientCaAClientWithoutACertificateCannotCallAnything) {
  StartServer(/*client_ca=*/true, /*authz=*/false);
  auto anonymous = Channel(nullptr);
  EXPECT_EQ(Put(anonymous, "shop").error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(TicketKeys(anonymous, "shop").error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(Put(Channel(&tenant_a_), "shop").ok());
}

TEST_F(SecurityGrpcTest, APlaintextClientIsRefused) {
  StartServer(/*client_ca=*/true, /*authz=*/false);
  auto plaintext = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                       grpc::InsecureChannelCredentials());
  EXPECT_EQ(Put(plaintext, "shop").error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(SecurityGrpcTest, ACertificateFromAnotherCaIsRefused) {
  StartServer(/*client_ca=*/true, /*authz=*/false);
  auto other = TestPki::Create();
  ASSERT_TRUE(other.ok());
  CertFiles stranger = *(*other)->IssueClient("stranger", "x", "URI:spiffe://farm/a");
  EXPECT_EQ(Put(Channel(&stranger), "shop").error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(SecurityGrpcTest, TlsWithoutAClientCaServesAnyTlsClient) {
  StartServer(/*client_ca=*/false, /*authz=*/false);
  EXPECT_TRUE(Put(Channel(nullptr), "shop").ok());
}

TEST_F(SecurityGrpcTest, ATenantIsDeniedAnotherTenantsNamespaceAndAllowedItsOwn) {
  StartServer(/*client_ca=*/true, /*authz=*/true);
  auto a = Channel(&tenant_a_);
  auto b = Channel(&tenant_b_);
  EXPECT_TRUE(Put(a, "shop").ok());
  EXPECT_TRUE(Get(a, "shop").ok());
  EXPECT_TRUE(TicketKeys(a, "shop").ok());
  EXPECT_TRUE(Watch(a, "shop").ok());

  for (const grpc::Status& denied :
       {Put(b, "shop"), Get(b, "shop"), TicketKeys(b, "shop"), Watch(b, "shop"), Put(a, "blog")}) {
    EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED) << denied.error_message();
  }
  const grpc::Status denied = Get(b, "shop");
  EXPECT_THAT(denied.error_message(), HasSubstr("identity b.example.com"));
  EXPECT_THAT(denied.error_message(), HasSubstr("namespace shop"));
  EXPECT_TRUE(Put(b, "blog").ok());
  // A malformed namespace is still InvalidArgument, whoever asks.
  EXPECT_EQ(Put(b, "bad/ns").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(SecurityGrpcTest, TheIdentityIsTheUriSanElseTheDnsSanElseTheCommonName) {
  StartServer(/*client_ca=*/true, /*authz=*/true);
  // a: URI and DNS SANs; only its URI is in the file. b: a DNS SAN. c: only a CN.
  EXPECT_TRUE(Put(Channel(&tenant_a_), "shop").ok());
  EXPECT_TRUE(Put(Channel(&tenant_b_), "shared").ok());
  EXPECT_TRUE(Put(Channel(&cn_only_), "shared").ok());
  EXPECT_EQ(Put(Channel(&cn_only_), "blog").error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(SecurityGrpcTest, ThePlaintextHealthPortServesHealthAndNothingElse) {
  StartServer(/*client_ca=*/true, /*authz=*/true, "127.0.0.1:0");
  ASSERT_GT(server_->health_port(), 0);
  auto probe = testing::Connect(server_->health_port());
  EXPECT_TRUE(testing::AwaitHealth(*probe, "", grpc::health::v1::HealthCheckResponse::SERVING));
  EXPECT_TRUE(testing::AwaitHealth(*probe, "tlscache.v1.SessionCache",
                                   grpc::health::v1::HealthCheckResponse::SERVING));
  EXPECT_TRUE(testing::AwaitHealth(*probe, "tlscache.v1.Process",
                                   grpc::health::v1::HealthCheckResponse::SERVING));
  EXPECT_EQ(Put(probe, "shop").error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(TicketKeys(probe, "shop").error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(SecurityGrpcTest, OnlyAnOperatorGrantedEveryNamespaceMayReadStats) {
  WriteAuthz("spiffe://farm/a shop\ntenant-c *\n");
  ASSERT_TRUE(authz_->Reload().ok());
  StartServer(/*client_ca=*/true, /*authz=*/true);
  auto stats = [&](const CertFiles& client) {
    v1::Stats response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    return v1::Admin::NewStub(Channel(&client))->GetStats(&context, {}, &response);
  };
  EXPECT_TRUE(stats(cn_only_).ok());
  grpc::Status tenant = stats(tenant_a_);
  EXPECT_EQ(tenant.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(tenant.error_message(), HasSubstr("not an operator"));
}

TEST_F(SecurityGrpcTest, RotatingTicketKeysIsForAnOperatorNotForATenantGrantedTheNamespace) {
  WriteAuthz("spiffe://farm/a shop\ntenant-c *\n");
  ASSERT_TRUE(authz_->Reload().ok());
  StartServer(/*client_ca=*/true, /*authz=*/true);
  auto rotate = [&](const CertFiles& client, uint64_t* version) {
    v1::TicketKeysRequest request;
    request.set_namespace_("shop");
    v1::TicketKeySet ring;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(15)));
    grpc::Status status =
        v1::TicketKeys::NewStub(Channel(&client))->RotateTicketKeys(&context, request, &ring);
    *version = ring.version();
    return status;
  };
  uint64_t version = 0;
  ASSERT_TRUE(TicketKeys(Channel(&tenant_a_), "shop").ok());  // the tenant may read its keys
  const grpc::Status tenant = rotate(tenant_a_, &version);
  EXPECT_EQ(tenant.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(tenant.error_message(), HasSubstr("not an operator"));
  const grpc::Status operator_call = rotate(cn_only_, &version);
  EXPECT_TRUE(operator_call.ok()) << operator_call.error_message();
  EXPECT_EQ(version, 2u);
}

TEST_F(SecurityGrpcTest, AReloadAppliesANewPolicyAndABadFileKeepsTheOldOne) {
  StartServer(/*client_ca=*/true, /*authz=*/true);
  auto a = Channel(&tenant_a_);
  EXPECT_EQ(Put(a, "blog").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  WriteAuthz("spiffe://farm/a shop,blog\n");
  ASSERT_TRUE(authz_->Reload().ok());
  EXPECT_TRUE(Put(a, "blog").ok());

  WriteAuthz("spiffe://farm/a shop blog\n");
  absl::Status bad = authz_->Reload();
  EXPECT_TRUE(absl::IsInvalidArgument(bad));
  EXPECT_THAT(std::string(bad.message()), HasSubstr("line 1"));
  EXPECT_TRUE(Put(a, "blog").ok());  // still the previous policy
}

}  // namespace
}  // namespace tlscache::server
