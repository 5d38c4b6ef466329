// CacheServer: the running gRPC server of tlscache-server, with its store, the
// SessionCache and TicketKeys services, gRPC health checking and server reflection.
//
// Health ("" and "tlscache.v1.SessionCache") is SERVING while the store answers and
// NOT_SERVING otherwise; a monitor re-checks the store every `health_interval`.
// "tlscache.v1.Process" is SERVING until shutdown, whatever the store (for liveness). Shutdown()
// first turns health NOT_SERVING, then lets in-flight calls finish within the grace period.
//
// With TLS the port speaks nothing else; with a client CA, a client without a certificate it
// issued cannot complete a handshake, let alone call.
//
// Thread-safety: Shutdown() may be called from any thread, once.
#ifndef TLSCACHE_SERVER_CACHE_SERVER_H_
#define TLSCACHE_SERVER_CACHE_SERVER_H_

#include <grpcpp/server.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/admin_service.h"
#include "server/sessions/follow_stream.h"
#include "server/observability/metrics.h"
#include "server/observability/metrics_http.h"
#include "server/observability/rpc_metrics.h"
#include "server/sessions/session_cache_service.h"
#include "server/sessions/session_feed.h"
#include "server/store/store.h"
#include "server/tickets/ticket_key_service.h"

namespace tlscache::server {

// TLS on the gRPC port. The certificate, key and client CA files are re-read every
// `reload_interval`, so renewed certificates take effect without a restart.
struct ServerTlsOptions {
  std::string cert_file;  // empty: plaintext
  std::string key_file;
  std::string client_ca_file;  // set: every client must present a certificate it issued
  absl::Duration reload_interval = absl::Minutes(1);
};

// Reads the TLS files as gRPC will, so that a wrong path, a key that does not match its
// certificate or an empty CA bundle stops the server at startup with the file named, rather
// than failing every handshake later. Start() calls it; so does a dry run.
absl::Status CheckTlsFiles(const ServerTlsOptions& tls);

struct CacheServerOptions {
  // HOST:PORT; port 0 picks a free one (see port()).
  std::string listen = "0.0.0.0:7700";
  ServerTlsOptions tls;
  // Bounds on what one connection may ask of the server.
  int max_concurrent_streams = 128;
  int max_metadata_bytes = 8 << 10;
  // A connection this old is sent GOAWAY (gRPC adds up to a tenth either way, so that
  // connections made together do not all go at once): its clients connect again, to the
  // replicas there are now. Follow streams this old are handed over (FollowResponse
  // .reconnect) and ended a grace later if they have not moved. Zero: never.
  absl::Duration max_connection_age = absl::ZeroDuration();
  absl::Duration max_connection_age_grace = absl::Minutes(1);
  // FeedOptions::push_budget: pushes a second, per namespace, this replica writes at most.
  double push_budget = 0;
  ServiceOptions service;
  TicketKeyOptions ticket_keys;
  absl::Duration health_interval = absl::Milliseconds(250);
  // Who may call the Admin service (identities granted '*'); null: anyone who can connect.
  const Authorizer* admin_authz = nullptr;
  // HOST:PORT for /metrics, /healthz and /readyz over HTTP (server/observability/metrics_http.h);
  // empty: none.
  std::string metrics_listen;
  // HOST:PORT for a plaintext gRPC port that serves only grpc.health.v1, for probes that
  // cannot present a client certificate (Kubernetes' gRPC probes); empty: none.
  std::string health_listen;
};

class CacheServer {
 public:
  static absl::StatusOr<std::unique_ptr<CacheServer>> Start(const CacheServerOptions& options,
                                                            std::unique_ptr<Store> store);
  ~CacheServer();  // Shutdown(absl::ZeroDuration()) unless already shut down.

  int port() const { return port_; }
  int metrics_port() const { return metrics_http_ == nullptr ? 0 : metrics_http_->port(); }
  int health_port() const { return health_port_; }
  Store* store() const { return store_.get(); }
  // Follow streams on this replica, every namespace.
  size_t followers() const { return feed_.followers(); }
  const Metrics& metrics() const { return metrics_; }

  void Shutdown(absl::Duration grace);
  // After the authorization policy was reloaded: every open stream (Follow, WatchTicketKeys)
  // whose identity no longer has its namespace ends with PERMISSION_DENIED.
  void Reauthorize();

 private:
  CacheServer(const CacheServerOptions& options, std::unique_ptr<Store> store);
  void MonitorHealth(bool serving);
  void SetServing(bool serving);
  void AddServerMetrics();
  void AddRotationBarrierMetrics();
  void AddRedisHealthMetrics();
  // A gauge of one of the store's StoreStats.
  Metrics::GaugeReader StoreStatReader(std::optional<uint64_t> StoreStats::*field);
  v1::Stats CollectStats() const;

  const CacheServerOptions options_;
  Metrics metrics_;
  RpcMetrics rpc_metrics_;
  std::unique_ptr<Store> store_;  // instrumented into metrics_
  SessionFeed feed_;
  SessionCacheService service_;
  TicketKeyService ticket_keys_;
  AdminService admin_;
  const absl::Time started_ = absl::Now();
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> health_server_;
  std::unique_ptr<MetricsHttpServer> metrics_http_;
  int port_ = 0;
  int health_port_ = 0;
  std::atomic<bool> serving_{false};
  absl::Notification stop_monitor_;
  std::thread monitor_;
  bool shut_down_ = false;
};

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_CACHE_SERVER_H_
