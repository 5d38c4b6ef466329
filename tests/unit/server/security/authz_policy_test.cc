#include "server/security/authz_policy.h"

#include <string>

#include "gtest/gtest.h"

namespace tlscache::server {
namespace {

TEST(AuthzPolicyTest, AnIdentityMayUseOnlyItsNamespaces) {
  auto policy = AuthzPolicy::Parse(
      "# tenants\n"
      "spiffe://farm/a   shop,shop-staging\n"
      "\n"
      "b.example.com\tblog\n"
      "ops  *\n");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->identity_count(), 3u);
  EXPECT_TRUE(policy->Allows("spiffe://farm/a", "shop"));
  EXPECT_TRUE(policy->Allows("spiffe://farm/a", "shop-staging"));
  EXPECT_FALSE(policy->Allows("spiffe://farm/a", "blog"));
  EXPECT_TRUE(policy->Allows("b.example.com", "blog"));
  EXPECT_FALSE(policy->Allows("b.example.com", "shop"));
  EXPECT_TRUE(policy->Allows("ops", "anything"));
  EXPECT_FALSE(policy->Allows("stranger", "shop"));
  EXPECT_FALSE(policy->Allows("", "shop"));
  EXPECT_FALSE(policy->Allows("spiffe://farm/A", "shop"));  // identities match exactly
}

TEST(AuthzPolicyTest, BadLinesAreErrorsNamingTheLine) {
  for (const auto& [text, line] : std::vector<std::pair<std::string, std::string>>{
           {"a shop\nb\n", "line 2"},
           {"a shop blog\n", "line 1"},
           {"a shop\n# x\na blog\n", "line 3"},
           {"a shop,bad/name\n", "line 1"},
           {"a shop,\n", "line 1"},
           {"a\x01 shop\n", "line 1"},
           {std::string(2000, 'x') + " shop\n", "line 1"},
       }) {
    auto policy = AuthzPolicy::Parse(text);
    ASSERT_FALSE(policy.ok()) << text;
    EXPECT_TRUE(absl::IsInvalidArgument(policy.status()));
    EXPECT_NE(policy.status().message().find(line), std::string::npos) << policy.status();
  }
}

}  // namespace
}  // namespace tlscache::server
