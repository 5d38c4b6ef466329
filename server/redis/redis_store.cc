#include "server/redis/redis_store.h"

#include <openssl/sha.h>

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/secret_bytes.h"

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

std::string Sha1Hex(absl::string_view text) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

// Far above any real ring (64 keys of about 100 bytes); bounds what is read back.
constexpr size_t kMaxRingBytes = 64 << 10;

absl::Status UnexpectedReply(absl::string_view command, const redisReply& reply) {
  return absl::InternalError(
      absl::StrCat("redis ", command, ": unexpected ", DescribeReply(reply)));
}

}  // namespace

struct RedisStore::Op {
  ~Op() {
    for (std::string& arg : argv) CleanseString(&arg);
  }
  std::vector<std::string> argv;
  absl::Time deadline;
  ReplyHandler handler;
};

absl::StatusOr<std::unique_ptr<RedisStore>> RedisStore::Create(const RedisStoreOptions& options) {
  if (options.sentinel) {
    if (options.sentinel->sentinels.empty() || options.sentinel->master_name.empty()) {
      return absl::InvalidArgumentError("redis: sentinel needs sentinels and a master name");
    }
  } else if (options.endpoint.host.empty()) {
    return absl::InvalidArgumentError("redis: empty host");
  } else if (options.endpoint.port < 1 || options.endpoint.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("redis: port ", options.endpoint.port, " is out of range"));
  }
  if (options.pool_size < 1 || options.pool_size > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("redis: pool size ", options.pool_size, " is not within 1..256"));
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("redis: timeout must be positive");
  }
  if (options.max_batch < 1 || options.max_queue < 1) {
    return absl::InvalidArgumentError("redis: max batch and max queue must be positive");
  }
  std::unique_ptr<RedisStore> store(new RedisStore(options));
  for (int i = 0; i < options.pool_size; ++i) {
    store->workers_.emplace_back([s = store.get()] { s->WorkerLoop(); });
  }
  if (options.sentinel) {
    store->watcher_ = std::make_unique<SentinelWatcher>(*options.sentinel, options.connect_timeout,
                                                        [s = store.get()] {
                                                          s->topology_epoch_.fetch_add(1);
                                                          absl::MutexLock lock(&s->mu_);
                                                          s->work_cv_.SignalAll();
                                                          s->backoff_cv_.SignalAll();
                                                        });
  }
  return store;
}

RedisStore::RedisStore(const RedisStoreOptions& options)
    : options_(options),
      name_(absl::StrCat(
          "redis ", options.sentinel ? options.sentinel->ToString() : options.endpoint.ToString())),
      script_sha_(Sha1Hex(kGetScript)),
      last_error_(absl::UnavailableError(absl::StrCat(name_, ": not connected yet"))) {}

RedisStore::~RedisStore() {
  watcher_.reset();  // it calls into this store
  std::vector<std::unique_ptr<Op>> left;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    work_cv_.SignalAll();
    backoff_cv_.SignalAll();
  }
  for (std::thread& worker : workers_) worker.join();
  {
    absl::MutexLock lock(&mu_);
    for (auto& op : queue_) left.push_back(std::move(op));
    queue_.clear();
  }
  Fail(std::move(left), absl::UnavailableError("redis store is shutting down"));
}

std::string RedisStore::Describe() const { return name_; }

void RedisStore::AddStats(StoreStats* stats) const {
  stats->redis_connects = connects_.load(std::memory_order_relaxed);
  stats->redis_errors = errors_.load(std::memory_order_relaxed);
}

std::string RedisStore::RedisKey(const StoreKey& key) const {
  return absl::StrCat(options_.key_prefix, key.ns, ":", absl::BytesToHexString(key.session_id));
}

void RedisStore::Put(const StoreKey& key, absl::string_view session, absl::Duration ttl,
                     absl::Time deadline, PutDone done) {
  const int64_t ttl_ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(ttl));
  std::vector<std::string> argv = {"SET", RedisKey(key), std::string(session), "PX",
                                   absl::StrCat(ttl_ms)};
  Submit(std::move(argv), deadline,
         [done = std::move(done)](absl::StatusOr<ReplyPtr> reply) mutable {
           if (!reply.ok()) return std::move(done)(reply.status());
           if ((*reply)->type != REDIS_REPLY_STATUS) {
             return std::move(done)(UnexpectedReply("SET", **reply));
           }
           std::move(done)(absl::OkStatus());
         });
}

void RedisStore::Get(const StoreKey& key, bool consume, absl::Time deadline, GetDone done) {
  std::vector<std::string> argv = {"EVALSHA", script_sha_, "1", RedisKey(key), consume ? "1" : "0"};
  Submit(
      std::move(argv), deadline,
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
  Submit(
      {"HMGET", RingKey(ns), "v", "r"}, deadline,
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
  Submit({"EVAL", std::string(kSwapRingScript), "1", RingKey(ns), absl::StrCat(expected),
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
  Submit({"DEL", RedisKey(key)}, deadline,
         [done = std::move(done)](absl::StatusOr<ReplyPtr> reply) mutable {
           if (!reply.ok()) return std::move(done)(reply.status());
           if ((*reply)->type != REDIS_REPLY_INTEGER) {
             return std::move(done)(UnexpectedReply("DEL", **reply));
           }
           std::move(done)((*reply)->integer > 0);
         });
}

absl::Status RedisStore::Health() {
  absl::MutexLock lock(&mu_);
  if (connected_ > 0) return absl::OkStatus();
  return last_error_;
}

void RedisStore::Submit(std::vector<std::string> argv, absl::Time deadline, ReplyHandler handler) {
  auto op = std::make_unique<Op>();
  op->argv = std::move(argv);
  op->deadline = std::min(deadline, absl::Now() + options_.timeout);
  op->handler = std::move(handler);
  absl::Status rejected;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      rejected = absl::UnavailableError("redis store is shutting down");
    } else if (connected_ == 0) {
      rejected = last_error_;
    } else if (queue_.size() >= options_.max_queue) {
      rejected = absl::UnavailableError(
          absl::StrCat(name_, ": overloaded, ", queue_.size(), " calls already queued"));
    } else {
      queue_.push_back(std::move(op));
      work_cv_.Signal();
      return;
    }
  }
  std::move(op->handler)(rejected);
}

absl::StatusOr<std::unique_ptr<RedisConnection>> RedisStore::Open() {
  Endpoint endpoint = options_.endpoint;
  if (options_.sentinel) {
    absl::StatusOr<Endpoint> master = ResolveMaster(*options_.sentinel, options_.connect_timeout);
    if (!master.ok()) return master.status();
    endpoint = *std::move(master);
  }
  absl::StatusOr<std::unique_ptr<RedisConnection>> conn = RedisConnection::Connect(
      endpoint, options_.connect_timeout, options_.timeout, options_.auth.get());
  if (!conn.ok()) return conn.status();
  if (options_.sentinel) {
    if (absl::Status s = CheckMaster(**conn); !s.ok()) return s;
  }
  // Load the script now, so that EVALSHA finds it (after a Redis restart or SCRIPT FLUSH too).
  absl::StatusOr<ReplyPtr> loaded = (*conn)->Command({"SCRIPT", "LOAD", kGetScript});
  if (!loaded.ok()) return loaded.status();
  if ((*loaded)->type != REDIS_REPLY_STRING ||
      absl::string_view((*loaded)->str, (*loaded)->len) != script_sha_) {
    return absl::UnavailableError(absl::StrCat(name_, ": SCRIPT LOAD: ", DescribeReply(**loaded)));
  }
  return conn;
}

absl::Status RedisStore::CheckMaster(RedisConnection& conn) {
  absl::StatusOr<ReplyPtr> role = conn.Command({"ROLE"});
  if (!role.ok()) return role.status();
  const redisReply& r = **role;
  if (r.type == REDIS_REPLY_ARRAY && r.elements > 0 &&
      (r.element[0]->type == REDIS_REPLY_STRING || r.element[0]->type == REDIS_REPLY_STATUS) &&
      absl::string_view(r.element[0]->str, r.element[0]->len) == "master") {
    return absl::OkStatus();
  }
  return absl::UnavailableError(
      absl::StrCat(name_,
                   ": the server the sentinels named is not the master (a failover is in "
                   "progress); not writing to a replica"));
}

void RedisStore::WorkerLoop() {
  std::unique_ptr<RedisConnection> conn;
  uint64_t conn_epoch = 0;
  absl::Duration backoff = options_.min_backoff;
  while (true) {
    if (conn != nullptr && topology_epoch_.load() != conn_epoch) {
      conn.reset();
      MarkDown(absl::UnavailableError(absl::StrCat(name_, ": failover: moving to the new master")));
    }
    if (conn == nullptr) {
      conn_epoch = topology_epoch_.load();
      absl::StatusOr<std::unique_ptr<RedisConnection>> opened = Open();
      if (opened.ok()) {
        connects_.fetch_add(1, std::memory_order_relaxed);
        conn = *std::move(opened);
        backoff = options_.min_backoff;
        MarkUp();
      } else {
        errors_.fetch_add(1, std::memory_order_relaxed);
        absl::MutexLock lock(&mu_);
        last_error_ = opened.status();
        const absl::Time wake = absl::Now() + backoff;
        // A failover announcement cuts the back-off short: the new master is there now.
        while (!stopping_ && topology_epoch_.load() == conn_epoch &&
               !backoff_cv_.WaitWithDeadline(&mu_, wake)) {
        }
        if (stopping_) return;
        backoff = std::min(backoff * 2, options_.max_backoff);
        continue;
      }
    }
    std::vector<std::unique_ptr<Op>> batch = TakeBatch();
    {
      absl::MutexLock lock(&mu_);
      if (stopping_ && batch.empty()) break;
    }
    absl::Status status;
    if (batch.empty() && options_.sentinel) {
      status = CheckMaster(*conn);  // an idle check that also notices a demoted master
    } else if (batch.empty()) {
      absl::StatusOr<ReplyPtr> pong = conn->Command({"PING"});
      status = pong.ok() ? absl::OkStatus() : pong.status();
    } else {
      status = RunBatch(*conn, std::move(batch));
    }
    if (!status.ok()) {
      errors_.fetch_add(1, std::memory_order_relaxed);
      conn.reset();
      MarkDown(status);
    }
  }
  if (conn != nullptr) MarkDown(absl::UnavailableError("redis store is shutting down"));
}

std::vector<std::unique_ptr<RedisStore::Op>> RedisStore::TakeBatch() {
  std::vector<std::unique_ptr<Op>> batch;
  absl::MutexLock lock(&mu_);
  const absl::Time idle_until = absl::Now() + options_.idle_check;
  while (queue_.empty() && !stopping_) {
    if (work_cv_.WaitWithDeadline(&mu_, idle_until)) break;
  }
  while (!queue_.empty() && batch.size() < options_.max_batch) {
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  return batch;
}

absl::Status RedisStore::RunBatch(RedisConnection& conn, std::vector<std::unique_ptr<Op>> batch) {
  const absl::Time now = absl::Now();
  std::vector<std::unique_ptr<Op>> live;
  live.reserve(batch.size());
  for (auto& op : batch) {
    if (op->deadline <= now) {
      std::move(op->handler)(absl::DeadlineExceededError(
          absl::StrCat(name_, ": call timed out waiting for a connection")));
    } else {
      std::vector<absl::string_view> args(op->argv.begin(), op->argv.end());
      conn.Append(args);
      live.push_back(std::move(op));
    }
  }
  // A command-level error (NOSCRIPT after SCRIPT FLUSH, READONLY after a failover, OOM)
  // fails its call; the connection is then rebuilt in case the server's state changed.
  absl::Status command_error;
  for (size_t i = 0; i < live.size(); ++i) {
    absl::StatusOr<ReplyPtr> reply = conn.GetReply();
    if (!reply.ok()) {
      for (size_t j = i; j < live.size(); ++j) std::move(live[j]->handler)(reply.status());
      return reply.status();
    }
    if ((*reply)->type == REDIS_REPLY_ERROR) {
      command_error = absl::UnavailableError(absl::StrCat(name_, ": ", DescribeReply(**reply)));
      std::move(live[i]->handler)(command_error);
    } else {
      std::move(live[i]->handler)(std::move(reply));
    }
  }
  return command_error;
}

void RedisStore::MarkUp() {
  absl::MutexLock lock(&mu_);
  if (connected_++ == 0) LogInfo("%s: connected", name_);
}

void RedisStore::MarkDown(const absl::Status& why) {
  std::vector<std::unique_ptr<Op>> failed;
  {
    absl::MutexLock lock(&mu_);
    last_error_ = why;
    if (--connected_ > 0) return;
    // No connection left: nothing queued can be served soon, so fail it now rather than at
    // its deadline.
    for (auto& op : queue_) failed.push_back(std::move(op));
    queue_.clear();
    if (!stopping_) LogWarning("%s: unavailable: %s", name_, why.message());
  }
  Fail(std::move(failed), why);
}

void RedisStore::Fail(std::vector<std::unique_ptr<Op>> ops, const absl::Status& status) {
  for (auto& op : ops) std::move(op->handler)(status);
}

}  // namespace tlscache::server::redis
