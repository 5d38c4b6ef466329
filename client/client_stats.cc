#include "client/client_stats.h"

#include <algorithm>

#include "client/node_cache.h"

namespace tlscache::client {
namespace {

// Open is worse than half-open (probing), which is worse than closed.
int Severity(BreakerState state) {
  switch (state) {
    case BreakerState::kClosed:
      return 0;
    case BreakerState::kHalfOpen:
      return 1;
    case BreakerState::kOpen:
      return 2;
  }
  return 0;
}

}  // namespace

ClientStats& ClientStats::operator+=(const ClientStats& o) {
  hits += o.hits;
  misses += o.misses;
  errors += o.errors;
  timeouts += o.timeouts;
  busy_timeouts += o.busy_timeouts;
  skipped += o.skipped;
  stores += o.stores;
  store_failures += o.store_failures;
  queue_drops += o.queue_drops;
  ack_timeouts += o.ack_timeouts;
  if (Severity(o.breaker) > Severity(breaker)) breaker = o.breaker;
  near_hits += o.near_hits;
  near_entries += o.near_entries;
  near_bytes += o.near_bytes;
  near_evictions += o.near_evictions;
  near_repairs += o.near_repairs;
  leading += o.leading;
  pushed += o.pushed;
  gaps += o.gaps;
  withdrawn += o.withdrawn;
  streams += o.streams;
  streams_up += o.streams_up;
  resent += o.resent;
  batches += o.batches;
  // One figure for the whole: the slowest's.
  push_lag_p50 = std::max(push_lag_p50, o.push_lag_p50);
  push_lag_p99 = std::max(push_lag_p99, o.push_lag_p99);
  return *this;
}

ClientStats& ClientStats::operator+=(const FollowerStats& f) {
  leading += f.leading ? 1 : 0;
  pushed += f.received;
  gaps += f.gaps;
  withdrawn += f.withdrawn;
  streams += f.streams;
  streams_up += f.up ? 1 : 0;
  resent += f.resent;
  batches += f.batches;
  stores += f.stored;
  store_failures += f.store_failures;
  push_lag_p50 = std::max(push_lag_p50, f.lag_p50);
  push_lag_p99 = std::max(push_lag_p99, f.lag_p99);
  return *this;
}

ClientStats& ClientStats::operator+=(const NearCacheStats& near) {
  near_entries += near.entries;
  near_bytes += near.bytes;
  near_evictions += near.evictions;
  near_repairs += near.repairs;
  return *this;
}

ClientStats ClientCounters::Read() const {
  ClientStats stats;
  stats.hits = hits.load(std::memory_order_relaxed);
  stats.misses = misses.load(std::memory_order_relaxed);
  stats.errors = errors.load(std::memory_order_relaxed);
  stats.timeouts = timeouts.load(std::memory_order_relaxed);
  stats.busy_timeouts = busy_timeouts.load(std::memory_order_relaxed);
  stats.skipped = skipped.load(std::memory_order_relaxed);
  stats.stores = stores.load(std::memory_order_relaxed);
  stats.store_failures = store_failures.load(std::memory_order_relaxed);
  stats.queue_drops = queue_drops.load(std::memory_order_relaxed);
  stats.ack_timeouts = ack_timeouts.load(std::memory_order_relaxed);
  stats.near_hits = near_hits.load(std::memory_order_relaxed);
  return stats;
}

}  // namespace tlscache::client
