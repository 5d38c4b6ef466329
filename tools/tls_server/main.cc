// tlscache-tls-server: a small TLS server on the tlscache OpenSSL plugin, for tests, the demo
// and benchmarks. It answers whatever a client sends with "HTTP/1.0 200 OK", naming the node
// and process that served it and whether the session was resumed, then closes.
//
// Without --tlscache it uses only OpenSSL's own session cache: the baseline a farm has today.
// With --workers=N it attaches tlscache in the parent and serves from N forked processes, as
// pre-fork servers (nginx, Apache) do.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/host_port.h"
#include "common/log.h"
#include "common/openssl_util.h"
#include "common/signals.h"
#include "common/usage.h"
#include "tlscache/openssl.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:8443", "IPv4:PORT to serve TLS on");
ABSL_FLAG(std::string, cert, "", "certificate chain (PEM)");
ABSL_FLAG(std::string, key, "", "private key (PEM)");
ABSL_FLAG(std::string, tlscache, "", "tlscache plugin config, e.g. addr=127.0.0.1:7700");
ABSL_FLAG(std::string, name, "", "node name reported to clients (default: the listen address)");
ABSL_FLAG(int32_t, threads, 8, "connections served at once per process");
ABSL_FLAG(int32_t, workers, 0, "pre-forked worker processes (0: serve from this process)");
ABSL_FLAG(int32_t, max_early_data, 0, "TLS 1.3 early data accepted per connection (0: none)");
ABSL_FLAG(int32_t, session_timeout, 300, "session lifetime in seconds");
ABSL_FLAG(int32_t, internal_cache_size, 0,
          "the most sessions OpenSSL's own cache holds (0: its default, 20480); past it the "
          "least recently used are evicted");
ABSL_FLAG(bool, internal_cache, true,
          "keep sessions in OpenSSL's own cache too (false: with --tlscache, every resumption "
          "is a lookup in the farm, as on a node that did not make the session)");

namespace tlscache {
namespace {

constexpr int kIoTimeoutSeconds = 5;

int Fatal(const std::string& message) {
  std::fprintf(stderr, "tlscache-tls-server: %s\n", message.c_str());
  return 1;
}

int Listen(const std::string& address, std::string* error) {
  absl::StatusOr<HostPort> parsed = SplitHostPort(address);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  if (!parsed.ok() || inet_pton(AF_INET, parsed->host.c_str(), &addr.sin_addr) != 1) {
    *error = absl::StrCat("--listen=", address, ": expected IPv4:PORT");
    return -1;
  }
  addr.sin_port = htons(static_cast<uint16_t>(parsed->port));
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 512) != 0) {
    *error = absl::StrCat("--listen=", address, ": ", std::strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

void Serve(SSL_CTX* ctx, int fd, const std::string& name) {
  timeval timeout{kIoTimeoutSeconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  SslPtr ssl(SSL_new(ctx));
  if (ssl == nullptr || SSL_set_fd(ssl.get(), fd) != 1) return;
  char request[4096];
  size_t request_len = 0;
  if (SSL_get_max_early_data(ssl.get()) > 0) {
    // 0-RTT: take what the client sent early, then finish the handshake.
    while (true) {
      size_t n = 0;
      const int r =
          SSL_read_early_data(ssl.get(), request + request_len, sizeof(request) - request_len, &n);
      request_len += n;
      if (r == SSL_READ_EARLY_DATA_ERROR) return;
      if (r == SSL_READ_EARLY_DATA_FINISH || request_len == sizeof(request)) break;
    }
  }
  if (SSL_accept(ssl.get()) != 1) {
    ERR_clear_error();
    return;
  }
  if (request_len == 0) {
    const int n = SSL_read(ssl.get(), request, sizeof(request));
    if (n <= 0) {
      // The client went away without a request (openssl s_time resets the connection right
      // after its handshake). The handshake completed, so the session is good: end the
      // connection quietly, or OpenSSL would drop the session as bad (and tlscache would
      // delete it from the farm). nginx does the same.
      SSL_set_shutdown(ssl.get(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
      ERR_clear_error();
      return;
    }
  }
  const bool resumed = SSL_session_reused(ssl.get()) == 1;
  const std::string body =
      absl::StrFormat("node %s pid %d %s %s\n", name, getpid(), SSL_get_version(ssl.get()),
                      resumed ? "resumed" : "full");
  const std::string response =
      absl::StrCat("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n",
                   "X-Tlscache-Node: ", name, "\r\nX-Tlscache-Pid: ", getpid(),
                   "\r\nX-Tlscache-Resumed: ", resumed ? "1" : "0",
                   "\r\nContent-Length: ", body.size(), "\r\n\r\n", body);
  SSL_write(ssl.get(), response.data(), static_cast<int>(response.size()));
  SSL_shutdown(ssl.get());
  ERR_clear_error();
}

void AcceptLoop(SSL_CTX* ctx, int listen_fd, const std::string& name) {
  while (true) {
    const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) {
        continue;
      }
      return;
    }
    Serve(ctx, fd, name);
    close(fd);
  }
}

// Serves with `threads` threads until SIGTERM or SIGINT, which this thread waits for.
void ServeProcess(SSL_CTX* ctx, int listen_fd, const std::string& name, int threads,
                  const sigset_t& signals) {
  // In the process that serves (each worker, after fork): connect before the first client.
  if (!absl::GetFlag(FLAGS_tlscache).empty()) tlscache_prepare(ctx);
  for (int i = 0; i < threads; ++i) {
    std::thread([ctx, listen_fd, name] { AcceptLoop(ctx, listen_fd, name); }).detach();
  }
  WaitForTermination(signals);
  // What this process's handshakes asked of the cache, for whoever reads the log at the end.
  if (absl::GetFlag(FLAGS_tlscache).empty()) return;
  if (const char* stats = tlscache_stats(nullptr)) LogInfo("pid %d tlscache: %s", getpid(), stats);
}

int Main() {
  const std::string listen_addr = absl::GetFlag(FLAGS_listen);
  const std::string name =
      absl::GetFlag(FLAGS_name).empty() ? listen_addr : absl::GetFlag(FLAGS_name);
  const int threads = absl::GetFlag(FLAGS_threads);
  const int workers = absl::GetFlag(FLAGS_workers);
  if (absl::GetFlag(FLAGS_cert).empty() || absl::GetFlag(FLAGS_key).empty()) {
    return Fatal("--cert and --key are required");
  }
  if (threads < 1 || threads > 1024) return Fatal("--threads: must be between 1 and 1024");
  if (workers < 0 || workers > 64) return Fatal("--workers: must be between 0 and 64");
  if (absl::GetFlag(FLAGS_max_early_data) < 0) return Fatal("--max_early_data: negative");
  if (absl::GetFlag(FLAGS_session_timeout) < 1) return Fatal("--session_timeout: must be >= 1");

  const sigset_t signals = BlockTerminationSignals();  // before any thread exists

  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (ctx == nullptr) return Fatal(ConsumeOpenSslErrors());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // A client that closes without close_notify (many do, openssl s_time among them) ends the
  // connection, not the session: otherwise OpenSSL 3 drops the session as bad (and tlscache
  // would delete it from the farm). nginx sets the same.
  SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), absl::GetFlag(FLAGS_cert).c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx.get(), absl::GetFlag(FLAGS_key).c_str(), SSL_FILETYPE_PEM) !=
          1 ||
      SSL_CTX_check_private_key(ctx.get()) != 1) {
    return Fatal(absl::StrCat("--cert/--key: ", ConsumeOpenSslErrors()));
  }
  SSL_CTX_set_timeout(ctx.get(), absl::GetFlag(FLAGS_session_timeout));
  SSL_CTX_set_max_early_data(ctx.get(), absl::GetFlag(FLAGS_max_early_data));
  if (absl::GetFlag(FLAGS_internal_cache_size) < 0) {
    return Fatal("--internal_cache_size: must not be negative");
  }
  if (absl::GetFlag(FLAGS_internal_cache_size) > 0) {
    SSL_CTX_sess_set_cache_size(ctx.get(), absl::GetFlag(FLAGS_internal_cache_size));
  }
  if (!absl::GetFlag(FLAGS_internal_cache)) {
    SSL_CTX_set_session_cache_mode(
        ctx.get(), SSL_CTX_get_session_cache_mode(ctx.get()) | SSL_SESS_CACHE_NO_INTERNAL);
  }
  const std::string config = absl::GetFlag(FLAGS_tlscache);
  if (!config.empty() && tlscache_attach(ctx.get(), config.c_str()) != 1) {
    return Fatal(absl::StrCat("--tlscache: ", tlscache_last_error()));
  }

  std::string error;
  const int listen_fd = Listen(listen_addr, &error);
  if (listen_fd < 0) return Fatal(error);
  LogInfo("tlscache-tls-server %s listening on %s, tlscache %s, %d worker processes", name,
          listen_addr, config.empty() ? "off" : "on", workers);

  if (workers == 0) {
    ServeProcess(ctx.get(), listen_fd, name, threads, signals);
    return 0;
  }
  // One near cache and one follower for the node, shared by the workers forked below.
  if (!config.empty() && tlscache_prepare_node(config.c_str()) != 1) {
    LogWarning("tlscache-tls-server %s: %s (each worker keeps a near cache of its own)", name,
               tlscache_last_error());
  }
  std::vector<pid_t> children;
  for (int i = 0; i < workers; ++i) {
    const pid_t pid = fork();
    if (pid < 0) return Fatal(absl::StrCat("fork: ", std::strerror(errno)));
    if (pid == 0) {
      ServeProcess(ctx.get(), listen_fd, name, threads, signals);
      _exit(0);
    }
    children.push_back(pid);
  }
  WaitForTermination(signals);
  for (pid_t child : children) kill(child, SIGTERM);
  for (pid_t child : children) waitpid(child, nullptr, 0);
  return 0;
}

}  // namespace
}  // namespace tlscache

int main(int argc, char** argv) {
  tlscache::SetUsage(
      "tlscache-tls-server --listen=IP:PORT --cert=PEM --key=PEM [--tlscache=CONFIG]");
  absl::ParseCommandLine(argc, argv);
  const int code = tlscache::Main();
  // Serving threads are detached and blocked in accept(): leave without unwinding them.
  std::fflush(nullptr);
  _exit(code);
}
