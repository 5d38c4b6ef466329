#include "common/validation.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tlscache {
namespace {

using ::testing::HasSubstr;

TEST(ValidationTest, NamespaceAcceptsTheAllowedAlphabet) {
  EXPECT_TRUE(ValidateNamespace("a").ok());
  EXPECT_TRUE(ValidateNamespace("Prod-edge_1.eu").ok());
  EXPECT_TRUE(ValidateNamespace(std::string(64, 'n')).ok());
}

TEST(ValidationTest, NamespaceRejectionsNameTheField) {
  for (const std::string& bad :
       {std::string(), std::string(65, 'n'), std::string("a:b"), std::string("a b"),
        std::string("ns/x"), std::string("caf\xc3\xa9"), std::string("a\0b", 3)}) {
    absl::Status s = ValidateNamespace(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << bad;
    EXPECT_THAT(s.message(), HasSubstr("namespace")) << bad;
  }
}

TEST(ValidationTest, SessionIdIsOneTo32Bytes) {
  EXPECT_TRUE(ValidateSessionId(std::string(1, '\0')).ok());
  EXPECT_TRUE(ValidateSessionId(std::string(32, '\xff')).ok());
  EXPECT_THAT(ValidateSessionId("").message(), HasSubstr("session_id is empty"));
  absl::Status too_long = ValidateSessionId(std::string(33, 'x'));
  EXPECT_TRUE(absl::IsInvalidArgument(too_long));
  EXPECT_THAT(too_long.message(), HasSubstr("session_id is 33 bytes"));
}

TEST(ValidationTest, SessionIsOneToMaxBytes) {
  EXPECT_TRUE(ValidateSession("x", 1).ok());
  EXPECT_THAT(ValidateSession("", 10).message(), HasSubstr("session is empty"));
  absl::Status too_long = ValidateSession("abc", 2);
  EXPECT_TRUE(absl::IsInvalidArgument(too_long));
  EXPECT_THAT(too_long.message(), HasSubstr("session is 3 bytes long; the limit is 2"));
}

}  // namespace
}  // namespace tlscache
