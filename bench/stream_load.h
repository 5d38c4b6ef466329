// The stream load of tlscache-bench: stores as the OpenSSL plugin sends them, up its Follow
// stream (client/session_follower.h), with `followers` more processes' worth of clients
// following the namespace and receiving every store.
//
// `concurrency` writers each store a session and await its acknowledgement, as a TLS server
// thread does in a handshake that made a stateful session, then store the next (or, with a
// rate, the next when it is due). The writers share one client, so one stream: what they
// store at once leaves coalesced. Each follower is a client of its own (its own channel and
// stream, as a TLS server process has); at the end the load waits, boundedly, until every
// follower received every acknowledged store, and reports how long stores took to arrive
// (push lag, as the followers measure it) and what their near caches hold.
#ifndef TLSCACHE_BENCH_STREAM_LOAD_H_
#define TLSCACHE_BENCH_STREAM_LOAD_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/latency_histogram.h"

namespace tlscache::bench {

struct StreamLoadOptions {
  std::string addr;
  std::string ns = "bench";
  int concurrency = 16;
  int followers = 0;
  absl::Duration duration = absl::Seconds(10);
  absl::Duration timeout = absl::Seconds(1);  // the most a writer waits for an acknowledgement
  size_t value_size = 256;
  double rate = 0;  // stores per second in all; 0: each writer as fast as acknowledged
  size_t near_cache_bytes = size_t{16} << 20;  // of each follower
  bool progress = true;
};

struct StreamLoadResult {
  uint64_t puts = 0;
  uint64_t acknowledged = 0;
  absl::Duration elapsed;
  LatencyHistogram put_latency;  // from the store to its acknowledgement
  // Over the followers.
  uint64_t received = 0;      // stores pushed to them, all added up
  uint64_t gaps = 0;          // changes lost on their way to them (each followed by a check)
  bool complete = false;      // every follower received every acknowledged store
  absl::Duration lag_p50, lag_p99;  // the largest of the followers'
  uint64_t near_entries = 0;  // of one follower
  uint64_t near_bytes = 0;
};

absl::StatusOr<StreamLoadResult> RunStreamLoad(const StreamLoadOptions& options);

}  // namespace tlscache::bench

#endif  // TLSCACHE_BENCH_STREAM_LOAD_H_
