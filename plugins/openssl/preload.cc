// libtlscache_preload.so: tlscache for unmodified, dynamically linked TLS servers.
//
//   LD_PRELOAD=/path/libtlscache_preload.so TLSCACHE_ADDR=cache:7700 nginx
//
// It interposes the two calls by which a server puts a connection on the server side of TLS,
// SSL_set_accept_state and SSL_accept, and on a connection's first one attaches tlscache to
// the SSL_CTX it was created on (once per context, after the application configured it),
// gives that connection what tlscache set on the context (SSL_new copied the context's
// settings before), and connects the process to the cache at once. A context a server moves
// a connection to (SSL_set_SSL_CTX: an SNI-selected server block) is attached as it is
// chosen, before the server copies its settings to the connection, so that each block keeps
// its own. And it watches the calls by which a server configures session ticket keys of its
// own (a key callback, or keys): such keys stay, unless TLSCACHE_TICKETS=farm; keys OpenSSL
// drew for the node alone are replaced by the farm's key ring. So:
//   - client-side contexts (a proxy's upstream connections) are never touched;
//   - a context whose server turned session caching off stays out of the farm;
//   - the application's own session cache callbacks stay the first tier;
//   - nothing runs in a master process that only configures and forks: the first
//     connection, hence the first gRPC state, is in a worker.
// Without TLSCACHE_ADDR it changes nothing; a bad TLSCACHE_* variable leaves the server running
// without tlscache. Either is said once on stderr.
#include <dlfcn.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "client/ticket_key_reporter.h"
#include "common/textfile.h"
#include "common/threads.h"
#include "plugins/openssl/config.h"
#include "plugins/openssl/plugin.h"

extern char** environ;

namespace tlscache::openssl {
namespace {

void Say(const std::string& message) {
  std::fprintf(stderr, "tlscache preload: %s\n", message.c_str());
  std::fflush(stderr);
}

// The configuration from the environment, read once per process image.
const PluginConfig* Config() {
  static const PluginConfig* const config = []() -> const PluginConfig* {
    absl::StatusOr<PluginConfig> parsed = PluginConfigFromEnvironment(environ);
    if (absl::IsNotFound(parsed.status())) {
      Say("TLSCACHE_ADDR is not set: this process runs without tlscache");
      return nullptr;
    }
    if (!parsed.ok()) {
      Say(absl::StrCat(parsed.status().message(), ": this process runs without tlscache"));
      return nullptr;
    }
    return new PluginConfig(*std::move(parsed));
  }();
  return config;
}

// With TLSCACHE_STATS_INTERVAL, one line of this process's counters every interval; with
// TLSCACHE_METRICS_FILE, the same counters in the process's textfile every few seconds. From
// a thread started in each process that serves connections (a forked worker starts its own).
// The thread is the library's: it stops, and is joined, when the process that started it
// exits (a forked child has no such thread, and leaves its parent's alone); its textfile goes
// with it.
class Reporter {
 public:
  static void StartIn(pid_t pid, const PluginConfig& config) {
    static std::mutex mu;
    static Reporter* current = nullptr;  // the one of this process, if it has one
    std::lock_guard<std::mutex> lock(mu);
    if (current != nullptr && current->pid_ == pid) return;
    current = new Reporter(pid, config);  // a parent's, inherited, is left as it is
    static std::once_flag registered;
    std::call_once(registered, [] {
      std::atexit([] {
        std::lock_guard<std::mutex> at_exit(mu);
        if (current != nullptr && current->pid_ == getpid()) current->Stop();
      });
    });
  }

 private:
  static constexpr absl::Duration kTextfileInterval = absl::Seconds(5);

  Reporter(pid_t pid, const PluginConfig& config)
      : pid_(pid), textfile_(ProcessTextfile(config.metrics_file, pid)) {
    const absl::Duration line_interval = config.stats_interval > absl::ZeroDuration()
                                             ? config.stats_interval
                                             : absl::InfiniteDuration();
    thread_ = std::thread([this, line_interval] {
      NameThisThread("tlscache-stats");
      absl::Time line_at = absl::Now() + line_interval;
      absl::Time file_at = absl::Now();
      while (true) {
        if (!textfile_.empty() && absl::Now() >= file_at) {
          WriteTextfileOnce();
          file_at = absl::Now() + kTextfileInterval;
        }
        if (absl::Now() >= line_at) {
          Say(StatsLine());
          line_at = absl::Now() + line_interval;
        }
        const absl::Time next = textfile_.empty() ? line_at : std::min(line_at, file_at);
        if (stop_.WaitForNotificationWithTimeout(next - absl::Now())) return;
      }
    });
  }

  // NAME.prom -> NAME.<pid>.prom: one file per process, each with its own `pid` label, so that
  // node_exporter never reads two files with the same series.
  static std::string ProcessTextfile(const std::string& path, pid_t pid) {
    if (path.empty()) return "";
    return absl::StrCat(path.substr(0, path.size() - 5), ".", pid, ".prom");
  }

  void WriteTextfileOnce() {
    absl::Status s = WriteTextfile(
        textfile_,
        {{"pid", absl::StrCat(pid_)}, {"program", client::ProgramName()}},
        StatsTextfile());
    if (!s.ok() && !textfile_failing_) Say(absl::StrCat("metrics file: ", s.message()));
    textfile_failing_ = !s.ok();
  }

  void Stop() {
    stop_.Notify();
    thread_.join();
    if (!textfile_.empty()) unlink(textfile_.c_str());
  }

  const pid_t pid_;
  const std::string textfile_;  // empty: none
  bool textfile_failing_ = false;
  absl::Notification stop_;
  std::thread thread_;
};

// Marks a context tlscache left alone, so that it is decided (and said) once. Its slot is
// made with the context, as tlscache's own are (NewContextIndex).
int DeclinedIndex() {
  static const int index = NewContextIndex(nullptr);
  return index;
}

bool Declined(SSL_CTX* ctx) {
  return DeclinedIndex() >= 0 && SSL_CTX_get_ex_data(ctx, DeclinedIndex()) != nullptr;
}

// Marks a context on which the server configured session ticket keys of its own.
int ServerKeysIndex() {
  static const int index = NewContextIndex(nullptr);
  return index;
}

void MarkServerTicketKeys(SSL_CTX* ctx) {
  if (ctx != nullptr && Config() != nullptr && ServerKeysIndex() >= 0) {
    SSL_CTX_set_ex_data(ctx, ServerKeysIndex(), reinterpret_cast<void*>(uintptr_t{1}));
  }
}

bool HasServerTicketKeys(SSL_CTX* ctx) {
  return ServerKeysIndex() >= 0 && SSL_CTX_get_ex_data(ctx, ServerKeysIndex()) != nullptr;
}

// What the attach of a context says, once a process for each kind of context: exactly what
// is shared, and through what.
void SayAttached(const PluginConfig& config, const AttachReport& report) {
  static std::atomic<bool> said[3] = {false, false, false};
  static std::atomic<bool> said_off{false};
  const std::string where = absl::StrCat(config.addr, " (namespace ", config.ns, ")");
  const char* behind = report.application_cache ? ", behind the application's own session cache"
                                                : "";
  if (!said[report.tickets].exchange(true)) {
    switch (report.tickets) {
      case AttachReport::kNoTickets:
        Say(absl::StrCat("TLS 1.2 session IDs and TLS 1.3 stateful tickets are shared through ",
                         where, behind));
        break;
      case AttachReport::kFarmRing:
        Say(absl::StrCat(
            "session tickets are encrypted under the farm's key ring from ", where,
            ", so that every node decrypts them, in place of ",
            report.replaced_server_keys ? "the server's own ticket keys (TLSCACHE_TICKETS=farm)"
                                        : "keys OpenSSL drew for this node alone",
            "; sessions without a ticket are shared through the cache", behind));
        break;
      case AttachReport::kServerKeys:
        Say(absl::StrCat(
            "this server encrypts session tickets with keys of its own configuration, which "
            "other nodes decrypt only if they hold the same keys (TLSCACHE_TICKETS=farm puts "
            "the farm's key ring in their place); only sessions without a ticket are shared "
            "through ",
            where, behind));
        break;
    }
  }
  if (report.tickets_turned_off && !said_off.exchange(true)) {
    Say("TLSCACHE_TICKETS=off: the server's session tickets are turned off, so that TLS 1.3 "
        "uses stateful tickets kept in the cache");
  }
}

// Attaches tlscache to `ctx` unless done (or declined) before; false when it has none.
bool AttachContext(SSL_CTX* ctx, const PluginConfig& config) {
  if (IsAttached(ctx)) return true;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  if (Declined(ctx)) return false;
  if (IsAttached(ctx)) return true;
  AttachReport report;
  absl::Status attached = Attach(ctx, config, &report, HasServerTicketKeys(ctx));
  static std::atomic<bool> said_sid_ctx{false}, said_declined{false};
  if (!attached.ok()) {
    if (DeclinedIndex() >= 0) {
      SSL_CTX_set_ex_data(ctx, DeclinedIndex(), reinterpret_cast<void*>(uintptr_t{1}));
    }
    if (!absl::IsFailedPrecondition(attached) || !said_declined.exchange(true)) {
      Say(absl::StrCat(attached.message(), ": this context runs without tlscache"));
    }
    return false;
  }
  Prepare(ctx);  // connect now, while this first connection's ClientHello is on its way
  SayAttached(config, report);
  if (!config.sid_ctx.empty() && !said_sid_ctx.exchange(true)) {
    Say("TLSCACHE_SID_CTX: the session ID context is set for every server context, in "
        "place of the application's, bound to each context's client-certificate "
        "requirements");
  }
  return true;
}

void OnServerConnection(SSL* ssl) noexcept {
  try {
    const PluginConfig* config = Config();
    if (config == nullptr || ssl == nullptr) return;
    if (config->stats_interval > absl::ZeroDuration() || !config->metrics_file.empty()) {
      Reporter::StartIn(getpid(), *config);
    }
    if (AttachContext(SSL_get_SSL_CTX(ssl), *config)) BindConnection(ssl);
  } catch (...) {
    // Out of memory at worst: this connection runs without tlscache.
  }
}

// The server moves a connection to another of its contexts (SNI): that one is attached now,
// before the server copies its settings (tickets on or off) to the connection.
void OnContextChosen(SSL* ssl, SSL_CTX* ctx) noexcept {
  try {
    const PluginConfig* config = Config();
    if (config == nullptr || ssl == nullptr || ctx == nullptr || !SSL_is_server(ssl)) return;
    AttachContext(ctx, *config);
  } catch (...) {
  }
}

// Read at load time, in the process the operator started: servers such as nginx clear the
// environment of the workers they fork, which inherit what was read here.
// The slots too, before the server makes its contexts.
// And the node's near cache, before the server forks its workers (a master process that only
// forks maps it, never touches most of it: its pages are made as the workers use them).
__attribute__((constructor)) void ReadConfigAtLoad() {
  if (Config() == nullptr) return;
  if (absl::Status node = PrepareNode(*Config()); !node.ok()) {
    Say(absl::StrCat("no near cache shared by this node's processes (", node.message(),
                     "): each has its own"));
  }
  ReserveContextSlots();
  (void)DeclinedIndex();
  (void)ServerKeysIndex();
}

// The interposed function's real definition (libssl's). Without one (this library loaded into a
// process that has no libssl after it) there is nothing to call: said once, and null.
template <typename Fn>
Fn Next(const char* name) {
  dlerror();
  auto* next = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
  if (next == nullptr) {
    const char* why = dlerror();
    Say(absl::StrCat("no ", name, " after this library (", why == nullptr ? "not found" : why,
                     "): is it preloaded into an OpenSSL server?"));
  }
  return next;
}

}  // namespace
}  // namespace tlscache::openssl

extern "C" {

__attribute__((visibility("default"))) void SSL_set_accept_state(SSL* ssl) {
  static const auto next = tlscache::openssl::Next<void (*)(SSL*)>("SSL_set_accept_state");
  if (next == nullptr) return;
  next(ssl);
  tlscache::openssl::OnServerConnection(ssl);
}

__attribute__((visibility("default"))) int SSL_accept(SSL* ssl) {
  static const auto next = tlscache::openssl::Next<int (*)(SSL*)>("SSL_accept");
  if (next == nullptr) return -1;  // as a failed handshake: OpenSSL's own is not there to run
  tlscache::openssl::OnServerConnection(ssl);
  return next(ssl);
}

__attribute__((visibility("default"))) SSL_CTX* SSL_set_SSL_CTX(SSL* ssl, SSL_CTX* ctx) {
  static const auto next =
      tlscache::openssl::Next<SSL_CTX* (*)(SSL*, SSL_CTX*)>("SSL_set_SSL_CTX");
  if (next == nullptr) return nullptr;
  tlscache::openssl::OnContextChosen(ssl, ctx);
  return next(ssl, ctx);
}

// The three ways a server configures session ticket keys of its own; each is marked on the
// context, then done as asked.
__attribute__((visibility("default"))) int SSL_CTX_set_tlsext_ticket_key_evp_cb(
    SSL_CTX* ctx, tlscache::openssl::TicketKeyEvpCallback callback) {
  static const auto next = tlscache::openssl::Next<int (*)(
      SSL_CTX*, tlscache::openssl::TicketKeyEvpCallback)>("SSL_CTX_set_tlsext_ticket_key_evp_cb");
  if (next == nullptr) return 0;
  if (callback != nullptr && !tlscache::openssl::IsTlscacheTicketCallback(callback)) {
    tlscache::openssl::MarkServerTicketKeys(ctx);
  }
  return next(ctx, callback);
}

__attribute__((visibility("default"))) long SSL_CTX_callback_ctrl(SSL_CTX* ctx, int cmd,
                                                                  void (*fp)(void)) {
  static const auto next =
      tlscache::openssl::Next<long (*)(SSL_CTX*, int, void (*)(void))>("SSL_CTX_callback_ctrl");
  if (next == nullptr) return 0;
  if (cmd == SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB && fp != nullptr) {
    tlscache::openssl::MarkServerTicketKeys(ctx);
  }
  return next(ctx, cmd, fp);
}

__attribute__((visibility("default"))) long SSL_CTX_ctrl(SSL_CTX* ctx, int cmd, long larg,
                                                         void* parg) {
  static const auto next =
      tlscache::openssl::Next<long (*)(SSL_CTX*, int, long, void*)>("SSL_CTX_ctrl");
  if (next == nullptr) return 0;
  if (cmd == SSL_CTRL_SET_TLSEXT_TICKET_KEYS && parg != nullptr) {
    tlscache::openssl::MarkServerTicketKeys(ctx);
  }
  return next(ctx, cmd, larg, parg);
}

}  // extern "C"
