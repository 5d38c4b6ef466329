// CacheServer: the running gRPC server of tlscache-server, with its store, the
// SessionCache and TicketKeys services, gRPC health checking and server reflection.
//
// Health ("" and "tlscache.v1.SessionCache") is SERVING while the store answers and
// NOT_SERVING otherwise; a monitor re-checks the store every `health_interval`. Shutdown()
// first turns health NOT_SERVING, then lets in-flight calls finish within the grace period.
//
// With TLS the port speaks nothing else; with a client CA, a client without a certificate it
// issued cannot complete a handshake, let alone call.
//
// Thread-safety: Shutdown() may be called from any thread, once.
#ifndef TLSCACHE_SERVER_CACHE_SERVER_H_
#define TLSCACHE_SERVER_CACHE_SERVER_H_

#include <grpcpp/server.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/session_cache_service.h"
#include "server/store.h"
#include "server/ticket_key_service.h"

namespace tlscache::server {

// TLS on the gRPC port. The certificate, key and client CA files are re-read every
// `reload_interval`, so renewed certificates take effect without a restart.
struct ServerTlsOptions {
  std::string cert_file;  // empty: plaintext
  std::string key_file;
  std::string client_ca_file;  // set: every client must present a certificate it issued
  absl::Duration reload_interval = absl::Minutes(1);
};

struct CacheServerOptions {
  // HOST:PORT; port 0 picks a free one (see port()).
  std::string listen = "0.0.0.0:7700";
  ServerTlsOptions tls;
  // Bounds on what one connection may ask of the server.
  int max_concurrent_streams = 128;
  int max_metadata_bytes = 8 << 10;
  ServiceOptions service;
  TicketKeyOptions ticket_keys;
  absl::Duration health_interval = absl::Milliseconds(250);
};

class CacheServer {
 public:
  static absl::StatusOr<std::unique_ptr<CacheServer>> Start(const CacheServerOptions& options,
                                                            std::unique_ptr<Store> store);
  ~CacheServer();  // Shutdown(absl::ZeroDuration()) unless already shut down.

  int port() const { return port_; }
  Store* store() const { return store_.get(); }

  void Shutdown(absl::Duration grace);

 private:
  CacheServer(const CacheServerOptions& options, std::unique_ptr<Store> store);
  void MonitorHealth(bool serving);
  void SetServing(bool serving);

  const CacheServerOptions options_;
  std::unique_ptr<Store> store_;
  SessionCacheService service_;
  TicketKeyService ticket_keys_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  absl::Notification stop_monitor_;
  std::thread monitor_;
  bool shut_down_ = false;
};

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_CACHE_SERVER_H_
