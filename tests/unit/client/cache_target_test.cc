#include "client/cache_target.h"

#include <gtest/gtest.h>

#include <string>

namespace tlscache::client {
namespace {

struct Case {
  std::string addr, uri, authority;
};

TEST(CacheTargetTest, EachFormBecomesTheTargetThatReachesEveryReplica) {
  for (const Case& c : {
           Case{"cache.internal:7700", "dns:///cache.internal:7700", "cache.internal:7700"},
           Case{"127.0.0.1:7700", "dns:///127.0.0.1:7700", "127.0.0.1:7700"},
           Case{"[::1]:7700", "dns:///[::1]:7700", "[::1]:7700"},
           Case{"10.0.0.1:7700,10.0.0.2:7700,10.0.0.3:7701",
                "ipv4:10.0.0.1:7700,10.0.0.2:7700,10.0.0.3:7701", "10.0.0.1:7700"},
           Case{"[fd00::1]:7700,[fd00::2]:7700", "ipv6:[fd00::1]:7700,[fd00::2]:7700",
                "[fd00::1]:7700"},
           Case{"dns:///tlscache-headless.tlscache.svc:7700",
                "dns:///tlscache-headless.tlscache.svc:7700", "tlscache-headless.tlscache.svc:7700"},
           Case{"dns://127.0.0.1:5353/replicas.test:7700", "dns://127.0.0.1:5353/replicas.test:7700",
                "replicas.test:7700"},
       }) {
    absl::StatusOr<CacheTarget> target = ParseCacheTarget(c.addr);
    ASSERT_TRUE(target.ok()) << c.addr << ": " << target.status();
    EXPECT_EQ(target->uri, c.uri) << c.addr;
    EXPECT_EQ(target->authority, c.authority) << c.addr;
  }
}

TEST(CacheTargetTest, EachProcessStartsAtAnotherReplicaOfAList) {
  absl::StatusOr<CacheTarget> list = ParseCacheTarget("10.0.0.1:1,10.0.0.2:1,10.0.0.3:1");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(RotatedUri(*list, 0), "ipv4:10.0.0.1:1,10.0.0.2:1,10.0.0.3:1");
  EXPECT_EQ(RotatedUri(*list, 1), "ipv4:10.0.0.2:1,10.0.0.3:1,10.0.0.1:1");
  EXPECT_EQ(RotatedUri(*list, 5), "ipv4:10.0.0.3:1,10.0.0.1:1,10.0.0.2:1");
  absl::StatusOr<CacheTarget> name = ParseCacheTarget("cache:7700");
  ASSERT_TRUE(name.ok());
  EXPECT_EQ(RotatedUri(*name, 7), "dns:///cache:7700");
}

TEST(CacheTargetTest, AWrongAddressSaysWhatIsWrong) {
  struct Bad {
    std::string addr, message;
  };
  for (const Bad& c : {
           Bad{"", "empty"},
           Bad{"cache", "'cache' is not HOST:PORT"},
           Bad{"cache:0", "'cache:0' is not HOST:PORT"},
           Bad{"10.0.0.1:7700,", "'' is not HOST:PORT"},
           Bad{"10.0.0.1:7700,cache-2:7700", "a list of replicas takes IP addresses"},
           Bad{"10.0.0.1:7700,[fd00::1]:7700", "all IPv4 or all IPv6"},
           Bad{"dns:cache:7700", "dns:///HOST:PORT or dns://SERVER/HOST:PORT"},
           Bad{"dns://cache:7700", "dns:///HOST:PORT or dns://SERVER/HOST:PORT"},
           Bad{"dns://resolver.local/cache:7700", "DNS server 'resolver.local' is not IP[:PORT]"},
           Bad{"dns:///cache", "'cache' is not HOST:PORT"},
       }) {
    absl::StatusOr<CacheTarget> target = ParseCacheTarget(c.addr);
    ASSERT_FALSE(target.ok()) << c.addr;
    EXPECT_EQ(target.status().code(), absl::StatusCode::kInvalidArgument) << c.addr;
    EXPECT_NE(target.status().message().find(c.message), std::string::npos)
        << c.addr << ": " << target.status().message();
  }
}

}  // namespace
}  // namespace tlscache::client
