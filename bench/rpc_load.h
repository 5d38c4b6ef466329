// The rpc load of tlscache-bench: SessionCache calls against one cache service, `concurrency`
// of them always in flight, as the OpenSSL plugins of a farm would send them.
//
// When the mix has Gets, every key is first Put once (not measured), so that a Get is a hit
// unless the service lost the entry. A hit is checked: the value must be the one that key was
// stored with; another one counts as wrong data.
#ifndef TLSCACHE_BENCH_RPC_LOAD_H_
#define TLSCACHE_BENCH_RPC_LOAD_H_

#include <grpcpp/security/credentials.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/latency_histogram.h"

namespace tlscache::bench {

struct RpcLoadOptions {
  std::string addr;
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  std::string ns = "bench";
  int concurrency = 16;
  // HTTP/2 connections the calls are spread over.
  int connections = 1;
  absl::Duration duration = absl::Seconds(10);
  absl::Duration timeout = absl::Seconds(1);
  size_t value_size = 256;
  // The odds of a Get and of a Put.
  int get_weight = 9;
  int put_weight = 1;
  int keys = 10000;
  // Calls per second in all (0: as fast as replies come). Paced calls are sent on a fixed
  // schedule, and a call's latency counts from when it was due, so that a stalled service
  // shows in the percentiles instead of merely slowing the load (no coordinated omission).
  double rate = 0;
  // A line on stderr every second.
  bool progress = true;
};

struct RpcLoadResult {
  uint64_t calls() const { return gets + puts; }
  // Adds another share of the same load (all but elapsed, prefilled and late).
  void Merge(const RpcLoadResult& other);

  uint64_t prefilled = 0;
  uint64_t gets = 0;
  uint64_t puts = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t errors = 0;  // calls that failed, whatever the code (misses are not errors)
  uint64_t wrong = 0;   // hits that returned another key's value
  uint64_t late = 0;    // paced calls sent after their time because every slot was busy
  absl::Duration elapsed;
  LatencyHistogram latency;  // every call, Gets and Puts
  LatencyHistogram get_latency;
  LatencyHistogram put_latency;
  std::map<std::string, uint64_t> errors_by_code;
  std::string first_error;
};

// Errors: the options are out of range, the service cannot be reached within 5 s, or the
// prefill failed. Failed calls during the measured run are counted, not returned.
absl::StatusOr<RpcLoadResult> RunRpcLoad(const RpcLoadOptions& options);

}  // namespace tlscache::bench

#endif  // TLSCACHE_BENCH_RPC_LOAD_H_
