// The one HOST:PORT parser (common/host_port.h) and the rules its callers give it.
#include "common/host_port.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tlscache {
namespace {

using ::testing::HasSubstr;

TEST(HostPortTest, NamesAddressesAndBracketedIpv6LiteralsSplit) {
  absl::StatusOr<HostPort> name = ParseHostPort("cache.internal:7700");
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(name->host, "cache.internal");
  EXPECT_EQ(name->port, 7700);
  absl::StatusOr<HostPort> v4 = ParseHostPort("127.0.0.1:0");
  ASSERT_TRUE(v4.ok()) << v4.status();
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 0);
  absl::StatusOr<HostPort> v6 = ParseHostPort("[::1]:443");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 443);
}

TEST(HostPortTest, AListeningAddressMayOmitTheHostButAPeerMayNot) {
  absl::StatusOr<HostPort> any = ParseHostPort(":7700");
  ASSERT_TRUE(any.ok()) << any.status();
  EXPECT_EQ(any->host, "");
  EXPECT_THAT(ParseHostPort(":7700", PeerRules()).status().message(), HasSubstr("no host"));
  EXPECT_THAT(ParseHostPort("h:0", PeerRules()).status().message(),
              HasSubstr("port '0' is not within 1..65535"));
}

TEST(HostPortTest, TheDefaultPortFillsInOnlyWhereTheCallerHasOne) {
  absl::StatusOr<HostPort> redis = ParseHostPort("redis-0", PeerRules(6379));
  ASSERT_TRUE(redis.ok()) << redis.status();
  EXPECT_EQ(redis->port, 6379);
  absl::StatusOr<HostPort> v6 = ParseHostPort("[fe80::1]", PeerRules(26379));
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(v6->host, "fe80::1");
  EXPECT_EQ(v6->port, 26379);
  EXPECT_THAT(ParseHostPort("nohostport").status().message(), HasSubstr("no port"));
}

TEST(HostPortTest, MalformedAddressesSayWhatIsWrong) {
  const struct {
    const char* address;
    const char* why;
  } cases[] = {
      {"h:", "port '' is not within 0..65535"},
      {"h:65536", "port '65536' is not within 0..65535"},
      {"h:+80", "port '+80' is not within"},
      {"h: 80", "port ' 80' is not within"},
      {"h:http", "port 'http' is not within"},
      {"[::1", "unterminated '['"},
      {"[::1]x", "junk after ']'"},
      {"[]:80", "no host"},
      {"::1:80", "an IPv6 address goes in brackets"},
      {"a/b:80", "a character no host name has"},
      {"a,b:80", "a character no host name has"},
      {"user@h:80", "a character no host name has"},
      {"h\n:80", "a character no host name has"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<HostPort> parsed = ParseHostPort(c.address);
    EXPECT_TRUE(absl::IsInvalidArgument(parsed.status())) << c.address;
    EXPECT_THAT(parsed.status().message(), HasSubstr(c.why)) << c.address;
  }
}

TEST(HostPortTest, RedisRedirectionsMayCarryABareIpv6Address) {
  HostPortRules redis = PeerRules();
  redis.bare_ipv6 = true;
  absl::StatusOr<HostPort> v6 = ParseHostPort("::1:7001", redis);
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 7001);
}

TEST(HostPortTest, SplitHostPortNamesTheAddressInItsError) {
  EXPECT_THAT(SplitHostPort("localhost").status().message(),
              HasSubstr("localhost: expected HOST:PORT (no port)"));
}

}  // namespace
}  // namespace tlscache
