// tlscache-server: the tlscache session cache service.
#include <signal.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/grpc_log.h"
#include "common/log.h"
#include "common/signals.h"
#include "server/cache_server.h"
#include "server/store_factory.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:7700", "HOST:PORT to serve gRPC on (port 0: any free)");
ABSL_FLAG(std::string, store, "memory",
          "where sessions live: memory (embedded) or redis://HOST:PORT[/DB]");
ABSL_FLAG(absl::Duration, default_ttl, absl::Seconds(300),
          "TTL of a Put that asks for none (e.g. 300s, 5m)");
ABSL_FLAG(absl::Duration, max_ttl, absl::Hours(24), "larger TTLs asked for are clamped to this");
ABSL_FLAG(int64_t, max_session_bytes, 16 << 10, "largest serialized session accepted");
ABSL_FLAG(int64_t, memory_max_bytes, int64_t{256} << 20,
          "bound on the memory store; least recently used entries are evicted past it");
ABSL_FLAG(int32_t, redis_timeout_ms, 100, "bound on one Redis call, queueing included");
ABSL_FLAG(int32_t, redis_pool_size, 4, "Redis connections per server");
ABSL_FLAG(absl::Duration, ticket_rotation, absl::Hours(1),
          "how often each namespace's session-ticket key rotates");
ABSL_FLAG(absl::Duration, ticket_decrypt_window, absl::Hours(12),
          "how long a ticket key still decrypts after it stopped encrypting");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "on SIGTERM, how long in-flight calls get to finish");

namespace tlscache::server {
namespace {

constexpr int64_t kMaxSessionBytesLimit = 1 << 20;

absl::Status CheckFlags() {
  const absl::Duration default_ttl = absl::GetFlag(FLAGS_default_ttl);
  const absl::Duration max_ttl = absl::GetFlag(FLAGS_max_ttl);
  if (max_ttl < absl::Seconds(1) || max_ttl > absl::Seconds(UINT32_MAX)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_ttl=", absl::FormatDuration(max_ttl), ": must be 1s or more"));
  }
  if (default_ttl < absl::Seconds(1) || default_ttl > max_ttl) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--default_ttl=", absl::FormatDuration(default_ttl), ": must be between 1s and --max_ttl"));
  }
  const int64_t max_session = absl::GetFlag(FLAGS_max_session_bytes);
  if (max_session < 1 || max_session > kMaxSessionBytesLimit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_session_bytes=", max_session, ": must be between 1 and ", kMaxSessionBytesLimit));
  }
  if (absl::GetFlag(FLAGS_memory_max_bytes) < 1) {
    return absl::InvalidArgumentError("--memory_max_bytes: must be positive");
  }
  if (absl::GetFlag(FLAGS_redis_timeout_ms) < 1) {
    return absl::InvalidArgumentError("--redis_timeout_ms: must be 1 or more");
  }
  const int32_t pool = absl::GetFlag(FLAGS_redis_pool_size);
  if (pool < 1 || pool > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("--redis_pool_size=", pool, ": must be between 1 and 256"));
  }
  const absl::Duration rotation = absl::GetFlag(FLAGS_ticket_rotation);
  const absl::Duration window = absl::GetFlag(FLAGS_ticket_decrypt_window);
  if (rotation < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ticket_rotation=", absl::FormatDuration(rotation), ": must be 1s or more"));
  }
  if (window < rotation) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ticket_decrypt_window=", absl::FormatDuration(window),
                     ": must be at least --ticket_rotation"));
  }
  if (absl::GetFlag(FLAGS_shutdown_grace) < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--shutdown_grace: must not be negative");
  }
  return absl::OkStatus();
}

int Fatal(const absl::Status& status) {
  std::fprintf(stderr, "tlscache-server: %s\n", std::string(status.message()).c_str());
  return 1;
}

int Main() {
  if (absl::Status s = CheckFlags(); !s.ok()) return Fatal(s);

  const sigset_t signals = BlockTerminationSignals();  // before any thread exists

  StoreConfig store_config;
  store_config.url = absl::GetFlag(FLAGS_store);
  store_config.max_session_bytes = absl::GetFlag(FLAGS_max_session_bytes);
  store_config.memory_max_bytes = absl::GetFlag(FLAGS_memory_max_bytes);
  store_config.redis_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_redis_timeout_ms));
  store_config.redis_pool_size = absl::GetFlag(FLAGS_redis_pool_size);
  absl::StatusOr<std::unique_ptr<Store>> store = CreateStore(store_config);
  if (!store.ok()) return Fatal(store.status());
  const std::string store_name = (*store)->Describe();

  CacheServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.service.default_ttl = absl::GetFlag(FLAGS_default_ttl);
  options.service.max_ttl = absl::GetFlag(FLAGS_max_ttl);
  options.service.max_session_bytes = store_config.max_session_bytes;
  options.ticket_keys.policy.rotation = absl::GetFlag(FLAGS_ticket_rotation);
  options.ticket_keys.policy.decrypt_window = absl::GetFlag(FLAGS_ticket_decrypt_window);
  // Rotations land within a tenth of the interval (at most a second) of being due.
  options.ticket_keys.check_interval =
      std::min(absl::Seconds(1), options.ticket_keys.policy.rotation / 10);
  absl::StatusOr<std::unique_ptr<CacheServer>> server =
      CacheServer::Start(options, *std::move(store));
  if (!server.ok()) return Fatal(server.status());

  const std::string& listen = options.listen;
  const std::string host = listen.substr(0, listen.rfind(':'));
  LogInfo("tlscache-server listening on %s:%d, store %s", host, (*server)->port(), store_name);

  const int received = WaitForTermination(signals);
  LogInfo("received %s: NOT_SERVING, draining in-flight calls for up to %s",
          received == SIGTERM ? "SIGTERM" : "SIGINT",
          absl::FormatDuration(absl::GetFlag(FLAGS_shutdown_grace)));
  (*server)->Shutdown(absl::GetFlag(FLAGS_shutdown_grace));
  server->reset();
  LogInfo("tlscache-server stopped");
  return 0;
}

}  // namespace
}  // namespace tlscache::server

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "tlscache-server: the distributed TLS session cache service.\n"
      "  tlscache-server [--listen=HOST:PORT] [--store=memory|redis://HOST:PORT[/DB]] ...");
  absl::ParseCommandLine(argc, argv);
  tlscache::RouteGrpcLogs();
  return tlscache::server::Main();
}
