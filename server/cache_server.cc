#include "server/cache_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <chrono>
#include <climits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace tlscache::server {
namespace {

constexpr char kServiceName[] = "tlscache.v1.SessionCache";
// Room for the namespace, the session ID and the framing around the largest session, so a
// session slightly over the limit gets INVALID_ARGUMENT naming it rather than a transport error.
constexpr int kRequestOverhead = 1024;

}  // namespace

CacheServer::CacheServer(const CacheServerOptions& options, std::unique_ptr<Store> store)
    : options_(options), store_(std::move(store)), service_(store_.get(), options.service) {}

absl::StatusOr<std::unique_ptr<CacheServer>> CacheServer::Start(
    const CacheServerOptions& options, std::unique_ptr<Store> store) {
  if (options.service.max_session_bytes > INT_MAX - kRequestOverhead) {
    return absl::InvalidArgumentError("max session bytes is too large");
  }
  std::unique_ptr<CacheServer> server(new CacheServer(options, std::move(store)));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &server->port_);
  builder.RegisterService(&server->service_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.service.max_session_bytes) +
                                   kRequestOverhead);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen));
  }
  server->SetServing(server->store_->Health().ok());
  server->monitor_ = std::thread([s = server.get()] { s->MonitorHealth(); });
  return server;
}

CacheServer::~CacheServer() {
  if (!shut_down_) Shutdown(absl::ZeroDuration());
}

void CacheServer::SetServing(bool serving) {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus(serving);
  health->SetServingStatus(kServiceName, serving);
}

void CacheServer::MonitorHealth() {
  bool serving = store_->Health().ok();
  while (!stop_monitor_.WaitForNotificationWithTimeout(options_.health_interval)) {
    const absl::Status health = store_->Health();
    if (health.ok() != serving) {
      serving = health.ok();
      if (serving) {
        LogInfo("store %s is answering: SERVING", store_->Describe());
      } else {
        LogWarning("store %s is not answering: NOT_SERVING: %s", store_->Describe(),
                   health.message());
      }
    }
    SetServing(serving);
  }
}

void CacheServer::Shutdown(absl::Duration grace) {
  shut_down_ = true;
  stop_monitor_.Notify();
  if (monitor_.joinable()) monitor_.join();
  // NOT_SERVING for good: the health service ignores later changes once shut down.
  server_->GetHealthCheckService()->Shutdown();
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_->Wait();
}

}  // namespace tlscache::server
