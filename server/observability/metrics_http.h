// The HTTP side of a cache server, for Prometheus and for probes that cannot speak gRPC:
//   /metrics  the Prometheus text format
//   /healthz  200 while the process serves HTTP at all (liveness)
//   /readyz   200 while the gRPC service is SERVING, 503 otherwise (readiness)
#ifndef TLSCACHE_SERVER_OBSERVABILITY_METRICS_HTTP_H_
#define TLSCACHE_SERVER_OBSERVABILITY_METRICS_HTTP_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/observability/metrics.h"

namespace httplib {
class Server;
}

namespace tlscache::server {

class MetricsHttpServer {
 public:
  // Binds HOST:PORT (port 0: any free) and serves on a thread of its own. `metrics` and
  // `ready` outlive the server.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& listen,
                                                                  const Metrics* metrics,
                                                                  std::function<bool()> ready);
  ~MetricsHttpServer();  // stops serving

  int port() const { return port_; }

 private:
  MetricsHttpServer() = default;

  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_OBSERVABILITY_METRICS_HTTP_H_
