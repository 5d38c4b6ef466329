// The tls load of tlscache-bench: TLS handshakes against one server (or a balancer in front
// of a farm, or several servers in turn), `concurrency` clients each connecting again as soon
// as its last connection ends.
//
// Each connection does a handshake, sends one HTTP/1.0 request and reads the reply to its end
// (so that TLS 1.3 tickets, which come after the handshake, are received), as a browser
// fetching a page would. With resume, a client offers the newest session it holds, as
// browsers do; a failed connection drops it. The latency measured is from connect() to the
// end of the handshake.
#ifndef TLSCACHE_BENCH_TLS_LOAD_H_
#define TLSCACHE_BENCH_TLS_LOAD_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/latency_histogram.h"

namespace tlscache::bench {

struct TlsLoadOptions {
  std::string host;
  int port = 0;
  // More servers: each client's connections go to host, then these, in turn (a farm
  // without a balancer: every resumption is of a session another node made).
  std::vector<std::pair<std::string, int>> more_targets;
  int concurrency = 16;
  absl::Duration duration = absl::Seconds(10);
  // Bound on each connect, handshake, write and read.
  absl::Duration timeout = absl::Seconds(5);
  int tls_version = 0;  // TLS1_2_VERSION or TLS1_3_VERSION
  bool resume = true;   // offer the newest session
  // How long a client waits after a connection before its next one.
  absl::Duration pause = absl::ZeroDuration();
  // Which session each target is offered (several targets): targets with the same number
  // share one, the newest any of them made; each other number is a session of its own. Empty:
  // one for all. With targets A, C, B, D and chains 0, 1, 0, 2, every resumption on A or B
  // is of a session the other made and every one on C or D of its own, and each process
  // waits the same three connections between its turns, so the two are measured side by side.
  std::vector<int> chains;
  std::string server_name;  // SNI; empty: none
  bool progress = true;
};

struct TlsLoadResult {
  // Adds another client's share of the same load (all but elapsed).
  void Merge(const TlsLoadResult& other);

  uint64_t handshakes = 0;  // completed
  uint64_t offered = 0;     // of those, how many offered a session
  uint64_t resumed = 0;
  uint64_t failures = 0;    // connections that did not complete a handshake and its request
  absl::Duration elapsed;
  LatencyHistogram latency;  // every completed handshake
  LatencyHistogram resumed_latency;
  LatencyHistogram full_latency;
  // Resumed handshakes by where the offered session was made: by the same target, or by
  // another one (several targets only).
  uint64_t resumed_here = 0;
  uint64_t resumed_elsewhere = 0;
  LatencyHistogram resumed_here_latency;
  LatencyHistogram resumed_elsewhere_latency;
  std::string first_error;
};

// Errors: the options are out of range or the host does not resolve. Failed connections are
// counted, not returned.
absl::StatusOr<TlsLoadResult> RunTlsLoad(const TlsLoadOptions& options);

}  // namespace tlscache::bench

#endif  // TLSCACHE_BENCH_TLS_LOAD_H_
