#include "server/store/redis/redis_pool.h"

#include <openssl/sha.h>

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/secret_bytes.h"

namespace tlscache::server::redis {
namespace {

constexpr absl::Duration kHealthEvery = absl::Seconds(5);

// The value of `field` in INFO's text ("field:value\r\n"); empty when it is not there.
absl::string_view InfoField(absl::string_view info, absl::string_view field) {
  for (absl::string_view line : absl::StrSplit(info, '\n')) {
    line = absl::StripTrailingAsciiWhitespace(line);
    if (absl::ConsumePrefix(&line, field) && absl::ConsumePrefix(&line, ":")) return line;
  }
  return {};
}

uint64_t InfoNumber(absl::string_view info, absl::string_view field) {
  uint64_t value = 0;
  return absl::SimpleAtoi(InfoField(info, field), &value) ? value : 0;
}

// A cluster's answers about where a key lives or whether its slot can be served now: for the
// router to act on, not a sign that the connection or the server changed.
bool IsClusterReply(absl::string_view error) {
  return absl::StartsWith(error, "MOVED ") || absl::StartsWith(error, "ASK ") ||
         absl::StartsWith(error, "TRYAGAIN") || absl::StartsWith(error, "CLUSTERDOWN");
}

}  // namespace

std::string ScriptSha(absl::string_view script) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(script.data()), script.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

absl::Status RedisPool::Validate(const RedisPoolOptions& options) {
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
  return absl::OkStatus();
}

RedisPool::RedisPool(const RedisPoolOptions& options, std::string name)
    : options_(options),
      name_(std::move(name)),
      last_error_(absl::UnavailableError(absl::StrCat(name_, ": not connected yet"))) {
  for (const std::string& script : options_.scripts) script_shas_.push_back(ScriptSha(script));
  // The watcher before the workers, which may read it (health()) as soon as they run.
  if (options_.sentinel) {
    watcher_ =
        std::make_unique<SentinelWatcher>(*options_.sentinel, options_.connect_timeout, [this] {
          topology_epoch_.fetch_add(1);
          absl::MutexLock lock(&mu_);
          work_cv_.SignalAll();
          backoff_cv_.SignalAll();
        });
  }
  for (int i = 0; i < options_.pool_size; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

RedisPool::~RedisPool() {
  std::vector<std::unique_ptr<Op>> left;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    work_cv_.SignalAll();
    backoff_cv_.SignalAll();
  }
  for (std::thread& worker : workers_) worker.join();
  watcher_.reset();  // after the workers; its calls only signal this pool
  {
    absl::MutexLock lock(&mu_);
    for (auto& op : queue_) left.push_back(std::move(op));
    queue_.clear();
  }
  Fail(std::move(left), absl::UnavailableError("redis store is shutting down"));
}

absl::Status RedisPool::Health() {
  absl::MutexLock lock(&mu_);
  if (connected_ > 0) return absl::OkStatus();
  return last_error_;
}

TransportCounters RedisPool::counters() const {
  TransportCounters counters;
  counters.connects = connects_.load(std::memory_order_relaxed);
  counters.errors = errors_.load(std::memory_order_relaxed);
  counters.unreplicated = unreplicated_.load(std::memory_order_relaxed);
  return counters;
}

std::optional<MasterHealth> RedisPool::health() const {
  std::optional<MasterHealth> health;
  {
    absl::MutexLock lock(&health_mu_);
    health = health_;
  }
  if (health && watcher_ != nullptr) {  // the sentinels as they are now
    health->sentinels = options_.sentinel->sentinels.size();
    health->sentinels_agreeing = watcher_->agreeing();
    health->master_changes = watcher_->master_changes();
  }
  return health;
}

absl::Status RedisPool::CheckHealth(RedisConnection& conn) {
  absl::StatusOr<ReplyPtr> reply = conn.Command({"INFO", "replication", "persistence", "stats",
                                                 "memory"});
  if (!reply.ok()) return reply.status();
  if ((*reply)->type != REDIS_REPLY_STRING) {
    return absl::OkStatus();  // an error reply (a server that refuses INFO): no view, no harm
  }
  const absl::string_view info((*reply)->str, (*reply)->len);
  MasterHealth health;
  health.replicas = InfoNumber(info, "connected_slaves");
  health.good_replicas = InfoField(info, "min_slaves_good_slaves").empty()
                             ? health.replicas
                             : InfoNumber(info, "min_slaves_good_slaves");
  health.evicted_keys = InfoNumber(info, "evicted_keys");
  health.aof_ok = InfoField(info, "aof_last_write_status") != "err" &&
                  InfoField(info, "aof_last_bgrewrite_status") != "err";
  health.used_memory = InfoNumber(info, "used_memory");
  health.maxmemory = InfoNumber(info, "maxmemory");
  absl::MutexLock lock(&health_mu_);
  health_ = health;
  return absl::OkStatus();
}

std::function<absl::StatusOr<Endpoint>()> RedisPool::SubscriberLocator() const {
  if (options_.sentinel) {
    return [sentinel = *options_.sentinel, timeout = options_.connect_timeout] {
      return ResolveMaster(sentinel, timeout);
    };
  }
  return [endpoint = options_.endpoint]() -> absl::StatusOr<Endpoint> { return endpoint; };
}

void RedisPool::Submit(RedisCommand command) {
  auto op = std::make_unique<Op>(std::move(command));
  op->deadline = std::min(op->deadline, absl::Now() + options_.timeout);
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

absl::StatusOr<std::unique_ptr<RedisConnection>> RedisPool::Open() {
  Endpoint endpoint = options_.endpoint;
  if (options_.sentinel) {
    // The master the watcher names; until its first check has answered, the sentinels'.
    std::optional<absl::StatusOr<Endpoint>> named = watcher_->master();
    absl::StatusOr<Endpoint> master =
        named.has_value() ? *std::move(named)
                          : ResolveMaster(*options_.sentinel, options_.connect_timeout);
    if (!master.ok()) return master.status();
    endpoint = *std::move(master);
  }
  absl::StatusOr<std::unique_ptr<RedisConnection>> conn = RedisConnection::Connect(
      endpoint, options_.connect_timeout, options_.timeout, options_.auth.get());
  if (!conn.ok()) return conn.status();
  if (options_.sentinel) {
    if (absl::Status s = CheckMaster(**conn); !s.ok()) return s;
  }
  // Load the scripts now, so that EVALSHA finds them (after a Redis restart or SCRIPT FLUSH).
  for (size_t i = 0; i < options_.scripts.size(); ++i) {
    absl::StatusOr<ReplyPtr> loaded = (*conn)->Command({"SCRIPT", "LOAD", options_.scripts[i]});
    if (!loaded.ok()) return loaded.status();
    if ((*loaded)->type != REDIS_REPLY_STRING ||
        absl::string_view((*loaded)->str, (*loaded)->len) != script_shas_[i]) {
      return absl::UnavailableError(
          absl::StrCat(name_, ": SCRIPT LOAD: ", DescribeReply(**loaded)));
    }
  }
  return conn;
}

absl::Status RedisPool::CheckMaster(RedisConnection& conn) {
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

void RedisPool::WorkerLoop() {
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
        next_health_check_ns_.store(0);  // a new server, perhaps: look at it first
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
    // One worker at a time looks at the server's health, busy or idle.
    const int64_t now_ns = absl::GetCurrentTimeNanos();
    int64_t due_ns = next_health_check_ns_.load(std::memory_order_relaxed);
    if (now_ns >= due_ns &&
        next_health_check_ns_.compare_exchange_strong(
            due_ns, now_ns + absl::ToInt64Nanoseconds(kHealthEvery))) {
      if (absl::Status s = CheckHealth(*conn); !s.ok()) {
        errors_.fetch_add(1, std::memory_order_relaxed);
        conn.reset();
        MarkDown(s);
        continue;
      }
    }
    std::vector<std::unique_ptr<Op>> batch = TakeBatch();
    {
      absl::MutexLock lock(&mu_);
      if (stopping_ && batch.empty()) break;
    }
    if (topology_epoch_.load() != conn_epoch && !batch.empty()) {
      // The master changed (or lost its majority) while this worker waited for work: what it
      // took goes back to the front of the queue, for a connection to the master a majority
      // names now (or fails, with why, if there is none), never to this server.
      {
        absl::MutexLock lock(&mu_);
        for (auto it = batch.rbegin(); it != batch.rend(); ++it) queue_.push_front(std::move(*it));
        work_cv_.Signal();
      }
      conn.reset();
      MarkDown(absl::UnavailableError(absl::StrCat(name_, ": failover: moving to the new master")));
      continue;
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

std::vector<std::unique_ptr<RedisPool::Op>> RedisPool::TakeBatch() {
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

bool RedisPool::MayHaveReplica() const {
  absl::MutexLock lock(&health_mu_);
  return !health_.has_value() || health_->replicas > 0;
}

absl::Status RedisPool::RunBatch(RedisConnection& conn, std::vector<std::unique_ptr<Op>> batch) {
  const absl::Time now = absl::Now();
  // A master with no replica at its last look has nothing to confirm a write and nothing a
  // failover could promote: its writes stand where they are, and no WAIT is sent.
  const bool may_have_replica = MayHaveReplica();
  std::vector<std::unique_ptr<Op>> live;
  std::vector<int64_t> wait_ms;  // of live's: how long its WAIT waits; 0: none sent
  live.reserve(batch.size());
  wait_ms.reserve(batch.size());
  for (auto& op : batch) {
    if (op->deadline <= now) {
      std::move(op->handler)(absl::DeadlineExceededError(
          absl::StrCat(name_, ": call timed out waiting for a connection")));
    } else {
      if (op->asking) conn.Append({"ASKING"});
      std::vector<absl::string_view> args(op->argv.begin(), op->argv.end());
      conn.Append(args);
      wait_ms.push_back(0);
      if (op->replicated && may_have_replica) {
        // Half of what the call has left: a replica that is not there (or still syncing)
        // costs the call that, and the WAIT's answer still comes within the read timeout.
        wait_ms.back() = std::max<int64_t>(1, absl::ToInt64Milliseconds(op->deadline - now) / 2);
        conn.Append({"WAIT", "1", absl::StrCat(wait_ms.back())});
      }
      live.push_back(std::move(op));
    }
  }
  absl::Status command_error;
  for (size_t i = 0; i < live.size(); ++i) {
    if (live[i]->asking) {
      absl::StatusOr<ReplyPtr> asked = conn.GetReply();  // +OK, or an error the command repeats
      if (!asked.ok()) {
        for (size_t j = i; j < live.size(); ++j) std::move(live[j]->handler)(asked.status());
        return asked.status();
      }
    }
    absl::StatusOr<ReplyPtr> reply = conn.GetReply();
    if (!reply.ok()) {
      for (size_t j = i; j < live.size(); ++j) std::move(live[j]->handler)(reply.status());
      return reply.status();
    }
    if (wait_ms[i] > 0) {
      absl::StatusOr<ReplyPtr> replicas = conn.GetReply();  // the WAIT's: how many confirmed
      if (!replicas.ok()) {
        for (size_t j = i; j < live.size(); ++j) std::move(live[j]->handler)(replicas.status());
        return replicas.status();
      }
      if ((*reply)->type != REDIS_REPLY_ERROR &&
          ((*replicas)->type != REDIS_REPLY_INTEGER || (*replicas)->integer < 1)) {
        // Done on the master alone, where the failover that follows its loss would undo it:
        // the caller learns it did not stand, and sends it again (a node does, with a
        // deletion, until one stands; a consuming lookup that fails is a miss, so the session
        // is used at most once whatever a failover undoes).
        unreplicated_.fetch_add(1, std::memory_order_relaxed);
        std::move(live[i]->handler)(absl::UnavailableError(absl::StrCat(
            name_, ": no replica confirmed the write within ", wait_ms[i],
            " ms (WAIT 1); a failover now could undo it, so it is not acknowledged")));
        continue;
      }
    }
    if ((*reply)->type != REDIS_REPLY_ERROR) {
      std::move(live[i]->handler)(std::move(reply));
      continue;
    }
    const absl::string_view error((*reply)->str, (*reply)->len);
    absl::Status failed = absl::UnavailableError(absl::StrCat(name_, ": ", DescribeReply(**reply)));
    if (IsClusterReply(error)) {
      failed.SetPayload(kRedisErrorPayload, absl::Cord(error));
    } else {
      command_error = failed;
    }
    std::move(live[i]->handler)(std::move(failed));
  }
  return command_error;
}

void RedisPool::MarkUp() {
  absl::MutexLock lock(&mu_);
  if (connected_++ == 0) LogInfo("%s: connected", name_);
}

void RedisPool::MarkDown(const absl::Status& why) {
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

void RedisPool::Fail(std::vector<std::unique_ptr<Op>> ops, const absl::Status& status) {
  for (auto& op : ops) std::move(op->handler)(status);
}

}  // namespace tlscache::server::redis
