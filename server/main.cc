// tlscache-server: the tlscache session cache service.
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/absl_runtime.h"
#include "common/channel_tls.h"
#include "common/files.h"
#include "common/grpc_log.h"
#include "common/host_port.h"
#include "common/log.h"
#include "common/signals.h"
#include "common/usage.h"
#include "common/validation.h"
#include "server/cache_server.h"
#include "server/security/authorizer.h"
#include "server/security/sealer.h"
#include "server/store/store_factory.h"

ABSL_FLAG(std::string, listen, "",
          "HOST:PORT to serve gRPC on (port 0: any free); default 0.0.0.0:7700 with --tls_cert, "
          "127.0.0.1:7700 without");
ABSL_FLAG(std::string, store, "memory",
          "where sessions live: memory (embedded), redis://HOST:PORT[/DB], "
          "redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTER or "
          "redis-cluster://HOST:PORT[,HOST:PORT...]");
ABSL_FLAG(absl::Duration, default_ttl, absl::Seconds(300),
          "TTL of a Put that asks for none (e.g. 300s, 5m)");
ABSL_FLAG(absl::Duration, max_ttl, absl::Hours(24), "larger TTLs asked for are clamped to this");
ABSL_FLAG(int64_t, max_session_bytes, 16 << 10, "largest serialized session accepted");
ABSL_FLAG(int64_t, memory_max_bytes, int64_t{256} << 20,
          "bound on the memory store; least recently used entries are evicted past it");
ABSL_FLAG(int32_t, redis_timeout_ms, 100, "bound on one Redis call, queueing included");
ABSL_FLAG(int32_t, redis_pool_size, 4, "Redis connections per server");
ABSL_FLAG(std::string, redis_password_file, "",
          "file with Redis credentials, one line: PASSWORD or USER PASSWORD (an ACL user)");
ABSL_FLAG(std::string, sentinel_password_file, "",
          "file with the sentinels' credentials (redis-sentinel:// stores), same format");
ABSL_FLAG(absl::Duration, ticket_rotation, absl::Hours(1),
          "how often each namespace's session-ticket key rotates");
ABSL_FLAG(absl::Duration, ticket_decrypt_window, absl::Hours(12),
          "how long a ticket key still decrypts after it stopped encrypting");
ABSL_FLAG(absl::Duration, ticket_min_distribution, absl::Seconds(3),
          "how old a PENDING ticket key must be before `keys rotate` makes it ACTIVE (at most "
          "half of --ticket_rotation is used)");
ABSL_FLAG(absl::Duration, ticket_follower_lease, absl::Seconds(30),
          "how long a ticket key follower's report of the ring it holds counts; a rotation "
          "waits only for followers whose lease runs (they report every third of it)");
ABSL_FLAG(absl::Duration, ticket_barrier_timeout, absl::Minutes(5),
          "how long a due rotation waits for live followers that still hold an older ring "
          "before it goes ahead without them (naming them)");
ABSL_FLAG(int32_t, max_ticket_namespaces, 1024,
          "how many namespaces' ticket key rings a replica keeps and rotates");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain to serve TLS with (re-read every minute)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle: with it, every client must present a certificate it issued (mTLS)");
ABSL_FLAG(bool, allow_insecure, false,
          "allow plaintext gRPC on an address other than loopback (without --tls_cert)");
ABSL_FLAG(std::string, authz_file, "",
          "lines 'IDENTITY NAMESPACE[,NAMESPACE...]': which client identity may use which "
          "namespaces ('*': all); needs --tls_client_ca; SIGHUP reloads it");
ABSL_FLAG(std::string, seal_key_file, "",
          "file of 32-byte keys, 64 hex digits per line: every stored value is sealed "
          "(AES-256-GCM) with the first, opened with any");
ABSL_FLAG(std::string, metrics_listen, "",
          "HOST:PORT to serve Prometheus /metrics, /healthz and /readyz on (HTTP); empty: off");
ABSL_FLAG(std::string, health_listen, "",
          "HOST:PORT for a plaintext gRPC port serving only grpc.health.v1, for probes that "
          "cannot present a client certificate; empty: off");
ABSL_FLAG(bool, dry_run, false,
          "check the flags and every file they name (TLS, authz, seal keys), then exit: 0 if "
          "the server would start");
ABSL_FLAG(int32_t, max_concurrent_streams, 128, "concurrent calls one client connection may have");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "on SIGTERM, how long in-flight calls get to finish");
ABSL_FLAG(absl::Duration, max_connection_age, absl::Minutes(5),
          "a client connection older than this (give or take a tenth) is asked to go "
          "(GOAWAY): clients connect again and spread over the replicas there are now; 0: "
          "never");
ABSL_FLAG(std::string, deployment, "default",
          "which deployment this is when several share one Redis ([A-Za-z0-9._-]{1,64}): with "
          "the Redis database, part of the change channels' names and of what sealed values are "
          "bound to, so that no change and no sealed value crosses between deployments");
ABSL_FLAG(double, push_budget, 50000,
          "the most pushes a second this replica writes for one namespace (its new sessions "
          "and deletions a second times the nodes following it here); past it the namespace's "
          "pushes stop, and its nodes look its sessions up in the service, until the rate stays "
          "under half of it for 5 s (docs/operations.md, \"Large farms\"); 0: no budget");
ABSL_FLAG(absl::Duration, max_connection_age_grace, absl::Minutes(1),
          "after --max_connection_age, how long the calls and streams still open on the old "
          "connection get before it is closed");

namespace tlscache::server {
namespace {

constexpr int64_t kMaxSessionBytesLimit = 1 << 20;

absl::Status CheckFlags() {
  const absl::Duration default_ttl = absl::GetFlag(FLAGS_default_ttl);
  const absl::Duration max_ttl = absl::GetFlag(FLAGS_max_ttl);
  if (max_ttl < absl::Seconds(1) || max_ttl > absl::Seconds(UINT32_MAX)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_ttl=", absl::FormatDuration(max_ttl), ": must be between 1s and ", UINT32_MAX,
        "s (the largest ttl_seconds of a Put)"));
  }
  if (!ValidateNamespace(absl::GetFlag(FLAGS_deployment)).ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--deployment=", absl::GetFlag(FLAGS_deployment), ": must match [A-Za-z0-9._-]{1,64}"));
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
  if (absl::GetFlag(FLAGS_ticket_min_distribution) < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--ticket_min_distribution: must not be negative");
  }
  if (absl::GetFlag(FLAGS_ticket_follower_lease) < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ticket_follower_lease=",
                     absl::FormatDuration(absl::GetFlag(FLAGS_ticket_follower_lease)),
                     ": must be 1s or more"));
  }
  if (absl::GetFlag(FLAGS_ticket_barrier_timeout) < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--ticket_barrier_timeout: must not be negative");
  }
  const int32_t rings = absl::GetFlag(FLAGS_max_ticket_namespaces);
  if (rings < 1 || rings > 1000000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_ticket_namespaces=", rings, ": must be between 1 and 1000000"));
  }
  if (absl::GetFlag(FLAGS_shutdown_grace) < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--shutdown_grace: must not be negative");
  }
  const absl::Duration age = absl::GetFlag(FLAGS_max_connection_age);
  if (age != absl::ZeroDuration() && (age < absl::Seconds(1) || age > absl::Hours(24 * 24))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_connection_age=", absl::FormatDuration(age), ": must be 0 (never) or 1s to 24d"));
  }
  const double push_budget = absl::GetFlag(FLAGS_push_budget);
  if (!(push_budget >= 0 && push_budget <= 1e12)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--push_budget=", push_budget, ": must be 0 (no budget) to 1e12 pushes a second"));
  }
  const absl::Duration age_grace = absl::GetFlag(FLAGS_max_connection_age_grace);
  if (age_grace < absl::ZeroDuration() || age_grace > absl::Hours(24 * 24)) {
    return absl::InvalidArgumentError(absl::StrCat("--max_connection_age_grace=",
                                                   absl::FormatDuration(age_grace),
                                                   ": must be 0 to 24d"));
  }
  const int32_t streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  if (streams < 1 || streams > 65536) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_concurrent_streams=", streams, ": must be between 1 and 65536"));
  }
  if (absl::Status s =
          CheckTlsFileSet(TlsEnd::kServer, {"--tls_cert", !absl::GetFlag(FLAGS_tls_cert).empty()},
                          {"--tls_key", !absl::GetFlag(FLAGS_tls_key).empty()},
                          {"--tls_client_ca", !absl::GetFlag(FLAGS_tls_client_ca).empty()});
      !s.ok()) {
    return s;
  }
  if (!absl::GetFlag(FLAGS_authz_file).empty() && absl::GetFlag(FLAGS_tls_client_ca).empty()) {
    return absl::InvalidArgumentError(
        "--authz_file needs --tls_client_ca: identities come from client certificates");
  }
  return absl::OkStatus();
}

// Whether every address `host` resolves to is a loopback address.
bool IsLoopbackHost(const std::string& host) {
  if (host.empty()) return false;  // every interface
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0) return false;
  bool loopback = true;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    if (a->ai_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(a->ai_addr);
      loopback &= (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    } else if (a->ai_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(a->ai_addr);
      loopback &= IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) != 0;
    } else {
      loopback = false;
    }
  }
  freeaddrinfo(found);
  return loopback;
}

// Reads the secret file the flag `flag` names and parses it with `parse`, wiping the text
// after. Errors name the flag.
template <typename Parse>
auto ParseSecretFile(const char* flag, const std::string& path, size_t max_bytes, Parse parse)
    -> decltype(parse(std::string())) {
  absl::StatusOr<std::string> text = ReadSmallFile(path, max_bytes);
  if (!text.ok()) {
    return absl::Status(text.status().code(),
                        absl::StrCat("--", flag, ": ", text.status().message()));
  }
  auto parsed = parse(*text);
  CleanseString(&*text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, "=", path, ": ", parsed.status().message()));
  }
  return parsed;
}

// The credentials in `path` (a --*_password_file), re-read at each connect; null when no file
// is given.
absl::StatusOr<std::shared_ptr<redis::RedisCredentials>> LoadRedisAuth(const char* flag,
                                                                       const std::string& path) {
  if (path.empty()) return nullptr;
  absl::StatusOr<std::shared_ptr<redis::RedisCredentials>> credentials =
      redis::RedisCredentials::FromFile(path);
  if (!credentials.ok()) {
    return absl::Status(credentials.status().code(),
                        absl::StrCat("--", flag, ": ", credentials.status().message()));
  }
  return credentials;
}

absl::StatusOr<std::unique_ptr<Sealer>> LoadSealer(const std::string& path,
                                                   const std::string& scope) {
  if (path.empty()) return nullptr;
  absl::StatusOr<std::vector<SecretBytes>> keys =
      ParseSecretFile("seal_key_file", path, 64 << 10, ParseSealKeys);
  if (!keys.ok()) return keys.status();
  struct stat info {};
  if (stat(path.c_str(), &info) == 0 && (info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    LogWarning("--seal_key_file=%s is readable by other users (mode %o); make it 0600", path,
               info.st_mode & 0777);
  }
  return Sealer::Create(*std::move(keys), scope);
}

int Fatal(const absl::Status& status) {
  std::fprintf(stderr, "tlscache-server: %s\n", std::string(status.message()).c_str());
  return 1;
}

int Main() {
  if (absl::Status s = CheckFlags(); !s.ok()) return Fatal(s);

  const sigset_t signals = BlockTerminationSignals();  // before any thread exists

  const bool tls = !absl::GetFlag(FLAGS_tls_cert).empty();
  std::string listen = absl::GetFlag(FLAGS_listen);
  if (listen.empty()) listen = tls ? "0.0.0.0:7700" : "127.0.0.1:7700";
  absl::StatusOr<HostPort> address = SplitHostPort(listen);
  if (!address.ok())
    return Fatal(
        absl::InvalidArgumentError(absl::StrCat("--listen=", listen, ": expected HOST:PORT")));
  if (!tls && !absl::GetFlag(FLAGS_allow_insecure) && !IsLoopbackHost(address->host)) {
    return Fatal(absl::InvalidArgumentError(
        absl::StrCat("--listen=", listen,
                     " is not a loopback address: serving plaintext there needs --allow_insecure; "
                     "give --tls_cert and --tls_key (and --tls_client_ca) to serve TLS")));
  }

  std::unique_ptr<Authorizer> authz;
  if (const std::string path = absl::GetFlag(FLAGS_authz_file); !path.empty()) {
    absl::StatusOr<std::unique_ptr<Authorizer>> loaded = Authorizer::FromFile(path);
    if (!loaded.ok()) return Fatal(loaded.status());
    authz = *std::move(loaded);
  }
  StoreConfig store_config;
  store_config.url = absl::GetFlag(FLAGS_store);
  store_config.deployment = absl::GetFlag(FLAGS_deployment);
  if (absl::Status s = ValidateStoreUrl(store_config.url); !s.ok()) return Fatal(s);
  absl::StatusOr<std::unique_ptr<Sealer>> sealer =
      LoadSealer(absl::GetFlag(FLAGS_seal_key_file), SealScope(store_config));
  if (!sealer.ok()) return Fatal(sealer.status());
  const bool sealed = *sealer != nullptr;
  absl::StatusOr<std::shared_ptr<redis::RedisCredentials>> redis_auth =
      LoadRedisAuth("redis_password_file", absl::GetFlag(FLAGS_redis_password_file));
  if (!redis_auth.ok()) return Fatal(redis_auth.status());
  absl::StatusOr<std::shared_ptr<redis::RedisCredentials>> sentinel_auth =
      LoadRedisAuth("sentinel_password_file", absl::GetFlag(FLAGS_sentinel_password_file));
  if (!sentinel_auth.ok()) return Fatal(sentinel_auth.status());

  if (absl::GetFlag(FLAGS_dry_run)) {
    const std::string& url = store_config.url;
    if (tls) {
      ServerTlsOptions files{absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
                             absl::GetFlag(FLAGS_tls_client_ca)};
      if (absl::Status s = CheckTlsFiles(files); !s.ok()) return Fatal(s);
    }
    std::printf("tlscache-server: configuration OK (listen %s, store %s%s%s%s)\n", listen.c_str(),
                url.c_str(), tls ? ", TLS" : "", authz != nullptr ? ", authz" : "",
                sealed ? ", sealed" : "");
    return 0;
  }

  store_config.max_session_bytes = absl::GetFlag(FLAGS_max_session_bytes);
  store_config.memory_max_bytes = absl::GetFlag(FLAGS_memory_max_bytes);
  store_config.redis_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_redis_timeout_ms));
  store_config.redis_pool_size = absl::GetFlag(FLAGS_redis_pool_size);
  store_config.redis_auth = *std::move(redis_auth);
  store_config.sentinel_auth = *std::move(sentinel_auth);
  absl::StatusOr<std::unique_ptr<Store>> store = CreateStore(store_config, *std::move(sealer));
  if (!store.ok()) return Fatal(store.status());
  const std::string store_name = (*store)->Describe();
  if (!sealed && store_config.url != "memory") {
    LogWarning(
        "the store %s keeps session master secrets and ticket keys in the clear: give "
        "--seal_key_file to seal them",
        store_name);
  }

  CacheServerOptions options;
  options.listen = listen;
  options.tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls.key_file = absl::GetFlag(FLAGS_tls_key);
  options.tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  options.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  options.max_connection_age = absl::GetFlag(FLAGS_max_connection_age);
  options.max_connection_age_grace = absl::GetFlag(FLAGS_max_connection_age_grace);
  options.push_budget = absl::GetFlag(FLAGS_push_budget);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.health_listen = absl::GetFlag(FLAGS_health_listen);
  options.service.authz = authz.get();
  options.ticket_keys.authz = authz.get();
  options.admin_authz = authz.get();
  options.service.default_ttl = absl::GetFlag(FLAGS_default_ttl);
  options.service.max_ttl = absl::GetFlag(FLAGS_max_ttl);
  options.service.max_session_bytes = store_config.max_session_bytes;
  options.ticket_keys.policy.rotation = absl::GetFlag(FLAGS_ticket_rotation);
  options.ticket_keys.policy.decrypt_window = absl::GetFlag(FLAGS_ticket_decrypt_window);
  // Rotations land within a tenth of the interval (at most a second) of being due.
  options.ticket_keys.check_interval =
      std::min(absl::Seconds(1), options.ticket_keys.policy.rotation / 10);
  options.ticket_keys.min_distribution = std::min(absl::GetFlag(FLAGS_ticket_min_distribution),
                                                  options.ticket_keys.policy.rotation / 2);
  options.ticket_keys.max_namespaces =
      static_cast<size_t>(absl::GetFlag(FLAGS_max_ticket_namespaces));
  options.ticket_keys.barrier.lease = absl::GetFlag(FLAGS_ticket_follower_lease);
  options.ticket_keys.barrier.timeout = absl::GetFlag(FLAGS_ticket_barrier_timeout);
  absl::StatusOr<std::unique_ptr<CacheServer>> server =
      CacheServer::Start(options, *std::move(store));
  if (!server.ok()) return Fatal(server.status());

  LogInfo("tlscache-server listening on %s:%d (%s), store %s", listen.substr(0, listen.rfind(':')),
          (*server)->port(),
          !tls                                 ? "plaintext"
          : options.tls.client_ca_file.empty() ? "TLS"
          : authz != nullptr                   ? "mTLS, authorization by --authz_file"
                                               : "mTLS",
          store_name);

  CacheServer* running = server->get();
  const int received = WaitForTermination(signals, [&authz, running] {
    if (authz == nullptr) return LogInfo("SIGHUP: nothing to reload");
    if (absl::Status s = authz->Reload(); !s.ok()) {
      return LogError("SIGHUP: keeping the authorization policy in force: %s", s.message());
    }
    LogInfo("SIGHUP: reloaded %s", absl::GetFlag(FLAGS_authz_file));
    // Open streams are held to the new policy too: those it no longer allows end now.
    running->Reauthorize();
  });
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
  tlscache::SetUsage(
      "tlscache-server: the distributed TLS session cache service.\n"
      "  tlscache-server [--listen=HOST:PORT] [--store=memory|redis://HOST:PORT[/DB]] ...");
  absl::ParseCommandLine(argc, argv);
  tlscache::RouteGrpcLogs();
  tlscache::DisableMutexDeadlockDetection();
  return tlscache::server::Main();
}
