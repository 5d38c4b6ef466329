#include "server/store/redis/redis_cluster.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/secret_bytes.h"

namespace tlscache::server::redis {

RedisCluster::RedisCluster(const RedisClusterOptions& options, std::string name)
    : options_(options),
      name_(std::move(name)),
      map_error_(absl::UnavailableError(absl::StrCat(name_, ": no slot map yet"))) {
  slots_.fill(kNoMaster);
  refresher_ = std::thread([this] { RefreshLoop(); });
}

RedisCluster::~RedisCluster() {
  std::vector<std::shared_ptr<RedisPool>> pools;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    refresh_cv_.SignalAll();
  }
  refresher_.join();
  {
    absl::MutexLock lock(&mu_);
    for (auto& [_, pool] : pools_) pools.push_back(std::move(pool));
    pools_.clear();
    for (auto& pool : retired_) pools.push_back(std::move(pool));
    retired_.clear();
  }
  // Outside the lock: their workers finish what they hold, and a handler that would redirect
  // finds the cluster stopping.
  pools.clear();
}

std::function<absl::StatusOr<Endpoint>()> RedisCluster::SubscriberLocator() const {
  // Any node answers with MOVED to the one that owns the channel's slot: start from the
  // seeds, one after another.
  auto next = std::make_shared<std::atomic<size_t>>(0);
  return [seeds = options_.seeds, next]() -> absl::StatusOr<Endpoint> {
    return seeds[next->fetch_add(1) % seeds.size()];
  };
}

void RedisCluster::Submit(absl::string_view key, RedisCommand command) {
  Dispatch(KeySlot(key), std::make_shared<Command>(std::move(command)), kMaxRedirects,
           std::nullopt);
}

void RedisCluster::Dispatch(int slot, std::shared_ptr<Command> command, int redirects_left,
                            std::optional<Endpoint> ask) {
  std::shared_ptr<RedisPool> pool;
  absl::Status unavailable;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      unavailable = absl::UnavailableError("redis store is shutting down");
    } else if (ask) {
      pool = PoolLocked(*ask);
    } else if (slots_[slot] == kNoMaster) {
      unavailable = absl::UnavailableError(absl::StrCat(
          name_, ": slot ", slot, " has no known master (", map_error_.message(), ")"));
    } else {
      pool = PoolLocked(masters_[slots_[slot]]);
    }
  }
  if (pool == nullptr) {
    RequestRefresh();
    return std::move(command->handler)(std::move(unavailable));
  }
  // The pool gets a copy: the command itself stays here, for a redirection.
  RedisCommand sent(
      command->argv, command->deadline,
      [this, slot, command, redirects_left](absl::StatusOr<ReplyPtr> reply) mutable {
        if (reply.ok()) return std::move(command->handler)(std::move(reply));
        const absl::optional<absl::Cord> error = reply.status().GetPayload(kRedisErrorPayload);
        const std::optional<Redirect> redirect =
            error ? ParseRedirect(std::string(*error)) : std::nullopt;
        if (!redirect) {
          // The master is down or the cluster is reconfiguring (TRYAGAIN, CLUSTERDOWN): fail
          // fast, and look at the map again, in case a replica took over.
          RequestRefresh();
          return std::move(command->handler)(reply.status());
        }
        if (redirects_left == 0) {
          return std::move(command->handler)(absl::UnavailableError(absl::StrCat(
              name_, ": slot ", slot, " is still moving after ", kMaxRedirects, " redirections")));
        }
        redirects_.fetch_add(1, std::memory_order_relaxed);
        if (!redirect->ask) {
          {
            absl::MutexLock lock(&mu_);
            if (!stopping_) slots_[redirect->slot] = MasterIndexLocked(redirect->to);
          }
          RequestRefresh();
        }
        Dispatch(slot, std::move(command), redirects_left - 1,
                 redirect->ask ? std::optional<Endpoint>(redirect->to) : std::nullopt);
      },
      command->replicated);
  sent.asking = ask.has_value();
  pool->Submit(std::move(sent));
}

std::shared_ptr<RedisPool> RedisCluster::PoolLocked(const Endpoint& endpoint) {
  std::shared_ptr<RedisPool>& pool = pools_[endpoint.ToString()];
  if (pool == nullptr) {
    RedisPoolOptions node = options_.node;
    node.endpoint = endpoint;
    node.sentinel.reset();
    pool = std::make_shared<RedisPool>(node, absl::StrCat(name_, " node ", endpoint.ToString()));
  }
  return pool;
}

uint16_t RedisCluster::MasterIndexLocked(const Endpoint& endpoint) {
  for (size_t i = 0; i < masters_.size(); ++i) {
    if (masters_[i].SameServer(endpoint)) {
      return static_cast<uint16_t>(i);
    }
  }
  masters_.push_back(endpoint);
  return static_cast<uint16_t>(masters_.size() - 1);
}

void RedisCluster::RequestRefresh() {
  absl::MutexLock lock(&mu_);
  if (!refresh_requested_) {
    refresh_requested_ = true;
    refresh_cv_.Signal();
  }
}

void RedisCluster::RefreshLoop() {
  absl::Time last = absl::InfinitePast();
  LogLimiter limiter(absl::Minutes(1));
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      while (!stopping_) {
        const absl::Time due =
            refresh_requested_ ? last + options_.min_refresh_gap : last + options_.refresh_interval;
        if (absl::Now() >= due) break;
        refresh_cv_.WaitWithDeadline(&mu_, due);
      }
      if (stopping_) return;
      refresh_requested_ = false;
    }
    last = absl::Now();
    const absl::Status refreshed = Refresh();
    std::vector<std::shared_ptr<RedisPool>> unused;
    {
      absl::MutexLock lock(&mu_);
      if (!refreshed.ok()) {
        map_error_ = refreshed;
        refresh_requested_ = true;  // again soon, not at the next interval
      }
      for (auto it = retired_.begin(); it != retired_.end();) {
        if (it->use_count() == 1) {  // out of the map: nothing can take a new reference
          retired_counters_ += (*it)->counters();
          unused.push_back(std::move(*it));
          it = retired_.erase(it);
        } else {
          ++it;
        }
      }
    }
    unused.clear();  // joins their workers, outside the lock
    if (!refreshed.ok() && limiter.Allow()) {
      LogWarning("%s: cannot read the slot map: %s", name_, refreshed.message());
    }
  }
}

absl::Status RedisCluster::Refresh() {
  std::vector<Endpoint> candidates;
  {
    absl::MutexLock lock(&mu_);
    candidates = masters_;
  }
  for (const Endpoint& seed : options_.seeds) {
    const bool known = std::any_of(candidates.begin(), candidates.end(), [&](const Endpoint& c) {
      return c.SameServer(seed);
    });
    if (!known) candidates.push_back(seed);
  }
  absl::Status last_error = absl::UnavailableError("no node to ask");
  // Right after a failover, nodes that have not heard of it yet still name the dead master: a
  // map naming a node that does not answer is taken only if no node offers a better one.
  std::optional<std::vector<SlotRange>> fallback;
  for (const Endpoint& node : candidates) {
    absl::StatusOr<std::unique_ptr<RedisConnection>> conn = RedisConnection::Connect(
        node, options_.node.connect_timeout, options_.node.timeout, options_.node.auth.get());
    {
      absl::MutexLock lock(&mu_);
      if (conn.ok()) {
        unreachable_.erase(node.ToString());
      } else {
        unreachable_.insert(node.ToString());
      }
    }
    if (!conn.ok()) {
      last_error = conn.status();
      continue;
    }
    absl::StatusOr<ReplyPtr> reply = (*conn)->Command({"CLUSTER", "SLOTS"});
    if (!reply.ok()) {
      last_error = reply.status();
      continue;
    }
    absl::StatusOr<std::vector<SlotRange>> ranges = ParseClusterSlots(**reply, node.host);
    if (!ranges.ok() || ranges->empty()) {
      last_error = ranges.ok()
                       ? absl::UnavailableError(absl::StrCat(node.ToString(), " serves no slots"))
                       : ranges.status();
      continue;
    }
    absl::MutexLock lock(&mu_);
    const bool names_unreachable =
        std::any_of(ranges->begin(), ranges->end(), [this](const SlotRange& range) {
          mu_.AssertHeld();
          return unreachable_.count(range.master.ToString()) > 0;
        });
    if (!names_unreachable) {
      InstallLocked(*ranges);
      return absl::OkStatus();
    }
    if (!fallback) fallback = *std::move(ranges);
  }
  if (fallback) {
    absl::MutexLock lock(&mu_);
    InstallLocked(*fallback);
    return absl::OkStatus();
  }
  return absl::UnavailableError(
      absl::StrCat(name_, ": no node answered CLUSTER SLOTS: ", last_error.message()));
}

void RedisCluster::InstallLocked(const std::vector<SlotRange>& ranges) {
  masters_.clear();
  slots_.fill(kNoMaster);
  int covered = 0;
  for (const SlotRange& range : ranges) {
    const uint16_t index = MasterIndexLocked(range.master);
    for (int slot = range.first; slot <= range.last; ++slot) {
      covered += slots_[slot] == kNoMaster ? 1 : 0;
      slots_[slot] = index;
    }
  }
  for (const Endpoint& master : masters_) PoolLocked(master);
  for (auto it = pools_.begin(); it != pools_.end();) {
    const bool master = std::any_of(masters_.begin(), masters_.end(),
                                    [&](const Endpoint& m) { return m.ToString() == it->first; });
    if (master) {
      ++it;
    } else {
      retired_.push_back(std::move(it->second));
      it = pools_.erase(it);
    }
  }
  map_error_ = covered == kClusterSlots
                   ? absl::OkStatus()
                   : absl::UnavailableError(absl::StrCat(name_, ": ", kClusterSlots - covered,
                                                         " slots have no master"));
}

absl::Status RedisCluster::Health() {
  absl::MutexLock lock(&mu_);
  if (!map_error_.ok()) return map_error_;
  for (const Endpoint& master : masters_) {
    auto it = pools_.find(master.ToString());
    if (it == pools_.end()) continue;
    if (absl::Status s = it->second->Health(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

TransportCounters RedisCluster::counters() const {
  absl::MutexLock lock(&mu_);
  TransportCounters total = retired_counters_;
  for (const auto& [_, pool] : pools_) total += pool->counters();
  for (const auto& pool : retired_) total += pool->counters();
  total.redirects = redirects_.load(std::memory_order_relaxed);
  return total;
}

}  // namespace tlscache::server::redis
