#include "server/observability/rpc_metrics.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"

namespace tlscache::server {
namespace {

constexpr absl::string_view kGetMethod = "/tlscache.v1.SessionCache/Get";

std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

class RpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(RpcMetrics* metrics, std::string method)
      : metrics_(metrics), method_(std::move(method)), start_(absl::Now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::StatusCode code = methods->GetSendStatus().error_code();
      metrics_->requests->Increment({method_, CodeName(code)});
      metrics_->request_duration->Observe({method_}, absl::Now() - start_);
      if (method_ == kGetMethod) {
        if (code == grpc::StatusCode::OK) metrics_->hits->Increment({});
        if (code == grpc::StatusCode::NOT_FOUND) metrics_->misses->Increment({});
      }
    }
    methods->Proceed();
  }

 private:
  RpcMetrics* const metrics_;
  const std::string method_;
  const absl::Time start_;
};

class RpcMetricsFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsFactory(RpcMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcMetricsInterceptor(metrics_, info->method());
  }

 private:
  RpcMetrics* const metrics_;
};

}  // namespace

RpcMetrics::RpcMetrics(Metrics& metrics)
    : requests(metrics.AddCounter("tlscache_requests_total",
                                  "gRPC calls finished, by method and status code",
                                  {"method", "code"})),
      request_duration(metrics.AddHistogram("tlscache_request_duration_seconds",
                                            "gRPC call latency, arrival to status", {"method"})),
      hits(
          metrics.AddCounter("tlscache_cache_hits_total", "Get calls answered with a session", {})),
      misses(
          metrics.AddCounter("tlscache_cache_misses_total", "Get calls answered NOT_FOUND", {})) {}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> RpcMetricsInterceptors(
    RpcMetrics* metrics) {
  return std::make_unique<RpcMetricsFactory>(metrics);
}

}  // namespace tlscache::server
