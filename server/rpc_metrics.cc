#include "server/rpc_metrics.h"

#include <utility>

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

class InstrumentedStore final : public Store {
 public:
  InstrumentedStore(std::unique_ptr<Store> inner, RpcMetrics* metrics)
      : inner_(std::move(inner)), metrics_(metrics) {}

  void Put(const StoreKey& key, absl::string_view session, absl::Duration ttl, absl::Time deadline,
           PutDone done) override {
    inner_->Put(key, session, ttl, deadline,
                [this, start = absl::Now(), done = std::move(done)](absl::Status s) mutable {
                  Record("put", start, s);
                  std::move(done)(std::move(s));
                });
  }
  void Get(const StoreKey& key, bool consume, absl::Time deadline, GetDone done) override {
    inner_->Get(key, consume, deadline,
                [this, start = absl::Now(),
                 done = std::move(done)](absl::StatusOr<StoreEntry> entry) mutable {
                  Record("get", start, entry.status());
                  std::move(done)(std::move(entry));
                });
  }
  void Delete(const StoreKey& key, absl::Time deadline, DeleteDone done) override {
    inner_->Delete(
        key, deadline,
        [this, start = absl::Now(), done = std::move(done)](absl::StatusOr<bool> existed) mutable {
          Record("delete", start, existed.status());
          std::move(done)(std::move(existed));
        });
  }
  void GetRing(absl::string_view ns, absl::Time deadline, GetRingDone done) override {
    inner_->GetRing(ns, deadline,
                    [this, start = absl::Now(),
                     done = std::move(done)](absl::StatusOr<StoredRing> ring) mutable {
                      Record("get_ring", start, ring.status());
                      std::move(done)(std::move(ring));
                    });
  }
  void SwapRing(absl::string_view ns, uint64_t expected, uint64_t version, absl::string_view ring,
                absl::Time deadline, SwapRingDone done) override {
    inner_->SwapRing(
        ns, expected, version, ring, deadline,
        [this, start = absl::Now(), done = std::move(done)](absl::StatusOr<bool> swapped) mutable {
          Record("swap_ring", start, swapped.status());
          std::move(done)(std::move(swapped));
        });
  }
  bool SharesChanges() const override { return inner_->SharesChanges(); }
  void PublishChanges(absl::string_view ns, absl::string_view batch, absl::Time deadline,
                      PutDone done) override {
    inner_->PublishChanges(
        ns, batch, deadline,
        [this, start = absl::Now(), done = std::move(done)](absl::Status s) mutable {
          Record("publish", start, s);
          std::move(done)(std::move(s));
        });
  }
  std::unique_ptr<ChangesSubscription> SubscribeChanges(absl::string_view ns,
                                                        ChangesHandler handler) override {
    return inner_->SubscribeChanges(ns, std::move(handler));
  }
  absl::Status Health() override { return inner_->Health(); }
  std::string Describe() const override { return inner_->Describe(); }
  void AddStats(StoreStats* stats) const override { inner_->AddStats(stats); }

 private:
  void Record(const char* op, absl::Time start, const absl::Status& status) {
    metrics_->store_duration->Observe({op}, absl::Now() - start);
    if (!status.ok() && !absl::IsNotFound(status)) metrics_->store_errors->Increment({op});
  }

  const std::unique_ptr<Store> inner_;
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
      misses(metrics.AddCounter("tlscache_cache_misses_total", "Get calls answered NOT_FOUND", {})),
      store_duration(metrics.AddHistogram("tlscache_store_duration_seconds",
                                          "store operation latency, until its answer", {"op"})),
      store_errors(metrics.AddCounter("tlscache_store_errors_total",
                                      "store operations that failed (a miss is not a failure)",
                                      {"op"})) {}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> RpcMetricsInterceptors(
    RpcMetrics* metrics) {
  return std::make_unique<RpcMetricsFactory>(metrics);
}

std::unique_ptr<Store> InstrumentStore(std::unique_ptr<Store> inner, RpcMetrics* metrics) {
  return std::make_unique<InstrumentedStore>(std::move(inner), metrics);
}

}  // namespace tlscache::server
