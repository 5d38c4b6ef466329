// The client's counters as values: what one Follow stream counted (FollowerStats), and what a
// CacheClient counted in this process (ClientStats), each added up with `+=` wherever they
// are rolled up (a client's followers, a plugin's clients), so that a new counter is summed
// everywhere or nowhere. The live counters behind them are ClientCounters: atomics that
// handshake threads bump.
//
// Thread-safety: the structs are values; ClientCounters is thread-safe.
#ifndef TLSCACHE_CLIENT_CLIENT_STATS_H_
#define TLSCACHE_CLIENT_CLIENT_STATS_H_

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"
#include "client/circuit_breaker.h"

namespace tlscache::client {

struct NearCacheStats;

// One namespace's Follow stream (client/session_follower.h).
struct FollowerStats {
  bool up = false;
  bool leading = false;    // this process follows the namespace for its node
  bool vouching = true;    // the near cache answers (no gap unchecked)
  uint64_t streams = 0;    // streams that came up (the first included)
  uint64_t received = 0;   // changes the service pushed
  uint64_t gaps = 0;       // gaps seen (each followed by a check)
  uint64_t withdrawn = 0;  // copies a check found dead
  uint64_t resent = 0;     // stores handed back to the unary path when a stream ended
  uint64_t batches = 0;    // requests written up the stream (heartbeats included)
  uint64_t stored = 0;     // Puts and Deletes acknowledged
  uint64_t store_failures = 0;
  absl::Duration lag_p50, lag_p99;
  uint64_t lag_count = 0;
};

struct ClientStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t errors = 0;    // Get failed for another reason than a miss or a timeout
  uint64_t timeouts = 0;  // Get ran out of its deadline
  // Of the timeouts and late acknowledgements, those this node's own saturated CPU caused:
  // not counted against the cache (the breaker stays as it was).
  uint64_t busy_timeouts = 0;
  uint64_t skipped = 0;  // Get not sent: breaker open
  uint64_t stores = 0;   // Put and Delete sent and answered OK (unary or up a stream)
  uint64_t store_failures = 0;
  uint64_t queue_drops = 0;
  uint64_t ack_timeouts = 0;  // awaited Puts not acknowledged in time (or failed)
  // The worst of the breakers added up.
  BreakerState breaker = BreakerState::kClosed;
  uint64_t near_hits = 0;  // Gets answered by the near cache (not counted in hits)
  // The node's near cache (shared by its processes: each reports the same)
  uint64_t near_entries = 0;
  uint64_t near_bytes = 0;
  uint64_t near_evictions = 0;
  uint64_t near_repairs = 0;  // shards emptied after a process died holding their lock
  // The Follow streams of this process, every namespace added up.
  uint64_t leading = 0;     // namespaces this process follows for its node
  uint64_t pushed = 0;      // changes received
  uint64_t gaps = 0;        // changes lost on the way (each followed by a check of the copies)
  uint64_t withdrawn = 0;   // copies a check found dead
  uint64_t streams = 0;     // Follow streams that came up, reconnects included
  uint64_t streams_up = 0;  // up now
  uint64_t resent = 0;      // stores handed back to unary calls when a stream ended
  uint64_t batches = 0;     // requests written up the Follow streams
  absl::Duration push_lag_p50, push_lag_p99;  // the slowest namespace's

  ClientStats& operator+=(const ClientStats& other);
  // A stream's counters: its stores count as the client's.
  ClientStats& operator+=(const FollowerStats& follower);
  ClientStats& operator+=(const NearCacheStats& near);
};

// The counters a CacheClient bumps on the handshake path and in its background sender.
struct ClientCounters {
  std::atomic<uint64_t> hits{0}, misses{0}, errors{0}, timeouts{0}, busy_timeouts{0},
      skipped{0}, stores{0}, store_failures{0}, queue_drops{0}, ack_timeouts{0}, near_hits{0};

  // Their values now, in ClientStats' fields.
  ClientStats Read() const;
};

}  // namespace tlscache::client

#endif  // TLSCACHE_CLIENT_CLIENT_STATS_H_
