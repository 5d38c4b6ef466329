#include "server/cache_server.h"

#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/server_builder.h>
#include <netdb.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/channel_tls.h"
#include "common/files.h"
#include "common/grpc_log.h"
#include "common/host_port.h"
#include "common/log.h"
#include "common/openssl_util.h"
#include "common/secret_bytes.h"
#include "server/store/instrumented_store.h"

namespace tlscache::server {
namespace {

constexpr char kServiceName[] = "tlscache.v1.SessionCache";
// At shutdown, how long followers get to move to another replica: a new stream and the
// overlap with the old one (client/session_follower.h) take about a second.
constexpr absl::Duration kHandOverTime = absl::Seconds(3);
// SERVING from start to shutdown whatever the store does: for liveness probes, which must not
// restart a replica because Redis is down.
constexpr char kProcessServiceName[] = "tlscache.v1.Process";
// Room for the namespace, the session ID and the framing around the largest session, so a
// session slightly over the limit gets INVALID_ARGUMENT naming it rather than a transport error.
constexpr int kRequestOverhead = 1024;

// Why `listen` cannot be bound, found by trying as gRPC would; "" when it can be.
std::string BindError(const std::string& listen) {
  absl::StatusOr<HostPort> address = SplitHostPort(listen);
  if (!address.ok()) return "expected HOST:PORT";
  const std::string& host = address->host;
  const std::string port = absl::StrCat(address->port);
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

BioPtr MemoryBio(const std::string& bytes) {
  return BioPtr(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
}

}  // namespace

absl::Status CheckTlsFiles(const ServerTlsOptions& tls) {
  if (absl::Status s = CheckTlsFileSet(TlsEnd::kServer, {"cert_file", !tls.cert_file.empty()},
                                       {"key_file", !tls.key_file.empty()},
                                       {"client_ca_file", !tls.client_ca_file.empty()});
      !s.ok()) {
    return s;
  }
  absl::StatusOr<std::string> cert_pem = ReadSmallFile(tls.cert_file);
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::string> key_pem = ReadSmallFile(tls.key_file);
  if (!key_pem.ok()) return key_pem.status();
  BioPtr cert_bio = MemoryBio(*cert_pem);
  BioPtr key_bio = MemoryBio(*key_pem);  // reads key_pem in place
  X509Ptr cert(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    ConsumeOpenSslErrors();
    return absl::InvalidArgumentError(absl::StrCat(tls.cert_file, ": no PEM certificate in it"));
  }
  PkeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  CleanseString(&*key_pem);
  if (key == nullptr) {
    ConsumeOpenSslErrors();
    return absl::InvalidArgumentError(
        absl::StrCat(tls.key_file, ": no unencrypted PEM private key in it"));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ConsumeOpenSslErrors();
    return absl::InvalidArgumentError(
        absl::StrCat(tls.key_file, ": not the key of the certificate in ", tls.cert_file));
  }
  if (!tls.client_ca_file.empty()) {
    absl::StatusOr<std::string> ca_pem = ReadSmallFile(tls.client_ca_file);
    if (!ca_pem.ok()) return ca_pem.status();
    BioPtr ca_bio = MemoryBio(*ca_pem);
    X509Ptr ca(PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr));
    if (ca == nullptr) {
      ConsumeOpenSslErrors();
      return absl::InvalidArgumentError(
          absl::StrCat(tls.client_ca_file, ": no PEM certificate in it"));
    }
  }
  return absl::OkStatus();
}

namespace {

// When the first of the certificates in the PEM file `path` stops being valid (Unix seconds);
// not ok when there is none. Read at each scrape, so a certificate renewed in place (the
// service reloads its files) shows at once.
absl::StatusOr<double> EarliestNotAfter(const std::string& path) {
  absl::StatusOr<std::string> pem = ReadSmallFile(path);
  if (!pem.ok()) return pem.status();
  BioPtr bio = MemoryBio(*pem);
  std::optional<double> earliest;
  while (X509Ptr cert{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) {
    std::tm tm{};
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &tm) != 1) continue;
    const double not_after = static_cast<double>(timegm(&tm));
    if (!earliest || not_after < *earliest) earliest = not_after;
  }
  ConsumeOpenSslErrors();  // the end of the file reads as an error
  if (!earliest) return absl::InvalidArgumentError(absl::StrCat(path, ": no certificate"));
  return *earliest;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(const ServerTlsOptions& tls) {
  if (tls.cert_file.empty()) return grpc::InsecureServerCredentials();
  if (absl::Status s = CheckTlsFiles(tls); !s.ok()) return s;
  const auto interval =
      static_cast<unsigned int>(std::max<int64_t>(1, absl::ToInt64Seconds(tls.reload_interval)));
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      tls.key_file, tls.cert_file, tls.client_ca_file, interval);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (tls.client_ca_file.empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

FeedOptions FeedOptionsOf(const CacheServerOptions& options) {
  FeedOptions feed;
  // A Follow stream outlives the connection it started on: it moves by itself (handed over,
  // without a gap) at the connection's age.
  feed.max_follow_age = options.max_connection_age;
  feed.handover_grace = options.max_connection_age_grace;
  feed.push_budget = options.push_budget;
  return feed;
}

int ClampedMilliseconds(absl::Duration d) {
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(d), INT_MAX));
}

// Builds and starts a server whose port `listen` was added to `builder`, with `port` the
// variable AddListeningPort fills in. A port that cannot be bound is one error naming why,
// not gRPC's own log lines.
absl::StatusOr<std::unique_ptr<grpc::Server>> BuildAndStart(grpc::ServerBuilder& builder,
                                                            const std::string& listen,
                                                            const int& port) {
  // Without this, gRPC sets SO_REUSEPORT and a second server on the same port would start
  // and silently take half the connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  SetGrpcLogsQuiet(true);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  SetGrpcLogsQuiet(false);
  if (server == nullptr || port == 0) {
    std::string why = BindError(listen);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", listen, why.empty() ? "" : ": ", why));
  }
  return server;
}

}  // namespace

CacheServer::CacheServer(const CacheServerOptions& options, std::unique_ptr<Store> store)
    : options_(options),
      rpc_metrics_(metrics_),
      store_(InstrumentStore(std::move(store), metrics_)),
      feed_(store_.get(), FeedOptionsOf(options), &metrics_),
      service_(store_.get(), options.service, &feed_),
      ticket_keys_(store_.get(), options.ticket_keys),
      admin_(options.admin_authz, [this] { return CollectStats(); }) {}

absl::StatusOr<std::unique_ptr<CacheServer>> CacheServer::Start(const CacheServerOptions& options,
                                                                std::unique_ptr<Store> store) {
  if (options.service.max_session_bytes > INT_MAX - kRequestOverhead) {
    return absl::InvalidArgumentError("max session bytes is too large");
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = Credentials(options.tls);
  if (!credentials.ok()) return credentials.status();
  std::unique_ptr<CacheServer> server(new CacheServer(options, std::move(store)));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, *credentials, &server->port_);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, options.max_metadata_bytes);
  if (options.max_connection_age > absl::ZeroDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               ClampedMilliseconds(options.max_connection_age));
    // Unary calls end well within the grace, and Follow streams are handed over by the feed
    // (a stream that started late in its connection's life moves up to 1.2 ages after the
    // connection was told to go, and is ended a grace after that). The connection itself is
    // closed only after twice the age and grace, for a client that moves nothing.
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
        ClampedMilliseconds(2 * (options.max_connection_age + options.max_connection_age_grace)));
  }
  // No bandwidth probes on the small messages of calls and streams: see client/cache_client.cc.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  // Clients ping every 10 s while they have calls open (client/cache_client.cc): allowed.
  // And this side pings too, so that a process that vanished (its host lost) lets go of its
  // Follow stream within a minute.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder.RegisterService(&server->service_);
  builder.RegisterService(&server->ticket_keys_);
  builder.RegisterService(&server->admin_);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(RpcMetricsInterceptors(&server->rpc_metrics_));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  // A unary Put is one session; a Follow request a batch of them (up to
  // kMaxFollowRequestBytes). Larger sessions still get INVALID_ARGUMENT naming the limit.
  builder.SetMaxReceiveMessageSize(
      std::max(static_cast<int>(options.service.max_session_bytes), kMaxFollowRequestBytes) +
      kRequestOverhead);
  absl::StatusOr<std::unique_ptr<grpc::Server>> started =
      BuildAndStart(builder, options.listen, server->port_);
  if (!started.ok()) return started.status();
  server->server_ = *std::move(started);
  // From here on, an error return shuts down what started (the destructor).
  if (!options.health_listen.empty()) {
    grpc::ServerBuilder health_builder;
    health_builder.AddListeningPort(options.health_listen, grpc::InsecureServerCredentials(),
                                    &server->health_port_);
    started = BuildAndStart(health_builder, options.health_listen, server->health_port_);
    if (!started.ok()) return started.status();
    server->health_server_ = *std::move(started);
  }
  server->AddServerMetrics();
  if (!options.metrics_listen.empty()) {
    CacheServer* s = server.get();
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> http = MetricsHttpServer::Start(
        options.metrics_listen, &server->metrics_, [s] { return s->serving_.load(); });
    if (!http.ok()) return http.status();
    server->metrics_http_ = *std::move(http);
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
  serving_ = serving;
  for (grpc::Server* s : {server_.get(), health_server_.get()}) {
    if (s == nullptr) continue;
    grpc::HealthCheckServiceInterface* health = s->GetHealthCheckService();
    health->SetServingStatus("", serving);
    health->SetServingStatus(kServiceName, serving);
    health->SetServingStatus(kProcessServiceName, true);
  }
}

v1::Stats CacheServer::CollectStats() const {
  v1::Stats stats;
  stats.set_store(store_->Describe());
  stats.set_serving(serving_.load());
  stats.set_uptime_seconds(absl::ToDoubleSeconds(absl::Now() - started_));
  stats.set_hits(rpc_metrics_.hits->Value({}));
  stats.set_misses(rpc_metrics_.misses->Value({}));
  for (const auto& [labels, count] : rpc_metrics_.requests->Snapshot()) {
    v1::Stats::RequestCount* request = stats.add_requests();
    request->set_method(labels[0]);
    request->set_code(labels[1]);
    request->set_count(count);
  }
  StoreStats store;
  store_->AddStats(&store);
  if (store.entries) stats.set_memory_entries(*store.entries);
  if (store.bytes) stats.set_memory_bytes(*store.bytes);
  if (store.redis_connects) stats.set_redis_connects(*store.redis_connects);
  if (store.redis_errors) stats.set_redis_errors(*store.redis_errors);
  if (store.redis_redirects) stats.set_redis_redirects(*store.redis_redirects);
  if (store.open_failures) stats.set_sealed_open_failures(*store.open_failures);
  const int64_t now = absl::ToUnixMillis(absl::Now());
  for (const auto& served : ticket_keys_.ServedRings()) {
    v1::Stats::Ring* ring = stats.add_rings();
    ring->set_namespace_(served.ns);
    ring->set_version(served.version);
    ring->set_active_key_age_seconds(static_cast<double>(now - served.active_since_unix_ms) / 1e3);
  }
  return stats;
}

void CacheServer::AddServerMetrics() {
  using Samples = std::vector<Metrics::GaugeSample>;
  metrics_.AddGauge("tlscache_serving", "1 while the service is SERVING (its store answers)", {},
                    [this] {
                      return Samples{{{}, serving_.load() ? 1.0 : 0.0}};
                    });
  StoreStats present;
  store_->AddStats(&present);
  if (present.entries) {
    metrics_.AddGauge("tlscache_memory_store_entries", "sessions in the memory store", {},
                      StoreStatReader(&StoreStats::entries));
    metrics_.AddGauge("tlscache_memory_store_bytes", "bytes the memory store accounts for", {},
                      StoreStatReader(&StoreStats::bytes));
  }
  if (present.redis_connects) {
    metrics_.AddCounterReader("tlscache_redis_connects_total",
                              "Redis connections opened, reconnects included",
                              StoreStatReader(&StoreStats::redis_connects));
    metrics_.AddCounterReader("tlscache_redis_errors_total",
                              "failed Redis connects and connections dropped after an error",
                              StoreStatReader(&StoreStats::redis_errors));
  }
  if (present.redis_unreplicated) {
    metrics_.AddCounterReader(
        "tlscache_redis_unreplicated_total",
        "deletions and consuming lookups failed because no Redis replica confirmed them in "
        "time (a failover could undo them; deletions are sent again)",
        StoreStatReader(&StoreStats::redis_unreplicated));
  }
  if (present.redis_redirects) {
    metrics_.AddCounterReader("tlscache_redis_redirects_total",
                              "Redis Cluster MOVED and ASK replies followed to another master",
                              StoreStatReader(&StoreStats::redis_redirects));
  }
  if (present.redis_connects) AddRedisHealthMetrics();
  if (!options_.tls.cert_file.empty()) {
    metrics_.AddGauge(
        "tlscache_tls_certificate_expiry_timestamp_seconds",
        "when the service's certificate (file=\"cert\") and the first of its client CAs "
        "(file=\"client_ca\") expire (Unix time), read from the files at each scrape",
        {"file"}, [this] {
          Samples samples;
          for (const auto& [label, path] :
               {std::pair<const char*, const std::string*>{"cert", &options_.tls.cert_file},
                {"client_ca", &options_.tls.client_ca_file}}) {
            if (path->empty()) continue;
            if (absl::StatusOr<double> when = EarliestNotAfter(*path); when.ok()) {
              samples.push_back({{label}, *when});
            }
          }
          return samples;
        });
  }
  if (present.open_failures) {
    metrics_.AddCounterReader("tlscache_sealed_open_failures_total",
                              "stored values that did not open (tampered, moved, unknown key)",
                              StoreStatReader(&StoreStats::open_failures));
  }
  metrics_.AddGauge("tlscache_ticket_ring_version", "version of each namespace's ticket key ring",
                    {"namespace"}, [this] {
                      Samples samples;
                      for (const auto& ring : ticket_keys_.ServedRings()) {
                        samples.push_back({{ring.ns}, static_cast<double>(ring.version)});
                      }
                      return samples;
                    });
  metrics_.AddGauge(
      "tlscache_ticket_key_age_seconds",
      "how long each namespace's ACTIVE ticket key has been encrypting", {"namespace"}, [this] {
        Samples samples;
        const int64_t now = absl::ToUnixMillis(absl::Now());
        for (const auto& ring : ticket_keys_.ServedRings()) {
          samples.push_back(
              {{ring.ns}, static_cast<double>(now - ring.active_since_unix_ms) / 1e3});
        }
        return samples;
      });
  AddRotationBarrierMetrics();
}

Metrics::GaugeReader CacheServer::StoreStatReader(std::optional<uint64_t> StoreStats::*field) {
  // Reads what the store has now; a field the store does not keep (yet) gives no sample.
  return [this, field] {
    StoreStats stats;
    store_->AddStats(&stats);
    const std::optional<uint64_t>& value = stats.*field;
    return value ? std::vector<Metrics::GaugeSample>{{{}, static_cast<double>(*value)}}
                 : std::vector<Metrics::GaugeSample>{};
  };
}

void CacheServer::AddRedisHealthMetrics() {
  // What the master (and the sentinels) said at the store's last look, every few seconds; no
  // sample before the first.
  const struct {
    const char* name;
    const char* help;
    std::optional<uint64_t> StoreStats::*field;
    bool counter;
  } kHealth[] = {
      {"tlscache_redis_master_replicas", "replicas connected to the Redis master",
       &StoreStats::redis_master_replicas, false},
      {"tlscache_redis_master_good_replicas",
       "replicas that confirmed the master's stream within min-replicas-max-lag (below "
       "min-replicas-to-write, the master refuses writes)",
       &StoreStats::redis_master_good_replicas, false},
      {"tlscache_redis_evicted_keys_total",
       "keys the Redis master evicted for maxmemory since it started",
       &StoreStats::redis_evicted_keys, true},
      {"tlscache_redis_aof_ok", "1 while the master's last append-only file write and rewrite "
       "succeeded", &StoreStats::redis_aof_ok, false},
      {"tlscache_redis_memory_used_bytes", "memory the Redis master uses",
       &StoreStats::redis_used_memory, false},
      {"tlscache_redis_memory_max_bytes", "the Redis master's maxmemory (0: none)",
       &StoreStats::redis_maxmemory, false},
      {"tlscache_redis_sentinels", "sentinels the store was given",
       &StoreStats::redis_sentinels, false},
      {"tlscache_redis_sentinels_agreeing",
       "sentinels naming the master a majority names (0: no majority; the store does not "
       "write)", &StoreStats::redis_sentinels_agreeing, false},
      {"tlscache_redis_master_changes_total",
       "changes of the master a majority of the sentinels names (failovers, a majority lost "
       "or regained)", &StoreStats::redis_master_changes, true},
  };
  for (const auto& metric : kHealth) {
    if (metric.counter) {
      metrics_.AddCounterReader(metric.name, metric.help, StoreStatReader(metric.field));
    } else {
      metrics_.AddGauge(metric.name, metric.help, {}, StoreStatReader(metric.field));
    }
  }
}

void CacheServer::AddRotationBarrierMetrics() {
  using Samples = std::vector<Metrics::GaugeSample>;
  using Figures = RotationBarrier::Figures;
  // One gauge per figure of RotationBarrier, per namespace.
  auto figure = [this](double (*read)(const Figures&)) {
    return [this, read] {
      Samples samples;
      for (const auto& [ns, f] : ticket_keys_.barrier().figures(absl::Now())) {
        samples.push_back({{ns}, read(f)});
      }
      return samples;
    };
  };
  metrics_.AddGauge("tlscache_ticket_followers",
                    "followers of each namespace's ticket key ring whose lease runs", {"namespace"},
                    figure([](const Figures& f) { return static_cast<double>(f.live); }));
  metrics_.AddGauge(
      "tlscache_ticket_followers_lagging",
      "live followers holding an older ring than the one served (seen at the last rotation or "
      "re-read)",
      {"namespace"}, figure([](const Figures& f) { return static_cast<double>(f.lagging); }));
  metrics_.AddGauge(
      "tlscache_ticket_rotation_held_seconds",
      "how long a due rotation has been waiting for followers that lag; 0 when none is",
      {"namespace"}, figure([](const Figures& f) { return absl::ToDoubleSeconds(f.held); }));
  metrics_.AddGauge(
      "tlscache_ticket_rotation_wait_seconds",
      "how long the last rotation waited for every follower to hold its PENDING key",
      {"namespace"}, figure([](const Figures& f) { return absl::ToDoubleSeconds(f.last_wait); }));
  metrics_.AddCounterReader(
      "tlscache_ticket_followers_left_behind_total",
      "rotations that went ahead without a follower that lagged: its lease ended "
      "(reason=lease_ended) or --ticket_barrier_timeout passed (reason=timeout)",
      [this] {
        Samples samples;
        for (const auto& [who, count] : ticket_keys_.barrier().left_behind()) {
          samples.push_back({{who.ns, who.follower, who.reason}, static_cast<double>(count)});
        }
        return samples;
      },
      {"namespace", "follower", "reason"});
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
    feed_.Tick(absl::Now());
  }
}

void CacheServer::Reauthorize() {
  feed_.ReauthorizeAll();
  ticket_keys_.ReauthorizeWatches();
}

void CacheServer::Shutdown(absl::Duration grace) {
  shut_down_ = true;
  stop_monitor_.Notify();
  if (monitor_.joinable()) monitor_.join();
  // NOT_SERVING for good: the health service ignores later changes once shut down.
  server_->GetHealthCheckService()->Shutdown();
  if (health_server_ != nullptr) health_server_->GetHealthCheckService()->Shutdown();
  // Every client connection is told to go (GOAWAY) at once: new calls go to other
  // replicas, calls in flight get the grace.
  const absl::Time deadline = absl::Now() + grace;
  std::thread shutdown([this, deadline] { server_->Shutdown(absl::ToChronoTime(deadline)); });
  // Long-lived streams would hold the shutdown to its deadline. The ticket key watches end
  // (a process keeps its ring and watches again elsewhere); the followers move first to
  // another replica, so their near caches miss nothing, and those still here after a few
  // seconds (no other replica to go to) are ended.
  ticket_keys_.StopWatches();
  const size_t followers = feed_.followers();
  if (followers > 0) {
    const absl::Time start = absl::Now();
    feed_.HandOverAll(std::min(grace, kHandOverTime));
    const size_t stayed = feed_.followers();
    LogInfo("%d of %d Follow streams moved to another replica in %s%s", followers - stayed,
            followers, absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1))),
            stayed == 0 ? "" : " (the others end now: their processes have no other replica)");
  }
  feed_.StopAll();
  shutdown.join();
  server_->Wait();
  if (health_server_ != nullptr) health_server_->Shutdown(absl::ToChronoTime(absl::Now()));
  metrics_http_.reset();
}

}  // namespace tlscache::server
