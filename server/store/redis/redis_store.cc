#include "server/store/redis/redis_store.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/openssl_util.h"
#include "common/secret_bytes.h"
#include "common/validation.h"
#include "server/store/redis/log_message.h"
#include "server/store/redis/redis_cluster.h"
#include "server/store/redis/redis_subscriber.h"

namespace tlscache::server::redis {
namespace {

// KEYS[1] the entry, ARGV[1] the session, ARGV[2] its TTL in ms. 1: stored; 0: the key holds a
// tombstone (an empty string), which stays.
constexpr absl::string_view kPutScript = R"lua(
if redis.call('STRLEN', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
)lua";

// KEYS[1] the entry, ARGV[1] "1" to consume. Returns nil (no entry, or a tombstone), or
// {session, pttl}; consuming leaves a tombstone for the rest of the entry's lifetime.
constexpr absl::string_view kGetScript = R"lua(
local v = redis.call('GET', KEYS[1])
if not v or v == '' then return false end
local t = redis.call('PTTL', KEYS[1])
if ARGV[1] == '1' then redis.call('SET', KEYS[1], '', 'KEEPTTL') end
return {v, t}
)lua";

// KEYS[1] the entry, ARGV[1] the least hold in ms. Leaves a tombstone standing for the longer
// of the hold and what the entry (or an earlier tombstone) had left. Returns {existed, hold}.
constexpr absl::string_view kDeleteScript = R"lua(
local existed = 0
if redis.call('STRLEN', KEYS[1]) > 0 then existed = 1 end
local hold = tonumber(ARGV[1])
local left = redis.call('PTTL', KEYS[1])
if left > hold then hold = left end
redis.call('SET', KEYS[1], '', 'PX', hold)
return {existed, hold}
)lua";

// The change log's append (redis_store.h, log_message.h). KEYS[1] the log {epoch, seq},
// KEYS[2] the deletions it holds (session ID -> until, Unix ms). ARGV[1] the channel, ARGV[2]
// an epoch for a log that has none yet, ARGV[3] "1" to SPUBLISH, then four per change: "d"
// (deletion) or "p", the session ID, the hold in ms (deletions), the payload. Puts of sessions
// whose deletion stands are left out; the rest is numbered and published. Returns {first,
// count} ({0, 0}: nothing kept).
constexpr absl::string_view kAppendScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local kept = {}
for i = 4, #ARGV, 4 do
  local id = ARGV[i + 1]
  if ARGV[i] == 'd' then
    local until_ms = now + tonumber(ARGV[i + 2])
    local standing = redis.call('ZSCORE', KEYS[2], id)
    if not standing or tonumber(standing) < until_ms then
      redis.call('ZADD', KEYS[2], until_ms, id)
    end
    kept[#kept + 1] = id
    kept[#kept + 1] = ARGV[i + 3]
  elseif not redis.call('ZSCORE', KEYS[2], id) then
    kept[#kept + 1] = id
    kept[#kept + 1] = ARGV[i + 3]
  end
end
if #kept == 0 then return {0, 0} end
local n = #kept / 2
redis.call('HSETNX', KEYS[1], 'epoch', ARGV[2])
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local last = redis.call('HINCRBY', KEYS[1], 'seq', n)
local first = last - n + 1
local parts = {'tlscache-log-v1|', epoch, '|', string.format('%d', first), '|'}
for j = 1, #kept do
  parts[#parts + 1] = string.format('%d', #kept[j]) .. ':' .. kept[j] .. ','
end
local message = table.concat(parts)
if ARGV[3] == '1' then
  redis.call('SPUBLISH', ARGV[1], message)
else
  redis.call('PUBLISH', ARGV[1], message)
end
return {first, n}
)lua";

// KEYS[1] the ring, ARGV[1] the expected version ("0": none), ARGV[2] the new version,
// ARGV[3] the ring. 1 if swapped, 0 if the stored version was another.
constexpr absl::string_view kSwapRingScript = R"lua(
local v = redis.call('HGET', KEYS[1], 'v')
if (v or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'r', ARGV[3])
return 1
)lua";

// KEYS[1] the followers, ARGV[1] the follower, ARGV[2] its report, ARGV[3] the most followers.
// -1 when the namespace has that many others already.
constexpr absl::string_view kReportFollowerScript = R"lua(
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and
   redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return -1
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
)lua";

// KEYS[1] the followers, ARGV[1] the follower, ARGV[2] the report to remove if still there.
constexpr absl::string_view kForgetFollowerScript = R"lua(
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1
)lua";

// Far above any real ring (64 keys of about 100 bytes); bounds what is read back.
constexpr size_t kMaxRingBytes = 64 << 10;
// How long a subscriber waits for the log's position before it goes on without it.
constexpr absl::Duration kPositionTimeout = absl::Seconds(2);

absl::Status UnexpectedReply(absl::string_view command, const redisReply& reply) {
  return absl::InternalError(
      absl::StrCat("redis ", command, ": unexpected ", DescribeReply(reply)));
}

absl::string_view Str(const redisReply& reply) { return absl::string_view(reply.str, reply.len); }

// A follower's report as its hash field's value: "VERSION:LEASE_ENDS_UNIX_MS".
std::string FollowerValue(const FollowerReport& report) {
  return absl::StrCat(report.version, ":", report.lease_ends_unix_ms);
}

std::string StoreName(const RedisStoreOptions& options) {
  if (!options.cluster.empty()) {
    std::vector<std::string> nodes;
    for (const Endpoint& node : options.cluster) nodes.push_back(node.ToString());
    return absl::StrCat("redis cluster (", absl::StrJoin(nodes, ","), ")");
  }
  return absl::StrCat(
      "redis ", options.sentinel ? options.sentinel->ToString() : options.endpoint.ToString());
}

std::string Milliseconds(absl::Duration d) {
  return absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(d)));
}

class SubscriberHandle final : public Subscription {
 public:
  explicit SubscriberHandle(std::unique_ptr<RedisSubscriber> subscriber)
      : subscriber_(std::move(subscriber)) {}

 private:
  std::unique_ptr<RedisSubscriber> subscriber_;
};

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
  if (absl::Status s = ValidateNamespace(options.deployment); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("deployment '", options.deployment, "': must match [A-Za-z0-9._-]{1,64}"));
  }
  return std::unique_ptr<RedisStore>(new RedisStore(options));
}

RedisStore::RedisStore(const RedisStoreOptions& options)
    : options_(options),
      name_(StoreName(options)),
      scope_(absl::StrCat(options.deployment, ":", options.cluster.empty() ? options.endpoint.db : 0)),
      replicated_(options.sentinel.has_value() || !options.cluster.empty()),
      put_sha_(ScriptSha(kPutScript)),
      get_sha_(ScriptSha(kGetScript)),
      delete_sha_(ScriptSha(kDeleteScript)),
      append_sha_(ScriptSha(kAppendScript)) {
  RedisPoolOptions pool = options;
  pool.scripts = {std::string(kPutScript), std::string(kGetScript), std::string(kDeleteScript),
                  std::string(kAppendScript)};
  if (options.cluster.empty()) {
    transport_ = std::make_unique<RedisPool>(pool, name_);
  } else {
    RedisClusterOptions cluster;
    cluster.seeds = options.cluster;
    cluster.node = pool;
    transport_ = std::make_unique<RedisCluster>(cluster, name_);
  }
}

RedisStore::~RedisStore() = default;

std::string RedisStore::Describe() const { return name_; }

void RedisStore::AddStats(StoreStats* stats) const {
  const TransportCounters counters = transport_->counters();
  stats->redis_connects = counters.connects;
  stats->redis_errors = counters.errors;
  if (replicated_) stats->redis_unreplicated = counters.unreplicated;
  if (transport_->sharded()) stats->redis_redirects = counters.redirects;
  if (std::optional<MasterHealth> health = transport_->health()) {
    stats->redis_master_replicas = health->replicas;
    stats->redis_master_good_replicas = health->good_replicas;
    stats->redis_evicted_keys = health->evicted_keys;
    stats->redis_aof_ok = health->aof_ok ? 1 : 0;
    stats->redis_used_memory = health->used_memory;
    stats->redis_maxmemory = health->maxmemory;
    if (options_.sentinel) {
      stats->redis_sentinels = health->sentinels;
      stats->redis_sentinels_agreeing = health->sentinels_agreeing;
      stats->redis_master_changes = health->master_changes;
    }
  }
}

std::string RedisStore::RedisKey(const StoreKey& key) const {
  return absl::StrCat(options_.key_prefix, key.ns, ":", absl::BytesToHexString(key.session_id));
}

std::string RedisStore::RingKey(absl::string_view ns) const {
  return absl::StrCat(options_.key_prefix, "@ring:", ns);
}

std::string RedisStore::FollowersKey(absl::string_view ns) const {
  return absl::StrCat(options_.key_prefix, "@followers:", ns);
}

std::string RedisStore::LogKey(absl::string_view ns) const {
  return absl::StrCat(options_.key_prefix, "@log:{", ns, "}");
}

std::string RedisStore::DeletedKey(absl::string_view ns) const {
  return absl::StrCat(options_.key_prefix, "@deleted:{", ns, "}");
}

std::string RedisStore::Channel(absl::string_view kind, absl::string_view name) const {
  return absl::StrCat(options_.key_prefix, scope_, "@", kind, ":", name);
}

void RedisStore::Submit(absl::string_view key, std::vector<std::string> argv, absl::Time deadline,
                        ReplyHandler handler, bool replicated) {
  transport_->Submit(key, RedisCommand(std::move(argv), deadline, std::move(handler), replicated));
}

void RedisStore::Put(const StoreKey& key, absl::string_view session, absl::Duration ttl,
                     absl::Time deadline, PutDone done) {
  std::string redis_key = RedisKey(key);
  std::vector<std::string> argv = {"EVALSHA", put_sha_, "1", redis_key,
                                   std::string(session), Milliseconds(ttl)};
  Submit(redis_key, std::move(argv), deadline,
         [done = std::move(done)](absl::StatusOr<ReplyPtr> reply) mutable {
           if (!reply.ok()) return std::move(done)(reply.status());
           if ((*reply)->type != REDIS_REPLY_INTEGER) {
             return std::move(done)(UnexpectedReply("EVALSHA put", **reply));
           }
           std::move(done)((*reply)->integer == 1);
         });
}

void RedisStore::Get(const StoreKey& key, bool consume, absl::Time deadline, GetDone done) {
  std::string redis_key = RedisKey(key);
  std::vector<std::string> argv = {"EVALSHA", get_sha_, "1", redis_key,
                                   consume ? "1" : "0"};
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
        std::move(done)(StoreEntry{SecretBytes(Str(value)),
                                   pttl < 0 ? absl::InfiniteDuration() : absl::Milliseconds(pttl)});
      },
      /*replicated=*/consume && replicated_);
}

void RedisStore::Delete(const StoreKey& key, absl::Duration hold, absl::Time deadline,
                        DeleteDone done) {
  const std::string redis_key = RedisKey(key);
  Submit(
      redis_key, {"EVALSHA", delete_sha_, "1", redis_key, Milliseconds(hold)},
      deadline,
      [done = std::move(done)](absl::StatusOr<ReplyPtr> reply) mutable {
        if (!reply.ok()) return std::move(done)(reply.status());
        const redisReply& r = **reply;
        if (r.type != REDIS_REPLY_ARRAY || r.elements != 2 ||
            r.element[0]->type != REDIS_REPLY_INTEGER || r.element[1]->type != REDIS_REPLY_INTEGER) {
          return std::move(done)(UnexpectedReply("EVALSHA delete", r));
        }
        std::move(done)(
            Deletion{r.element[0]->integer == 1, absl::Milliseconds(r.element[1]->integer)});
      },
      replicated_);
}

void RedisStore::Live(const StoreKey& key, absl::Time deadline, LiveDone done) {
  const std::string redis_key = RedisKey(key);
  Submit(redis_key, {"STRLEN", redis_key}, deadline,
         [done = std::move(done)](absl::StatusOr<ReplyPtr> reply) mutable {
           if (!reply.ok()) return std::move(done)(reply.status());
           if ((*reply)->type != REDIS_REPLY_INTEGER) {
             return std::move(done)(UnexpectedReply("STRLEN", **reply));
           }
           std::move(done)((*reply)->integer > 0);
         });
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
            !absl::SimpleAtoi(Str(*r.element[0]), &version) || ring.len > kMaxRingBytes) {
          return std::move(done)(absl::DataLossError(
              absl::StrCat(name_, ": the stored ticket key ring is malformed")));
        }
        std::move(done)(StoredRing{SecretBytes(Str(ring)), version});
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

void RedisStore::ReportFollower(absl::string_view ns, const FollowerReport& report,
                                absl::Time deadline, StatusDone done) {
  const std::string key = FollowersKey(ns);
  std::vector<std::string> argv =
      report.lease_ends_unix_ms == 0
          ? std::vector<std::string>{"HDEL", key, report.follower}
          : std::vector<std::string>{"EVAL", std::string(kReportFollowerScript), "1", key,
                                     report.follower, FollowerValue(report),
                                     absl::StrCat(kMaxFollowers)};
  Submit(key, std::move(argv), deadline,
         [ns = std::string(ns), done = std::move(done)](absl::StatusOr<ReplyPtr> reply) mutable {
           if (!reply.ok()) return std::move(done)(reply.status());
           if ((*reply)->type != REDIS_REPLY_INTEGER) {
             return std::move(done)(UnexpectedReply("report follower", **reply));
           }
           if ((*reply)->integer < 0) {
             return std::move(done)(absl::ResourceExhaustedError(absl::StrCat(
                 "namespace ", ns, " has ", kMaxFollowers, " ticket key followers")));
           }
           std::move(done)(absl::OkStatus());
         });
}

void RedisStore::ForgetFollower(absl::string_view ns, const FollowerReport& stale,
                                absl::Time deadline, StatusDone done) {
  const std::string key = FollowersKey(ns);
  Submit(key,
         {"EVAL", std::string(kForgetFollowerScript), "1", key, stale.follower,
          FollowerValue(stale)},
         deadline, [done = std::move(done)](absl::StatusOr<ReplyPtr> reply) mutable {
           if (!reply.ok()) return std::move(done)(reply.status());
           if ((*reply)->type != REDIS_REPLY_INTEGER) {
             return std::move(done)(UnexpectedReply("forget follower", **reply));
           }
           std::move(done)(absl::OkStatus());
         });
}

void RedisStore::ListFollowers(absl::string_view ns, absl::Time deadline, FollowersDone done) {
  const std::string key = FollowersKey(ns);
  Submit(key, {"HGETALL", key}, deadline,
         [this, done = std::move(done)](absl::StatusOr<ReplyPtr> reply) mutable {
           if (!reply.ok()) return std::move(done)(reply.status());
           const redisReply& r = **reply;
           if (r.type != REDIS_REPLY_ARRAY || r.elements % 2 != 0 ||
               r.elements / 2 > kMaxFollowers) {
             return std::move(done)(UnexpectedReply("HGETALL followers", r));
           }
           std::vector<FollowerReport> reports;
           for (size_t i = 0; i < r.elements; i += 2) {
             const redisReply& name = *r.element[i];
             const redisReply& value = *r.element[i + 1];
             FollowerReport report;
             std::pair<absl::string_view, absl::string_view> fields =
                 absl::StrSplit(Str(value), absl::MaxSplits(':', 1));
             if (name.type != REDIS_REPLY_STRING || value.type != REDIS_REPLY_STRING ||
                 !absl::SimpleAtoi(fields.first, &report.version) ||
                 !absl::SimpleAtoi(fields.second, &report.lease_ends_unix_ms)) {
               return std::move(done)(absl::DataLossError(
                   absl::StrCat(name_, ": a stored ticket key follower is malformed")));
             }
             report.follower = std::string(Str(name));
             reports.push_back(std::move(report));
           }
           std::move(done)(std::move(reports));
         });
}

void RedisStore::AppendChanges(absl::string_view ns, std::vector<LogChange> changes,
                               absl::Time deadline, StatusDone done) {
  const std::string log_key = LogKey(ns);
  std::vector<std::string> argv = {"EVALSHA",        append_sha_, "2", log_key,
                                   DeletedKey(ns),   Channel("log", absl::StrCat("{", ns, "}")),
                                   RandomId(),       transport_->sharded() ? "1" : "0"};
  argv.reserve(argv.size() + 4 * changes.size());
  for (LogChange& change : changes) {
    argv.push_back(change.deletion ? "d" : "p");
    argv.push_back(std::move(change.session_id));
    argv.push_back(Milliseconds(change.hold));
    argv.emplace_back(change.payload.view());  // wiped with the command (RedisPool::Op)
    change.payload.Clear();
  }
  Submit(log_key, std::move(argv), deadline,
         [done = std::move(done)](absl::StatusOr<ReplyPtr> reply) mutable {
           if (!reply.ok()) return std::move(done)(reply.status());
           if ((*reply)->type != REDIS_REPLY_ARRAY) {
             return std::move(done)(UnexpectedReply("EVALSHA append", **reply));
           }
           std::move(done)(absl::OkStatus());
         });
}

LogEvent RedisStore::ReadLogPosition(absl::string_view ns, std::string* replication_id) {
  LogEvent start;
  start.kind = LogEvent::Kind::kStart;
  const std::string log_key = LogKey(ns);
  absl::StatusOr<ReplyPtr> position = absl::UnknownError("not read");
  absl::StatusOr<ReplyPtr> info = absl::UnknownError("not read");
  // Tried again a few times: a pool connection that broke while Redis was away fails its
  // first command, and a position not read costs every follower a check.
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (attempt > 0) absl::SleepFor(absl::Milliseconds(100));
    absl::Notification position_read, info_read;
    const absl::Time deadline = absl::Now() + kPositionTimeout;
    Submit(log_key, {"HMGET", log_key, "epoch", "seq"}, deadline,
           [&](absl::StatusOr<ReplyPtr> reply) {
             position = std::move(reply);
             position_read.Notify();
           });
    // The replication ID changes when a replica takes over, so a log that lost its tail in a
    // failover is told apart from the one before even when its numbers went on.
    Submit(log_key, {"INFO", "replication"}, deadline, [&](absl::StatusOr<ReplyPtr> reply) {
      info = std::move(reply);
      info_read.Notify();
    });
    position_read.WaitForNotification();
    info_read.WaitForNotification();
    if (position.ok() && info.ok()) break;
  }
  replication_id->clear();
  if (info.ok() && (*info)->type == REDIS_REPLY_STRING) {
    for (absl::string_view line : absl::StrSplit(Str(**info), "\r\n")) {
      if (absl::ConsumePrefix(&line, "master_replid:")) *replication_id = std::string(line);
    }
  }
  if (!position.ok() || (*position)->type != REDIS_REPLY_ARRAY || (*position)->elements != 2) {
    return start;  // unknown: the next change decides
  }
  const redisReply& epoch = *(*position)->element[0];
  const redisReply& seq = *(*position)->element[1];
  if (epoch.type != REDIS_REPLY_STRING) return start;  // no log yet: it begins at 1
  uint64_t at = 0;
  if (seq.type != REDIS_REPLY_STRING || !absl::SimpleAtoi(Str(seq), &at)) return start;
  start.seq = at;
  start.log_id = absl::StrCat(Str(epoch), "/", *replication_id);
  return start;
}

std::unique_ptr<RedisSubscriber> RedisStore::Subscriber(
    std::string channel, std::function<void()> subscribed, std::function<void()> lost,
    std::function<void(SecretBytes)> on_message) {
  SubscriberOptions subscriber;
  subscriber.channel = std::move(channel);
  subscriber.sharded = transport_->sharded();
  subscriber.auth = options_.auth;
  subscriber.on_subscribed = std::move(subscribed);
  subscriber.on_lost = std::move(lost);
  subscriber.timeout = options_.connect_timeout;
  subscriber.min_backoff = options_.min_backoff;
  subscriber.max_backoff = options_.max_backoff;
  subscriber.locate = transport_->SubscriberLocator();
  return std::make_unique<RedisSubscriber>(std::move(subscriber), std::move(on_message));
}

std::unique_ptr<Subscription> RedisStore::FollowLog(absl::string_view ns, LogHandler handler) {
  // Both callbacks run on the subscriber's one thread: the state needs no lock.
  struct Follow {
    std::string ns;
    LogHandler handler;
    std::string replication_id;  // of the server subscribed to, from its kStart
    LogLimiter report{absl::Minutes(1)};
  };
  auto follow = std::make_shared<Follow>();
  follow->ns = std::string(ns);
  follow->handler = std::move(handler);
  const size_t max_payload = options_.max_session_bytes + (4 << 10);
  auto subscribed = [this, follow] {
    follow->handler(ReadLogPosition(follow->ns, &follow->replication_id));
  };
  auto lost = [follow] {
    LogEvent event;
    event.kind = LogEvent::Kind::kLost;
    follow->handler(std::move(event));
  };
  auto on_message = [follow, max_payload](SecretBytes message) {
    absl::StatusOr<LogMessage> parsed = ParseLogMessage(message.view(), max_payload);
    if (!parsed.ok()) {
      if (follow->report.Allow()) {
        LogWarning("the change log of namespace %s: a message dropped: %s", follow->ns,
                   parsed.status().message());
      }
      return;
    }
    LogEvent event;
    event.kind = LogEvent::Kind::kChanges;
    event.log_id = absl::StrCat(parsed->epoch, "/", follow->replication_id);
    event.seq = parsed->first_seq;
    event.entries = std::move(parsed->entries);
    follow->handler(std::move(event));
  };
  return std::make_unique<SubscriberHandle>(
      Subscriber(Channel("log", absl::StrCat("{", ns, "}")), std::move(subscribed),
                 std::move(lost), std::move(on_message)));
}

void RedisStore::PublishNotice(absl::string_view channel, absl::string_view payload,
                               absl::Time deadline, StatusDone done) {
  std::string name = Channel("notice", channel);
  std::vector<std::string> argv = {transport_->sharded() ? "SPUBLISH" : "PUBLISH", name, std::string(payload)};
  Submit(name, std::move(argv), deadline,
         [done = std::move(done)](absl::StatusOr<ReplyPtr> reply) mutable {
           if (!reply.ok()) return std::move(done)(reply.status());
           if ((*reply)->type == REDIS_REPLY_ERROR) {
             return std::move(done)(
                 absl::UnavailableError(absl::StrCat("redis PUBLISH: ", DescribeReply(**reply))));
           }
           std::move(done)(absl::OkStatus());
         });
}

std::unique_ptr<Subscription> RedisStore::SubscribeNotices(absl::string_view channel,
                                                           NoticeHandler handler) {
  return std::make_unique<SubscriberHandle>(
      Subscriber(Channel("notice", channel), nullptr, nullptr,
                 [handler = std::move(handler)](SecretBytes payload) { handler(payload.view()); }));
}

absl::Status RedisStore::Health() { return transport_->Health(); }

}  // namespace tlscache::server::redis
