// The Authorizer (server/security/authorizer.h) over a real policy file: who may use what,
// who is an operator, and reloading, which keeps the policy in force when the new file is bad.
#include "server/security/authorizer.h"

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace tlscache::server {
namespace {

using ::testing::HasSubstr;

class AuthorizerTest : public ::testing::Test {
 protected:
  void Write(const std::string& text) { std::ofstream(path_, std::ios::trunc) << text; }

  std::unique_ptr<Authorizer> Load() {
    absl::StatusOr<std::unique_ptr<Authorizer>> authz = Authorizer::FromFile(path_);
    EXPECT_TRUE(authz.ok()) << authz.status();
    return authz.ok() ? *std::move(authz) : nullptr;
  }

  testing::TempDir dir_{"authz"};
  const std::string path_ = dir_.path() + "/authz";
};

TEST_F(AuthorizerTest, AnIdentityMayUseOnlyItsNamespacesAndAnOperatorEvery) {
  Write("spiffe://farm/eu shop,shop-staging\nops.example.com *\n");
  std::unique_ptr<Authorizer> authz = Load();
  ASSERT_NE(authz, nullptr);
  EXPECT_TRUE(authz->CheckIdentity("spiffe://farm/eu", "shop").ok());
  EXPECT_TRUE(authz->CheckIdentity("ops.example.com", "anything").ok());
  const absl::Status denied = authz->CheckIdentity("spiffe://farm/eu", "other");
  EXPECT_TRUE(absl::IsPermissionDenied(denied));
  EXPECT_THAT(denied.message(), HasSubstr("identity spiffe://farm/eu may not use namespace other"));
  EXPECT_TRUE(absl::IsPermissionDenied(authz->CheckIdentity("stranger", "shop")));
  EXPECT_THAT(authz->CheckIdentity("", "shop").message(), HasSubstr("no client certificate"));
}

TEST_F(AuthorizerTest, OnlyAnIdentityGrantedEveryNamespaceIsAnOperator) {
  Write("spiffe://farm/eu shop\nops.example.com *\n");
  std::unique_ptr<Authorizer> authz = Load();
  ASSERT_NE(authz, nullptr);
  EXPECT_TRUE(authz->CheckOperatorIdentity("ops.example.com").ok());
  const absl::Status denied = authz->CheckOperatorIdentity("spiffe://farm/eu");
  EXPECT_TRUE(absl::IsPermissionDenied(denied));
  EXPECT_THAT(denied.message(), HasSubstr("is not an operator"));
}

TEST_F(AuthorizerTest, GrantsNamesOnlyTheNamespacesTheFileNames) {
  Write("a shop,blog\nops *\n");
  std::unique_ptr<Authorizer> authz = Load();
  ASSERT_NE(authz, nullptr);
  EXPECT_TRUE(authz->Grants("shop"));
  EXPECT_TRUE(authz->Grants("blog"));
  EXPECT_FALSE(authz->Grants("made-up"));  // the operator may use it, but no one is given it
}

TEST_F(AuthorizerTest, ReloadAppliesANewFileAndKeepsThePolicyWhenTheFileIsBad) {
  Write("a shop\n");
  std::unique_ptr<Authorizer> authz = Load();
  ASSERT_NE(authz, nullptr);
  Write("a blog\n");
  ASSERT_TRUE(authz->Reload().ok());
  EXPECT_TRUE(authz->CheckIdentity("a", "blog").ok());
  EXPECT_TRUE(absl::IsPermissionDenied(authz->CheckIdentity("a", "shop")));

  Write("a blog\na shop\n");  // an identity twice: refused, the old policy stays
  const absl::Status bad = authz->Reload();
  EXPECT_TRUE(absl::IsInvalidArgument(bad));
  EXPECT_THAT(bad.message(), HasSubstr(path_ + ": line 2"));
  EXPECT_TRUE(authz->CheckIdentity("a", "blog").ok());

  std::remove(path_.c_str());
  EXPECT_FALSE(authz->Reload().ok());
  EXPECT_TRUE(authz->CheckIdentity("a", "blog").ok());
}

TEST_F(AuthorizerTest, AFileThatDoesNotParseIsRefusedAtStartNamingTheLine) {
  Write("# comment\nonly-an-identity\n");
  absl::StatusOr<std::unique_ptr<Authorizer>> authz = Authorizer::FromFile(path_);
  EXPECT_TRUE(absl::IsInvalidArgument(authz.status()));
  EXPECT_THAT(authz.status().message(), HasSubstr("line 2"));
}

}  // namespace
}  // namespace tlscache::server
