#include "server/observability/metrics_http.h"

#include <httplib.h>

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/host_port.h"

namespace tlscache::server {

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& listen, const Metrics* metrics, std::function<bool()> ready) {
  absl::StatusOr<HostPort> address = SplitHostPort(listen);
  if (!address.ok()) return address.status();
  const std::string host = address->host.empty() ? "0.0.0.0" : address->host;
  const int port = address->port;
  std::unique_ptr<MetricsHttpServer> server(new MetricsHttpServer());
  server->http_ = std::make_unique<httplib::Server>();
  httplib::Server& http = *server->http_;
  http.Get("/metrics", [metrics](const httplib::Request&, httplib::Response& response) {
    response.set_content(metrics->Render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  http.Get("/healthz", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("ok\n", "text/plain");
  });
  http.Get("/readyz", [ready](const httplib::Request&, httplib::Response& response) {
    const bool serving = ready();
    response.status = serving ? 200 : 503;
    response.set_content(serving ? "SERVING\n" : "NOT_SERVING\n", "text/plain");
  });
  if (port == 0) {
    server->port_ = http.bind_to_any_port(host);
  } else if (http.bind_to_port(host, port)) {
    server->port_ = port;
  }
  if (server->port_ <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen, " for metrics"));
  }
  server->thread_ = std::thread([s = server.get()] { s->http_->listen_after_bind(); });
  // stop() only stops a server that is running: wait for it to run, so that the destructor
  // cannot come first and leave the thread serving.
  while (!http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return server;
}

MetricsHttpServer::~MetricsHttpServer() {
  http_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace tlscache::server
