// Metrics of the service as clients see it, kept by a gRPC server interceptor (so every
// service, health included, is counted the same way); the store's own are kept by
// server/store/instrumented_store.h.
//
//   tlscache_requests_total{method,code}          calls finished, by gRPC status code
//   tlscache_request_duration_seconds{method}     from arrival to the status being sent
//   tlscache_cache_hits_total, _misses_total      Get answered with a session / NOT_FOUND
#ifndef TLSCACHE_SERVER_OBSERVABILITY_RPC_METRICS_H_
#define TLSCACHE_SERVER_OBSERVABILITY_RPC_METRICS_H_

#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <string>

#include "server/observability/metrics.h"

namespace tlscache::server {

struct RpcMetrics {
  explicit RpcMetrics(Metrics& metrics);

  Metrics::CounterFamily* requests;
  Metrics::HistogramFamily* request_duration;
  Metrics::CounterFamily* hits;
  Metrics::CounterFamily* misses;
};

// For grpc::ServerBuilder::experimental().SetInterceptorCreators; `metrics` outlives it.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> RpcMetricsInterceptors(
    RpcMetrics* metrics);

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_OBSERVABILITY_RPC_METRICS_H_
