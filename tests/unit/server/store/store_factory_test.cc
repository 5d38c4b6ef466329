#include "server/store/store_factory.h"

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tlscache::server {
namespace {

using ::testing::HasSubstr;

TEST(ParseRedisUrlTest, HostPortAndDatabase) {
  auto e = ParseRedisUrl("redis://cache.internal:6380/3");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->host, "cache.internal");
  EXPECT_EQ(e->port, 6380);
  EXPECT_EQ(e->db, 3);
}

TEST(ParseRedisUrlTest, PortAndDatabaseDefault) {
  auto e = ParseRedisUrl("redis://10.0.0.5");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->host, "10.0.0.5");
  EXPECT_EQ(e->port, 6379);
  EXPECT_EQ(e->db, 0);
}

TEST(ParseRedisUrlTest, BracketedIpv6) {
  auto e = ParseRedisUrl("redis://[::1]:7000/1");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->host, "::1");
  EXPECT_EQ(e->port, 7000);
  EXPECT_EQ(e->db, 1);
}

TEST(ParseRedisUrlTest, BadUrlsSayWhatIsWrong) {
  EXPECT_THAT(ParseRedisUrl("http://x").status().message(), HasSubstr("not a redis:// URL"));
  EXPECT_THAT(ParseRedisUrl("redis://").status().message(), HasSubstr("no host"));
  EXPECT_THAT(ParseRedisUrl("redis://h:0").status().message(), HasSubstr("port '0'"));
  EXPECT_THAT(ParseRedisUrl("redis://h:99999").status().message(), HasSubstr("port '99999'"));
  EXPECT_THAT(ParseRedisUrl("redis://h:abc").status().message(), HasSubstr("port 'abc'"));
  EXPECT_THAT(ParseRedisUrl("redis://h:1/x").status().message(), HasSubstr("database 'x'"));
  EXPECT_THAT(ParseRedisUrl("redis://[::1:1").status().message(), HasSubstr("'['"));
  EXPECT_THAT(ParseRedisUrl("redis://u:p@h:1").status().message(), HasSubstr("credentials"));
}

TEST(CreateStoreTest, MemoryIsTheDefault) {
  auto store = CreateStore(StoreConfig{});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_THAT((*store)->Describe(), HasSubstr("memory"));
  EXPECT_TRUE((*store)->Health().ok());
}

TEST(CreateStoreTest, UnknownSchemeNamesTheFlag) {
  StoreConfig config;
  config.url = "memcached://h:1";
  auto store = CreateStore(config);
  EXPECT_TRUE(absl::IsInvalidArgument(store.status()));
  EXPECT_THAT(store.status().message(), HasSubstr("--store=memcached://h:1"));
}

TEST(CreateStoreTest, TooSmallMemoryBoundNamesTheFlag) {
  StoreConfig config;
  config.memory_max_bytes = 4096;
  auto store = CreateStore(config);
  EXPECT_TRUE(absl::IsInvalidArgument(store.status()));
  EXPECT_THAT(store.status().message(), HasSubstr("--memory_max_bytes"));
}

TEST(CreateStoreTest, RedisUnreachableAtStartIsNotAnError) {
  StoreConfig config;
  config.url = "redis://127.0.0.1:1";  // nothing listens on port 1
  auto store = CreateStore(config);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE(absl::IsUnavailable((*store)->Health()));
}

TEST(CreateStoreTest, RedisClusterUnreachableAtStartIsUnavailableAndSaysWhy) {
  StoreConfig config;
  config.url = "redis-cluster://127.0.0.1:1,127.0.0.1:2";
  auto store = CreateStore(config);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_THAT((*store)->Describe(), HasSubstr("redis cluster (127.0.0.1:1/0,127.0.0.1:2/0)"));
  // Before any node answered, a call has no master to go to: it fails at once.
  const absl::Status health = (*store)->Health();
  EXPECT_TRUE(absl::IsUnavailable(health)) << health;
  absl::Notification done;
  absl::Status put;
  (*store)->Put({"ns", "id"}, "session", absl::Seconds(60), absl::Now() + absl::Seconds(5),
                [&](absl::StatusOr<bool> stored) {
                  put = stored.status();
                  done.Notify();
                });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(1)));
  EXPECT_TRUE(absl::IsUnavailable(put)) << put;
  EXPECT_THAT(std::string(put.message()), HasSubstr("has no known master"));
}

}  // namespace
}  // namespace tlscache::server
