#include "plugins/openssl/config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tlscache::openssl {
namespace {

using ::testing::HasSubstr;

TEST(PluginConfigTest, ParsesEveryKey) {
  auto config = ParsePluginConfig(
      " addr=cache.internal:7700 ; namespace=edge-eu;timeout_ms=12;sid_ctx=farm-1;"
      "connect_timeout_ms=80;"
      "tickets=off;ca_file=/etc/ca.pem;cert_file=/etc/c.pem;key_file=/etc/k.pem;");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->addr, "cache.internal:7700");
  EXPECT_EQ(config->ns, "edge-eu");
  EXPECT_EQ(config->timeout, absl::Milliseconds(12));
  EXPECT_EQ(config->connect_timeout, absl::Milliseconds(80));
  EXPECT_EQ(config->sid_ctx, "farm-1");
  EXPECT_EQ(config->tickets, TicketMode::kOff);
  EXPECT_EQ(config->ca_file, "/etc/ca.pem");
  EXPECT_EQ(config->cert_file, "/etc/c.pem");
  EXPECT_EQ(config->key_file, "/etc/k.pem");
}

TEST(PluginConfigTest, Defaults) {
  auto config = ParsePluginConfig("addr=127.0.0.1:7700");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->ns, "default");
  EXPECT_EQ(config->timeout, absl::Milliseconds(20));
  EXPECT_EQ(config->connect_timeout, absl::Milliseconds(500));
  EXPECT_EQ(config->sid_ctx, "");
  EXPECT_EQ(config->tickets, TicketMode::kOff);
}

TEST(PluginConfigTest, ErrorsNameTheKey) {
  struct Case {
    const char* text;
    const char* says;
  };
  for (const Case& c : {
           Case{"", "addr: missing"},
           Case{"addr=nohostport", "addr: 'nohostport' is not HOST:PORT"},
           Case{"addr=h:1;bogus=1", "unknown key 'bogus'"},
           Case{"addr=h:1;addr=h:2", "key 'addr' given twice"},
           Case{"addr=h:1;timeout_ms=0", "timeout_ms: '0'"},
           Case{"addr=h:1;timeout_ms=fast", "timeout_ms: 'fast'"},
           Case{"addr=h:1;timeout_ms=5000", "timeout_ms: '5000'"},
           Case{"addr=h:1;connect_timeout_ms=20000", "connect_timeout_ms: '20000'"},
           Case{"addr=h:1;namespace=a b", "namespace may only contain"},
           Case{"addr=h:1;sid_ctx=012345678901234567890123456789012", "sid_ctx: must be 1 to 32"},
           Case{"addr=h:1;tickets=maybe", "tickets: 'maybe' is not off or farm"},
           Case{"addr=h:1;cert_file=/c.pem", "cert_file and key_file go together"},
           Case{"addr=h:1;cert_file=/c;key_file=/k", "cert_file needs ca_file"},
           Case{"addr=h:1;novalue", "'novalue' is not key=value"},
       }) {
    auto config = ParsePluginConfig(c.text);
    EXPECT_TRUE(absl::IsInvalidArgument(config.status())) << c.text;
    EXPECT_THAT(config.status().message(), HasSubstr(c.says)) << c.text;
  }
}

}  // namespace
}  // namespace tlscache::openssl
