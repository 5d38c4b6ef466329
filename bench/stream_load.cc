#include "bench/stream_load.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/cache_client.h"
#include "bench/report.h"

namespace tlscache::bench {
namespace {

constexpr int kMaxConcurrency = 1024;
constexpr int kMaxFollowers = 256;

absl::StatusOr<std::shared_ptr<client::CacheClient>> Follower(const StreamLoadOptions& o,
                                                              absl::Duration timeout) {
  client::ClientOptions options;
  options.addr = o.addr;
  options.lookup_timeout = timeout;
  options.near_cache_bytes = o.near_cache_bytes;
  absl::StatusOr<std::shared_ptr<client::CacheClient>> made = client::CacheClient::Create(options);
  if (made.ok()) (*made)->Prepare(o.ns, /*follow_tickets=*/false);
  return made;
}

bool AllUp(const std::vector<std::shared_ptr<client::CacheClient>>& clients) {
  for (const auto& c : clients) {
    if (c->stats().streams_up == 0) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<StreamLoadResult> RunStreamLoad(const StreamLoadOptions& o) {
  if (absl::Status s = CheckWithin("concurrency", o.concurrency, 1, kMaxConcurrency); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckWithin("followers", o.followers, 0, kMaxFollowers); !s.ok()) {
    return s;
  }
  if (o.value_size < 1 || o.rate < 0 || o.duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("value size, rate and duration must be positive");
  }
  absl::StatusOr<std::shared_ptr<client::CacheClient>> writer = Follower(o, o.timeout);
  if (!writer.ok()) return writer.status();
  std::vector<std::shared_ptr<client::CacheClient>> clients = {*writer};
  for (int i = 0; i < o.followers; ++i) {
    absl::StatusOr<std::shared_ptr<client::CacheClient>> follower = Follower(o, o.timeout);
    if (!follower.ok()) return follower.status();
    clients.push_back(*std::move(follower));
  }
  const absl::Time up_by = absl::Now() + absl::Seconds(10);
  while (!AllUp(clients)) {
    if (absl::Now() > up_by) {
      return absl::UnavailableError(absl::StrCat(o.addr, ": not every Follow stream came up"));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }

  std::vector<StreamLoadResult> shares(o.concurrency);
  const absl::Time start = absl::Now();
  const absl::Time end = start + o.duration;
  {
    std::atomic<uint64_t> acknowledged{0};
    std::optional<Progress> progress;  // reads `acknowledged` until destroyed
    if (o.progress) {
      progress.emplace([&](absl::Duration elapsed) {
        return absl::StrFormat("stream %s: %3.0fs  %d acknowledged", o.addr,
                               absl::ToDoubleSeconds(elapsed), acknowledged.load());
      });
    }
    std::vector<std::thread> threads;
    for (int t = 0; t < o.concurrency; ++t) {
      threads.emplace_back([&, t] {
        StreamLoadResult& share = shares[t];
        const std::string value(o.value_size, static_cast<char>('a' + t % 26));
        // With a rate, each writer takes every concurrency-th slot of the schedule.
        const absl::Duration every =
            o.rate > 0 ? absl::Seconds(o.concurrency / o.rate) : absl::ZeroDuration();
        absl::Time due = start + every * t / o.concurrency;
        for (uint64_t i = 0;; ++i) {
          if (every > absl::ZeroDuration()) {
            if (due >= end) break;
            absl::SleepFor(due - absl::Now());
            due += every;
          } else if (absl::Now() >= end) {
            break;
          }
          const std::string id = absl::StrCat("w", t, "-", i);
          const absl::Time sent = absl::Now();
          const bool ok = (*writer)->Put(o.ns, id, SecretBytes(value), 300, /*await_ack=*/true);
          share.put_latency.Record(absl::Now() - sent);
          ++share.puts;
          if (ok) {
            ++share.acknowledged;
            acknowledged.fetch_add(1, std::memory_order_relaxed);
          }
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
  }
  StreamLoadResult total;
  total.elapsed = absl::Now() - start;
  for (const StreamLoadResult& share : shares) {
    total.puts += share.puts;
    total.acknowledged += share.acknowledged;
    total.put_latency.Merge(share.put_latency);
  }
  // Every follower should now receive every acknowledged store: wait for that, boundedly.
  const absl::Time settle_by = absl::Now() + absl::Seconds(5);
  while (true) {
    total.complete = true;
    for (size_t i = 1; i < clients.size(); ++i) {
      if (clients[i]->stats().pushed < total.acknowledged) total.complete = false;
    }
    if (total.complete || absl::Now() > settle_by) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  for (size_t i = 1; i < clients.size(); ++i) {
    const client::ClientStats stats = clients[i]->stats();
    total.received += stats.pushed;
    total.gaps += stats.gaps;
    total.lag_p50 = std::max(total.lag_p50, stats.push_lag_p50);
    total.lag_p99 = std::max(total.lag_p99, stats.push_lag_p99);
    if (i == 1) {
      total.near_entries = stats.near_entries;
      total.near_bytes = stats.near_bytes;
    }
  }
  return total;
}

}  // namespace tlscache::bench
