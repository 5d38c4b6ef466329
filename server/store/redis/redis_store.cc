#include "server/store/redis/redis_store.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/secret_bytes.h"
#include "server/store/redis/redis_subscriber.h"

namespace tlscache::server::redis {
namespace {

// KEYS[1] the entry, ARGV[1] "1" to consume. Returns nil, or {session, pttl}.
constexpr absl::string_view kGetScript = R"lua(
local v = redis.call('GET', KEYS[1])
if not v then return false end
local t = redis.call('PTTL', KEYS[1])
if ARGV[1] == '1' then redis.call('DEL', KEYS[1]) end
return {v, t}
)lua";

// KEYS[1] the ring, ARGV[1] the expected version ("0": none), ARGV[2] the new version,
// ARGV[3] the ring. 1 if swapped, 0 if the stored version was another.
constexpr absl::string_view kSwapRingScript = R"lua(
local v = redis.call('HGET', KEYS[1], 'v')
if (v or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'r', ARGV[3])
return 1
)lua";

// Far above any real ring (64 keys of about 100 bytes); bounds what is read back.
constexpr size_t kMaxRingBytes = 64 << 10;

absl::Status UnexpectedReply(absl::string_view command, const redisReply& reply) {
  return absl::InternalError(
      absl::StrCat("redis ", command, ": unexpected ", DescribeReply(reply)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisStore>> RedisStore::Create(const RedisStoreOptions& options) {
  RedisPoolOptions checked = options;
  if (!options.cluster.empty()) {
    checked.sentinel.reset();  // each node is checked as a standalone endpoint
    for (const Endpoint& node : options.cluster) {
      checked.endpoint = node;
      if (absl::Status s = RedisPool::Validate(checked); !s.ok()) return s;
    }
  } else if (absl::Status s = RedisPool::Validate(checked); !s.ok()) {
    return s;
  }
  return std::unique_ptr<RedisStore>(new RedisStore(options));
}

namespace {

std::string StoreName(const RedisStoreOptions& options) {
  if (!options.cluster.empty()) {
    std::vector<std::string> nodes;
    for (const Endpoint& node : options.cluster) nodes.push_back(node.ToString());
    return absl::StrCat("redis cluster (", absl::StrJoin(nodes, ","), ")");
  }
  return absl::StrCat(
      "redis ", options.sentinel ? options.sentinel->ToString() : options.endpoint.ToString());
}

}  // namespace

RedisStore::RedisStore(const RedisStoreOptions& options)
    : options_(options), name_(StoreName(options)), script_sha_(ScriptSha(kGetScript)) {
  RedisPoolOptions pool = options;
  pool.scripts = {std::string(kGetScript)};
  if (options.cluster.empty()) {
    pool_ = std::make_unique<RedisPool>(pool, name_);
  } else {
    RedisClusterOptions cluster;
    cluster.seeds = options.cluster;
    cluster.node = pool;
    cluster_ = std::make_unique<RedisCluster>(cluster, name_);
  }
}

RedisStore::~RedisStore() = default;

std::string RedisStore::Describe() const { return name_; }

void RedisStore::AddStats(StoreStats* stats) const {
  stats->redis_connects = pool_ ? pool_->connects() : cluster_->connects();
  stats->redis_errors = pool_ ? pool_->errors() : cluster_->errors();
  if (cluster_) stats->redis_redirects = cluster_->redirects();
}

std::string RedisStore::ChangesChannel(absl::string_view ns) const {
  return absl::StrCat(options_.key_prefix, "@changes:", ns);
}

void RedisStore::PublishChanges(absl::string_view ns, absl::string_view batch, absl::Time deadline,
                                PutDone done) {
  std::string channel = ChangesChannel(ns);
  std::vector<std::string> argv = {cluster_ ? "SPUBLISH" : "PUBLISH", channel, std::string(batch)};
  Submit(channel, std::move(argv), deadline,
         [done = std::move(done)](absl::StatusOr<ReplyPtr> reply) mutable {
           if (!reply.ok()) return std::move(done)(reply.status());
           if ((*reply)->type == REDIS_REPLY_ERROR) {
             return std::move(done)(
                 absl::UnavailableError(absl::StrCat("redis PUBLISH: ", DescribeReply(**reply))));
           }
           std::move(done)(absl::OkStatus());
         });
}

namespace {

class Subscription final : public ChangesSubscription {
 public:
  explicit Subscription(std::unique_ptr<RedisSubscriber> subscriber)
      : subscriber_(std::move(subscriber)) {}

 private:
  std::unique_ptr<RedisSubscriber> subscriber_;
};

}  // namespace

std::unique_ptr<ChangesSubscription> RedisStore::SubscribeChanges(absl::string_view ns,
                                                                  ChangesHandler handler) {
  SubscriberOptions subscriber;
  subscriber.channel = ChangesChannel(ns);
  subscriber.sharded = cluster_ != nullptr;
  subscriber.auth = options_.auth;
  subscriber.timeout = options_.connect_timeout;
  subscriber.min_backoff = options_.min_backoff;
  subscriber.max_backoff = options_.max_backoff;
  if (cluster_ != nullptr) {
    // Any node answers with MOVED to the one that owns the channel's slot: start from the
    // seeds, one after another.
    auto next = std::make_shared<std::atomic<size_t>>(0);
    subscriber.locate = [seeds = options_.cluster, next]() -> absl::StatusOr<Endpoint> {
      return seeds[next->fetch_add(1) % seeds.size()];
    };
  } else if (options_.sentinel) {
    subscriber.locate = [sentinel = *options_.sentinel, timeout = options_.connect_timeout] {
      return ResolveMaster(sentinel, timeout);
    };
  } else {
    subscriber.locate = [endpoint = options_.endpoint]() -> absl::StatusOr<Endpoint> {
      return endpoint;
    };
  }
  std::string name(ns);
  return std::make_unique<Subscription>(std::make_unique<RedisSubscriber>(
      std::move(subscriber), [name, handler = std::move(handler)](SecretBytes batch) {
        handler(name, std::move(batch));
      }));
}

void RedisStore::Submit(absl::string_view key, std::vector<std::string> argv, absl::Time deadline,
                        ReplyHandler handler) {
  if (pool_) return pool_->Submit(std::move(argv), deadline, std::move(handler));
  cluster_->Submit(key, std::move(argv), deadline, std::move(handler));
}

std::string RedisStore::RedisKey(const StoreKey& key) const {
  return absl::StrCat(options_.key_prefix, key.ns, ":", absl::BytesToHexString(key.session_id));
}

void RedisStore::Put(const StoreKey& key, absl::string_view session, absl::Duration ttl,
                     absl::Time deadline, PutDone done) {
  const int64_t ttl_ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(ttl));
  std::string redis_key = RedisKey(key);
  std::vector<std::string> argv = {"SET", redis_key, std::string(session), "PX",
                                   absl::StrCat(ttl_ms)};
  Submit(redis_key, std::move(argv), deadline,
         [done = std::move(done)](absl::StatusOr<ReplyPtr> reply) mutable {
           if (!reply.ok()) return std::move(done)(reply.status());
           if ((*reply)->type != REDIS_REPLY_STATUS) {
             return std::move(done)(UnexpectedReply("SET", **reply));
           }
           std::move(done)(absl::OkStatus());
         });
}

void RedisStore::Get(const StoreKey& key, bool consume, absl::Time deadline, GetDone done) {
  std::string redis_key = RedisKey(key);
  std::vector<std::string> argv = {"EVALSHA", script_sha_, "1", redis_key, consume ? "1" : "0"};
  Submit(
      redis_key, std::move(argv), deadline,
      [this, done = std::move(done)](absl::StatusOr<ReplyPtr> reply) mutable {
        if (!reply.ok()) return std::move(done)(reply.status());
        const redisReply& r = **reply;
        if (r.type == REDIS_REPLY_NIL) {
          return std::move(done)(absl::NotFoundError("no such session"));
        }
        if (r.type != REDIS_REPLY_ARRAY || r.elements != 2 ||
            r.element[0]->type != REDIS_REPLY_STRING || r.element[1]->type != REDIS_REPLY_INTEGER) {
          return std::move(done)(UnexpectedReply("EVALSHA get", r));
        }
        const redisReply& value = *r.element[0];
        if (value.len == 0 || value.len > options_.max_session_bytes) {
          return std::move(done)(absl::DataLossError(
              absl::StrCat("stored session of ", value.len, " bytes is outside the accepted 1..",
                           options_.max_session_bytes, " bytes")));
        }
        const long long pttl = r.element[1]->integer;  // -1: stored without expiry
        std::move(done)(StoreEntry{SecretBytes(absl::string_view(value.str, value.len)),
                                   pttl < 0 ? absl::InfiniteDuration() : absl::Milliseconds(pttl)});
      });
}

std::string RedisStore::RingKey(absl::string_view ns) const {
  return absl::StrCat(options_.key_prefix, "@ring:", ns);
}

void RedisStore::GetRing(absl::string_view ns, absl::Time deadline, GetRingDone done) {
  const std::string ring_key = RingKey(ns);
  Submit(
      ring_key, {"HMGET", ring_key, "v", "r"}, deadline,
      [this, done = std::move(done)](absl::StatusOr<ReplyPtr> reply) mutable {
        if (!reply.ok()) return std::move(done)(reply.status());
        const redisReply& r = **reply;
        if (r.type != REDIS_REPLY_ARRAY || r.elements != 2) {
          return std::move(done)(UnexpectedReply("HMGET ring", r));
        }
        if (r.element[0]->type == REDIS_REPLY_NIL || r.element[1]->type == REDIS_REPLY_NIL) {
          return std::move(done)(absl::NotFoundError("no ticket key ring"));
        }
        uint64_t version = 0;
        const redisReply& ring = *r.element[1];
        if (r.element[0]->type != REDIS_REPLY_STRING || ring.type != REDIS_REPLY_STRING ||
            !absl::SimpleAtoi(absl::string_view(r.element[0]->str, r.element[0]->len), &version) ||
            ring.len > kMaxRingBytes) {
          return std::move(done)(absl::DataLossError(
              absl::StrCat(name_, ": the stored ticket key ring is malformed")));
        }
        std::move(done)(StoredRing{SecretBytes(absl::string_view(ring.str, ring.len)), version});
      });
}

void RedisStore::SwapRing(absl::string_view ns, uint64_t expected, uint64_t version,
                          absl::string_view ring, absl::Time deadline, SwapRingDone done) {
  const std::string ring_key = RingKey(ns);
  Submit(ring_key,
         {"EVAL", std::string(kSwapRingScript), "1", ring_key, absl::StrCat(expected),
          absl::StrCat(version), std::string(ring)},
         deadline, [done = std::move(done)](absl::StatusOr<ReplyPtr> reply) mutable {
           if (!reply.ok()) return std::move(done)(reply.status());
           if ((*reply)->type != REDIS_REPLY_INTEGER) {
             return std::move(done)(UnexpectedReply("EVAL swap ring", **reply));
           }
           std::move(done)((*reply)->integer == 1);
         });
}

void RedisStore::Delete(const StoreKey& key, absl::Time deadline, DeleteDone done) {
  const std::string redis_key = RedisKey(key);
  Submit(redis_key, {"DEL", redis_key}, deadline,
         [done = std::move(done)](absl::StatusOr<ReplyPtr> reply) mutable {
           if (!reply.ok()) return std::move(done)(reply.status());
           if ((*reply)->type != REDIS_REPLY_INTEGER) {
             return std::move(done)(UnexpectedReply("DEL", **reply));
           }
           std::move(done)((*reply)->integer > 0);
         });
}

absl::Status RedisStore::Health() { return pool_ ? pool_->Health() : cluster_->Health(); }

}  // namespace tlscache::server::redis
