// Metrics of the service as clients see it, kept by a gRPC server interceptor (so every
// service, health included, is counted the same way) and by a Store decorator:
//
//   tlscache_requests_total{method,code}          calls finished, by gRPC status code
//   tlscache_request_duration_seconds{method}     from arrival to the status being sent
//   tlscache_cache_hits_total, _misses_total      Get answered with a session / NOT_FOUND
//   tlscache_store_duration_seconds{op}           store operations, until their answer
//   tlscache_store_errors_total{op}               store operations that failed (not a miss)
#ifndef TLSCACHE_SERVER_RPC_METRICS_H_
#define TLSCACHE_SERVER_RPC_METRICS_H_

#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <string>

#include "server/metrics.h"
#include "server/store.h"

namespace tlscache::server {

struct RpcMetrics {
  explicit RpcMetrics(Metrics& metrics);

  Metrics::CounterFamily* requests;
  Metrics::HistogramFamily* request_duration;
  Metrics::CounterFamily* hits;
  Metrics::CounterFamily* misses;
  Metrics::HistogramFamily* store_duration;
  Metrics::CounterFamily* store_errors;
};

// For grpc::ServerBuilder::experimental().SetInterceptorCreators; `metrics` outlives it.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> RpcMetricsInterceptors(
    RpcMetrics* metrics);

// A Store that times every operation of `inner` into `metrics`.
std::unique_ptr<Store> InstrumentStore(std::unique_ptr<Store> inner, RpcMetrics* metrics);

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_RPC_METRICS_H_
