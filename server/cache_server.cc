#include "server/cache_server.h"

#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_log.h"
#include "common/log.h"

namespace tlscache::server {
namespace {

constexpr char kServiceName[] = "tlscache.v1.SessionCache";
// Room for the namespace, the session ID and the framing around the largest session, so a
// session slightly over the limit gets INVALID_ARGUMENT naming it rather than a transport error.
constexpr int kRequestOverhead = 1024;

// Why `listen` cannot be bound, found by trying as gRPC would; "" when it can be.
std::string BindError(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return "expected HOST:PORT";
  std::string host = listen.substr(0, colon);
  const std::string port = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
      rc != 0) {
    return gai_strerror(rc);
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, &freeaddrinfo);
  const int fd = socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::strerror(errno);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  std::string error;
  if (bind(fd, found->ai_addr, found->ai_addrlen) != 0) error = std::strerror(errno);
  close(fd);
  return error;
}

}  // namespace

CacheServer::CacheServer(const CacheServerOptions& options, std::unique_ptr<Store> store)
    : options_(options),
      store_(std::move(store)),
      service_(store_.get(), options.service),
      ticket_keys_(store_.get(), options.ticket_keys) {}

absl::StatusOr<std::unique_ptr<CacheServer>> CacheServer::Start(const CacheServerOptions& options,
                                                                std::unique_ptr<Store> store) {
  if (options.service.max_session_bytes > INT_MAX - kRequestOverhead) {
    return absl::InvalidArgumentError("max session bytes is too large");
  }
  std::unique_ptr<CacheServer> server(new CacheServer(options, std::move(store)));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &server->port_);
  // Without this, gRPC sets SO_REUSEPORT and a second server on the same port would start
  // and silently take half the connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(&server->service_);
  builder.RegisterService(&server->ticket_keys_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.service.max_session_bytes) +
                                   kRequestOverhead);
  SetGrpcLogsQuiet(true);  // a bind failure is reported below, in one line
  server->server_ = builder.BuildAndStart();
  SetGrpcLogsQuiet(false);
  if (server->server_ == nullptr || server->port_ == 0) {
    std::string why = BindError(options.listen);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen, why.empty() ? "" : ": ", why));
  }
  const bool serving = server->store_->Health().ok();
  server->SetServing(serving);
  server->monitor_ = std::thread([s = server.get(), serving] { s->MonitorHealth(serving); });
  return server;
}

CacheServer::~CacheServer() {
  if (server_ != nullptr && !shut_down_) Shutdown(absl::ZeroDuration());
}

void CacheServer::SetServing(bool serving) {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus(serving);
  health->SetServingStatus(kServiceName, serving);
}

void CacheServer::MonitorHealth(bool serving) {
  // `serving` is what Start() published. A store still down one interval later is reported,
  // then every change.
  bool first = true;
  while (!stop_monitor_.WaitForNotificationWithTimeout(options_.health_interval)) {
    const absl::Status health = store_->Health();
    const bool changed = health.ok() != serving;
    if (changed || (first && !health.ok())) {
      serving = health.ok();
      if (serving) {
        LogInfo("store %s is answering: SERVING", store_->Describe());
      } else {
        LogWarning("store %s is not answering: NOT_SERVING: %s", store_->Describe(),
                   health.message());
      }
    }
    first = false;
    // Only on a change: every update is pushed to each Watch stream.
    if (changed) SetServing(serving);
  }
}

void CacheServer::Shutdown(absl::Duration grace) {
  shut_down_ = true;
  stop_monitor_.Notify();
  if (monitor_.joinable()) monitor_.join();
  // NOT_SERVING for good: the health service ignores later changes once shut down.
  server_->GetHealthCheckService()->Shutdown();
  ticket_keys_.StopWatches();  // long-lived streams would hold the shutdown to its deadline
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_->Wait();
}

}  // namespace tlscache::server
