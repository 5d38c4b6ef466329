#include "server/store/redis/cluster_slots.h"

#include <hiredis/hiredis.h>

#include <deque>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/store/store_factory.h"

namespace tlscache::server::redis {
namespace {

TEST(KeySlotTest, MatchesRedisClusterSpecification) {
  // The specification's CRC16 check value: CRC16("123456789") = 0x31C3.
  EXPECT_EQ(KeySlot("123456789"), 0x31C3 % kClusterSlots);
  EXPECT_EQ(KeySlot("foo"), 12182);  // CLUSTER KEYSLOT foo
  EXPECT_EQ(KeySlot(""), 0);
}

TEST(KeySlotTest, HashTagsChooseTheSlot) {
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("{user1000}.followers"));
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("user1000"));
  EXPECT_EQ(KeySlot("foo{bar}{zap}"), KeySlot("bar"));  // the first tag only
  EXPECT_EQ(KeySlot("foo{{bar}}zap"), KeySlot("{bar"));
  EXPECT_EQ(KeySlot("foo{}{bar}"), KeySlot("foo{}{bar}"));  // empty tag: the whole key
  EXPECT_NE(KeySlot("foo{}{bar}"), KeySlot("bar"));
  EXPECT_EQ(KeySlot("foo{bar"), KeySlot("foo{bar"));  // no closing brace: the whole key
  EXPECT_NE(KeySlot("foo{bar"), KeySlot("bar"));
}

TEST(ParseRedirectTest, MovedAndAsk) {
  std::optional<Redirect> moved = ParseRedirect("MOVED 3999 127.0.0.1:6381");
  ASSERT_TRUE(moved.has_value());
  EXPECT_FALSE(moved->ask);
  EXPECT_EQ(moved->slot, 3999);
  EXPECT_EQ(moved->to.host, "127.0.0.1");
  EXPECT_EQ(moved->to.port, 6381);
  std::optional<Redirect> ask = ParseRedirect("ASK 16383 redis-2.internal:7000");
  ASSERT_TRUE(ask.has_value());
  EXPECT_TRUE(ask->ask);
  EXPECT_EQ(ask->slot, 16383);
  EXPECT_EQ(ask->to.host, "redis-2.internal");
  std::optional<Redirect> v6 = ParseRedirect("MOVED 1 ::1:7001");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->to.host, "::1");
  EXPECT_EQ(v6->to.port, 7001);
}

TEST(ParseRedirectTest, AnythingElseIsNotARedirect) {
  for (const char* error :
       {"TRYAGAIN Multiple keys request during rehashing of slot",
        "CLUSTERDOWN The cluster is down", "MOVED 16384 127.0.0.1:1", "MOVED -1 127.0.0.1:1",
        "MOVED 1 127.0.0.1", "MOVED 1 :80", "MOVED 1 h:0", "MOVED 1 h:65536", "ASK x h:1",
        "MOVED 1 h:1 extra", "ERR unknown"}) {
    EXPECT_FALSE(ParseRedirect(error).has_value()) << error;
  }
}

// Replies built by hand, as hiredis would hand them over.
class Replies {
 public:
  redisReply* Integer(long long value) {
    redisReply* r = New(REDIS_REPLY_INTEGER);
    r->integer = value;
    return r;
  }
  redisReply* String(const std::string& value) {
    strings_.push_back(value);
    redisReply* r = New(REDIS_REPLY_STRING);
    r->str = strings_.back().data();
    r->len = strings_.back().size();
    return r;
  }
  redisReply* Array(std::vector<redisReply*> elements) {
    arrays_.push_back(std::move(elements));
    redisReply* r = New(REDIS_REPLY_ARRAY);
    r->elements = arrays_.back().size();
    r->element = arrays_.back().data();
    return r;
  }

 private:
  redisReply* New(int type) {
    replies_.emplace_back();
    replies_.back().type = type;
    return &replies_.back();
  }
  std::deque<redisReply> replies_;
  std::deque<std::string> strings_;
  std::deque<std::vector<redisReply*>> arrays_;
};

TEST(ParseClusterSlotsTest, KeepsEachRangesMaster) {
  Replies r;
  redisReply* reply = r.Array({
      r.Array({r.Integer(0), r.Integer(5460),
               r.Array({r.String("127.0.0.1"), r.Integer(7000), r.String("id0")}),
               r.Array({r.String("127.0.0.1"), r.Integer(7003), r.String("id3")})}),
      r.Array({r.Integer(5461), r.Integer(16383),
               r.Array({r.String(""), r.Integer(7001), r.String("id1")})}),
  });
  absl::StatusOr<std::vector<SlotRange>> ranges = ParseClusterSlots(*reply, "10.0.0.9");
  ASSERT_TRUE(ranges.ok()) << ranges.status();
  ASSERT_EQ(ranges->size(), 2u);
  EXPECT_EQ((*ranges)[0].first, 0);
  EXPECT_EQ((*ranges)[0].last, 5460);
  EXPECT_EQ((*ranges)[0].master.port, 7000);
  EXPECT_EQ((*ranges)[1].master.host, "10.0.0.9");  // a node that does not know its address
  EXPECT_EQ((*ranges)[1].master.port, 7001);
}

TEST(ParseClusterSlotsTest, MalformedRepliesAreDataLoss) {
  Replies r;
  const std::vector<redisReply*> bad = {
      r.Integer(1),
      r.Array({r.Array({r.Integer(0), r.Integer(1)})}),
      r.Array({r.Array({r.Integer(10), r.Integer(5), r.Array({r.String("h"), r.Integer(1)})})}),
      r.Array({r.Array({r.Integer(0), r.Integer(16384), r.Array({r.String("h"), r.Integer(1)})})}),
      r.Array({r.Array({r.Integer(0), r.Integer(1), r.Array({r.String("h"), r.Integer(0)})})}),
      r.Array({r.Array({r.Integer(0), r.Integer(1), r.Array({r.Integer(1), r.Integer(1)})})}),
  };
  for (redisReply* reply : bad) {
    absl::StatusOr<std::vector<SlotRange>> ranges = ParseClusterSlots(*reply, "h");
    EXPECT_EQ(ranges.status().code(), absl::StatusCode::kDataLoss);
  }
}

TEST(ParseClusterUrlTest, NodesWithDefaultPorts) {
  absl::StatusOr<std::vector<Endpoint>> nodes =
      ParseClusterUrl("redis-cluster://10.0.0.1:7000,10.0.0.2,[::1]:7002");
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  ASSERT_EQ(nodes->size(), 3u);
  EXPECT_EQ((*nodes)[0].port, 7000);
  EXPECT_EQ((*nodes)[1].host, "10.0.0.2");
  EXPECT_EQ((*nodes)[1].port, 6379);
  EXPECT_EQ((*nodes)[2].port, 7002);
}

TEST(ParseClusterUrlTest, BadUrlsSayWhatIsWrong) {
  for (const auto& [url, message] : std::vector<std::pair<std::string, std::string>>{
           {"redis-cluster://", "node '' is not HOST:PORT"},
           {"redis-cluster://h:1,,h:2", "node '' is not HOST:PORT"},
           {"redis-cluster://h:99999", "node 'h:99999' is not HOST:PORT"},
           {"redis-cluster://h:1/0", "a cluster has no database"}}) {
    absl::StatusOr<std::vector<Endpoint>> nodes = ParseClusterUrl(url);
    ASSERT_FALSE(nodes.ok()) << url;
    EXPECT_NE(nodes.status().message().find(message), std::string::npos) << nodes.status();
    EXPECT_NE(nodes.status().message().find("--store=" + url), std::string::npos);
  }
}

}  // namespace
}  // namespace tlscache::server::redis
