#include "bench/tls_load.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/openssl_util.h"
#include "bench/report.h"

namespace tlscache::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kMaxConcurrency = 4096;
constexpr char kRequest[] = "GET / HTTP/1.0\r\nHost: tlscache-bench\r\n\r\n";
// A reply larger than this is read no further: only its first bytes matter.
constexpr size_t kMaxReplyBytes = 1 << 20;

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  const int fd_;
};

class TlsLoad {
 public:
  explicit TlsLoad(const TlsLoadOptions& options) : options_(options) {}

  absl::StatusOr<TlsLoadResult> Run();

 private:
  // One client: connects again and again until the end; `result` is its own.
  void Client(TlsLoadResult* result);
  // One connection. Not ok: why it failed. `session` is offered, and replaced by the newest.
  struct Address {
    sockaddr_storage storage{};
    socklen_t len = 0;
  };
  // `made_here`: the session offered was made by this target.
  absl::Status Connect(const Address& address, bool made_here, SslSessionPtr* session,
                       TlsLoadResult* result);
  std::string ProgressLine(absl::Duration elapsed);

  const TlsLoadOptions options_;
  std::vector<Address> addresses_;  // the targets, in turn
  SslCtxPtr ctx_;
  Clock::time_point end_;
  std::atomic<uint64_t> handshakes_{0};
  std::atomic<uint64_t> resumed_{0};
  std::atomic<uint64_t> failures_{0};
  uint64_t last_handshakes_ = 0;  // the progress thread's
};

absl::StatusOr<TlsLoadResult> TlsLoad::Run() {
  const TlsLoadOptions& o = options_;
  if (absl::Status s = CheckWithin("concurrency", o.concurrency, 1, kMaxConcurrency); !s.ok()) {
    return s;
  }
  std::vector<std::pair<std::string, int>> targets = {{o.host, o.port}};
  targets.insert(targets.end(), o.more_targets.begin(), o.more_targets.end());
  for (const auto& [host, port] : targets) {
    if (port < 1 || port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("port ", port, " is out of range"));
    }
  }
  if (o.tls_version != TLS1_2_VERSION && o.tls_version != TLS1_3_VERSION) {
    return absl::InvalidArgumentError("the TLS version must be 1.2 or 1.3");
  }
  if (o.duration <= absl::ZeroDuration() || o.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("duration and timeout must be positive");
  }
  if (o.pause < absl::ZeroDuration()) return absl::InvalidArgumentError("pause is negative");
  if (!o.chains.empty() && o.chains.size() != targets.size()) {
    return absl::InvalidArgumentError(absl::StrCat(o.chains.size(), " chains for ",
                                                   targets.size(), " targets: one each"));
  }
  for (const int chain : o.chains) {
    const int64_t last = static_cast<int64_t>(targets.size()) - 1;
    if (absl::Status s = CheckWithin("chain", chain, 0, last); !s.ok()) return s;
  }
  for (const auto& [host, port] : targets) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int gai = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
    if (gai != 0) return absl::InvalidArgumentError(absl::StrCat(host, ": ", gai_strerror(gai)));
    Address address;
    std::memcpy(&address.storage, found->ai_addr, found->ai_addrlen);
    address.len = found->ai_addrlen;
    addresses_.push_back(address);
    freeaddrinfo(found);
  }

  ctx_.reset(SSL_CTX_new(TLS_client_method()));
  if (ctx_ == nullptr) return absl::InternalError(ConsumeOpenSslErrors());
  SSL_CTX_set_min_proto_version(ctx_.get(), o.tls_version);
  SSL_CTX_set_max_proto_version(ctx_.get(), o.tls_version);
  SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_NONE, nullptr);  // a load, not a trust decision
  // Servers that close without close_notify still completed their reply.
  SSL_CTX_set_options(ctx_.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
  // A server that closes first must not kill the process with SIGPIPE on our close_notify.
  signal(SIGPIPE, SIG_IGN);

  std::vector<TlsLoadResult> results(o.concurrency);
  const Clock::time_point start = Clock::now();
  end_ = start + absl::ToChronoNanoseconds(o.duration);
  {
    std::optional<Progress> progress;
    if (o.progress) progress.emplace([this](absl::Duration d) { return ProgressLine(d); });
    std::vector<std::thread> clients;
    for (TlsLoadResult& result : results) {
      clients.emplace_back([this, &result] { Client(&result); });
    }
    for (std::thread& client : clients) client.join();
  }
  TlsLoadResult total;
  total.elapsed = absl::FromChrono(Clock::now() - start);
  for (const TlsLoadResult& r : results) total.Merge(r);
  return total;
}

void TlsLoad::Client(TlsLoadResult* result) {
  // Each chain's newest session, and which target made it.
  std::vector<SslSessionPtr> sessions(addresses_.size());
  std::vector<size_t> made_by(addresses_.size(), 0);
  uint64_t next = 0;
  while (Clock::now() < end_) {
    const size_t target = next++ % addresses_.size();
    const size_t chain = options_.chains.empty() ? 0 : options_.chains[target];
    SslSessionPtr& session = sessions[chain];
    const absl::Status status =
        Connect(addresses_[target], made_by[chain] == target, &session, result);
    made_by[chain] = target;
    if (!status.ok()) {
      ++result->failures;
      failures_.fetch_add(1, std::memory_order_relaxed);
      if (result->first_error.empty()) result->first_error = std::string(status.message());
      session.reset();
    }
    ERR_clear_error();
    if (options_.pause > absl::ZeroDuration()) absl::SleepFor(options_.pause);
  }
}

absl::Status TlsLoad::Connect(const Address& address, bool made_here, SslSessionPtr* session,
                              TlsLoadResult* result) {
  const Clock::time_point started = Clock::now();
  FileDescriptor fd(socket(address.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
  if (fd.get() < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  const timeval timeout = absl::ToTimeval(options_.timeout);
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  // As browsers do: the request written right after Finished must not wait for an ACK.
  const int one = 1;
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&address.storage), address.len) != 0) {
    return absl::UnavailableError(absl::StrCat("connect: ", std::strerror(errno)));
  }
  SslPtr ssl(SSL_new(ctx_.get()));
  if (ssl == nullptr || SSL_set_fd(ssl.get(), fd.get()) != 1) {
    return absl::InternalError(absl::StrCat("SSL_new: ", ConsumeOpenSslErrors()));
  }
  if (!options_.server_name.empty()) {
    SSL_set_tlsext_host_name(ssl.get(), options_.server_name.c_str());
  }
  const bool offered = options_.resume && *session != nullptr;
  if (offered) SSL_set_session(ssl.get(), session->get());
  if (SSL_connect(ssl.get()) != 1) {
    return absl::UnavailableError(absl::StrCat("handshake: ", ConsumeOpenSslErrors()));
  }
  const absl::Duration latency = absl::FromChrono(Clock::now() - started);
  const bool resumed = SSL_session_reused(ssl.get()) == 1;

  const int request_len = static_cast<int>(sizeof(kRequest) - 1);
  if (SSL_write(ssl.get(), kRequest, request_len) != request_len) {
    return absl::UnavailableError(absl::StrCat("request: ", ConsumeOpenSslErrors()));
  }
  char buffer[16384];
  size_t reply_len = 0;
  while (reply_len < kMaxReplyBytes) {
    const int n = SSL_read(ssl.get(), buffer, sizeof(buffer));
    if (n <= 0) break;
    reply_len += static_cast<size_t>(n);
  }
  if (reply_len == 0) return absl::UnavailableError("no reply to the request");
  SSL_shutdown(ssl.get());

  ++result->handshakes;
  result->latency.Record(latency);
  if (offered) ++result->offered;
  if (resumed) {
    ++result->resumed;
    result->resumed_latency.Record(latency);
    if (made_here) {
      ++result->resumed_here;
      result->resumed_here_latency.Record(latency);
    } else {
      ++result->resumed_elsewhere;
      result->resumed_elsewhere_latency.Record(latency);
    }
    resumed_.fetch_add(1, std::memory_order_relaxed);
  } else {
    result->full_latency.Record(latency);
  }
  handshakes_.fetch_add(1, std::memory_order_relaxed);
  // The newest session: under TLS 1.3, the last ticket received with the reply.
  SslSessionPtr newest(SSL_get1_session(ssl.get()));
  if (newest != nullptr && SSL_SESSION_is_resumable(newest.get())) *session = std::move(newest);
  return absl::OkStatus();
}

std::string TlsLoad::ProgressLine(absl::Duration elapsed) {
  const uint64_t handshakes = handshakes_.load(std::memory_order_relaxed);
  const uint64_t last_second = handshakes - last_handshakes_;
  last_handshakes_ = handshakes;
  const uint64_t resumed = resumed_.load(std::memory_order_relaxed);
  return absl::StrFormat("tls %s:%d: %3.0fs  %d handshakes/s  %d handshakes  %.1f%% resumed  "
                         "%d failures",
                         options_.host, options_.port, absl::ToDoubleSeconds(elapsed), last_second,
                         handshakes, handshakes == 0 ? 0.0 : 100.0 * resumed / handshakes,
                         failures_.load(std::memory_order_relaxed));
}

}  // namespace

void TlsLoadResult::Merge(const TlsLoadResult& other) {
  handshakes += other.handshakes;
  offered += other.offered;
  resumed += other.resumed;
  failures += other.failures;
  latency.Merge(other.latency);
  resumed_latency.Merge(other.resumed_latency);
  full_latency.Merge(other.full_latency);
  resumed_here += other.resumed_here;
  resumed_elsewhere += other.resumed_elsewhere;
  resumed_here_latency.Merge(other.resumed_here_latency);
  resumed_elsewhere_latency.Merge(other.resumed_elsewhere_latency);
  if (first_error.empty()) first_error = other.first_error;
}

absl::StatusOr<TlsLoadResult> RunTlsLoad(const TlsLoadOptions& options) {
  return TlsLoad(options).Run();
}

}  // namespace tlscache::bench
