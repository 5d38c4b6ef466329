#include "common/secret_bytes.h"

#include <string>
#include <utility>

#include "gtest/gtest.h"

namespace tlscache {
namespace {

TEST(SecretBytesTest, HoldsACopyOfTheBytes) {
  std::string source("master\0secret", 13);
  SecretBytes secret(source);
  source.assign(source.size(), 'x');
  EXPECT_EQ(secret.view(), absl::string_view("master\0secret", 13));
  EXPECT_EQ(secret.size(), 13u);
}

TEST(SecretBytesTest, MoveLeavesTheSourceEmpty) {
  SecretBytes a(absl::string_view("abc"));
  SecretBytes b = std::move(a);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): the contract under test
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(b.view(), "abc");
  SecretBytes c(absl::string_view("zz"));
  c = std::move(b);
  EXPECT_EQ(c.view(), "abc");
}

TEST(SecretBytesTest, CloneIsIndependent) {
  SecretBytes a(absl::string_view("abc"));
  SecretBytes b = a.Clone();
  a.mutable_data()[0] = 'x';
  EXPECT_EQ(b.view(), "abc");
  EXPECT_EQ(a.view(), "xbc");
}

TEST(SecretBytesTest, ClearEmpties) {
  SecretBytes a(absl::string_view("abc"));
  a.Clear();
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.view(), "");
}

TEST(SecretBytesTest, CleanseStringZeroesThenEmpties) {
  std::string s = "secret";
  char* bytes = &s[0];
  const size_t n = s.size();
  CleanseString(&s);
  EXPECT_TRUE(s.empty());
  // clear() keeps the buffer: the old bytes must be zero, not the secret.
  for (size_t i = 0; i < n; ++i) EXPECT_EQ(bytes[i], '\0') << i;
  CleanseString(nullptr);  // no-op
}

}  // namespace
}  // namespace tlscache
