// tlscache-keysync: keeps a TLS server's session-ticket key files current with a namespace's
// farm key ring, for servers that do not load the tlscache plugin (stock nginx, HAProxy,
// Apache). It follows the ring over WatchTicketKeys (the TLS files as tlscachectl takes them),
// writes each ring in the server's format (tools/keysync/key_files.h) into --dir, atomically
// and readable by the owner (and --group) only, makes the server load it (HAProxy's runtime
// API where it can, --on_change otherwise), then reports the version it applied, so that no
// rotation makes a key ACTIVE before this server can decrypt with it.
//
//   tlscache-keysync --addr=H:P --namespace=NS --format=nginx --dir=/run/tlscache-keys
//       --on_change='nginx -s reload'
//   tlscache-keysync ... --once     writes the files once and exits (before the server starts)
#include <dirent.h>
#include <grp.h>
#include <grpcpp/create_channel.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/ticket_key_follower.h"
#include "client/ticket_key_reporter.h"
#include "common/channel_tls.h"
#include "common/files.h"
#include "common/log.h"
#include "common/signals.h"
#include "common/usage.h"
#include "common/validation.h"
#include "tools/keysync/haproxy_runtime.h"
#include "tools/keysync/key_files.h"
#include "tools/keysync/keysync_metrics.h"

ABSL_FLAG(std::string, addr, "127.0.0.1:7700", "the cache service, HOST:PORT");
ABSL_FLAG(std::string, namespace, "default", "the namespace whose ring to follow");
ABSL_FLAG(std::string, ca_file, "", "PEM CA bundle to verify the service with (TLS)");
ABSL_FLAG(std::string, cert_file, "", "PEM client certificate, for a service that requires one");
ABSL_FLAG(std::string, key_file, "", "PEM private key of --cert_file");
ABSL_FLAG(std::string, format, "", "nginx, haproxy or apache: the files to write");
ABSL_FLAG(std::string, dir, "", "where to write the key files (tmpfs: they are secret)");
ABSL_FLAG(std::string, group, "",
          "the group that may read the key files (mode 0640); empty: the owner only (0600)");
ABSL_FLAG(std::string, on_change, "",
          "a command (sh -c) that makes the server read the files, run after they changed "
          "(e.g. 'nginx -s reload', 'apachectl graceful'); not with --haproxy_socket");
ABSL_FLAG(absl::Duration, reload_settle, absl::Seconds(1),
          "after --on_change returns, how long the server gets to finish loading the keys "
          "before this node reports it holds them");
ABSL_FLAG(std::string, haproxy_socket, "",
          "HAProxy's runtime API (a stats socket at level admin): rotations are applied with "
          "`set ssl tls-key`, without a reload");
ABSL_FLAG(std::string, follower, "",
          "this keysync's name in the ring's followers; empty: HOST/tlscache-keysync:DIR");
ABSL_FLAG(std::string, metrics_file, "",
          "a node_exporter textfile-collector file to keep this keysync's counters in");
ABSL_FLAG(bool, once, false,
          "write the files from the ring once and exit, without --on_change or a report: "
          "before the server starts");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10), "--once: how long to wait for the ring");

namespace tlscache::keysync {
namespace {

constexpr char kUsage[] =
    "keeps a TLS server's session-ticket key files current with a tlscache farm key ring.\n"
    "usage: tlscache-keysync --format=nginx|haproxy|apache --dir=DIR [--addr=HOST:PORT]\n"
    "           [--namespace=NS] [--ca_file=PEM [--cert_file=PEM --key_file=PEM]]\n"
    "           [--on_change=COMMAND | --haproxy_socket=PATH] [--group=G] [--once]";

constexpr absl::Duration kRetryPause = absl::Seconds(5);
constexpr absl::Duration kMetricsInterval = absl::Seconds(5);

int Fail(const std::string& message, int code = 2) {
  std::fprintf(stderr, "tlscache-keysync: %s\n", message.c_str());
  return code;
}

struct Settings {
  Format format = Format::kNginx;
  std::string dir;
  long gid = -1;
  std::string on_change;
  std::string haproxy_socket;
};

// A directory whose contents may reach a disk draws a warning: ticket keys on disk outlive
// their rotation (and a lost disk gives away every ticket they encrypted).
void CheckMemoryBacked(const std::string& dir) {
  struct statfs fs;
  constexpr long kTmpfsMagic = 0x01021994;
  constexpr long kRamfsMagic = 0x858458f6;
  if (statfs(dir.c_str(), &fs) == 0 && fs.f_type != kTmpfsMagic && fs.f_type != kRamfsMagic) {
    LogWarning(
        "keysync: %s is not on tmpfs: ticket keys written there may reach a disk and outlive "
        "their rotation; mount a tmpfs there (or use /run)",
        dir);
  }
}

// Whether `path` holds exactly `contents` now.
bool Holds(const std::string& path, absl::string_view contents) {
  absl::StatusOr<std::string> current = ReadSmallFile(path, 1 << 16);
  const bool same = current.ok() && *current == contents;
  if (current.ok()) OPENSSL_cleanse(current->data(), current->size());
  return same;
}

// Writes a ring's files (RenderRing); whether any changed. Old nginx key files are removed by
// Prune.
absl::StatusOr<bool> WriteFiles(const Settings& settings, const std::vector<KeyFile>& files) {
  bool changed = false;
  for (const KeyFile& file : files) {
    const std::string path = absl::StrCat(settings.dir, "/", file.name);
    if (Holds(path, file.contents.view())) continue;
    const unsigned mode = settings.gid >= 0 ? 0640 : 0600;
    if (absl::Status s = ReplaceFile(path, file.contents.view(), mode, settings.gid); !s.ok()) {
      return s;
    }
    changed = true;
  }
  return changed;
}

// Removes key files of keys the ring no longer has (after the server stopped reading them).
void Prune(const Settings& settings, const std::vector<KeyFile>& files) {
  DIR* dir = opendir(settings.dir.c_str());
  if (dir == nullptr) return;
  while (struct dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (!IsKeyFileName(name, settings.format)) continue;
    if (std::none_of(files.begin(), files.end(),
                     [&](const KeyFile& file) { return file.name == name; })) {
      unlink(absl::StrCat(settings.dir, "/", name).c_str());
    }
  }
  closedir(dir);
}

absl::Status RunOnChange(const std::string& command) {
  const int status = std::system(command.c_str());
  if (status == 0) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat("--on_change exited with status ",
                                             WIFEXITED(status) ? WEXITSTATUS(status) : status));
}

// Makes the server hold `ring`: the files, then the runtime API or --on_change.
absl::Status Apply(const Settings& settings, const client::TicketKeySnapshot& ring,
                   KeysyncMetrics* metrics) {
  const std::vector<KeyFile> files = RenderRing(ring, settings.format, settings.dir);
  absl::StatusOr<bool> changed = WriteFiles(settings, files);
  if (!changed.ok()) return changed.status();
  if (!settings.haproxy_socket.empty()) {
    const std::string file = absl::StrCat(settings.dir, "/tls-ticket-keys");
    absl::StatusOr<int> steps = UpdateHaproxyKeys(settings.haproxy_socket, file, ring);
    if (!steps.ok()) return steps.status();
    metrics->runtime_updates += static_cast<uint64_t>(*steps);
    return absl::OkStatus();
  }
  if (*changed && !settings.on_change.empty()) {
    if (absl::Status s = RunOnChange(settings.on_change); !s.ok()) return s;
    ++metrics->reloads;
    absl::SleepFor(absl::GetFlag(FLAGS_reload_settle));
  }
  Prune(settings, files);
  return absl::OkStatus();
}

int Main() {
  Settings settings;
  absl::StatusOr<Format> format = ParseFormat(absl::GetFlag(FLAGS_format));
  if (!format.ok()) return Fail(std::string(format.status().message()));
  settings.format = *format;
  settings.dir = absl::GetFlag(FLAGS_dir);
  while (settings.dir.size() > 1 && settings.dir.back() == '/') settings.dir.pop_back();
  if (settings.dir.empty()) return Fail("--dir: required: where to write the key files");
  struct stat st;
  if (stat(settings.dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Fail(absl::StrCat("--dir=", settings.dir, ": not a directory"));
  }
  const std::string ns = absl::GetFlag(FLAGS_namespace);
  if (absl::Status s = ValidateNamespace(ns); !s.ok()) return Fail(std::string(s.message()));
  if (const std::string group = absl::GetFlag(FLAGS_group); !group.empty()) {
    struct group* g = getgrnam(group.c_str());
    if (g == nullptr) return Fail(absl::StrCat("--group=", group, ": no such group"));
    settings.gid = g->gr_gid;
  }
  settings.on_change = absl::GetFlag(FLAGS_on_change);
  settings.haproxy_socket = absl::GetFlag(FLAGS_haproxy_socket);
  if (!settings.haproxy_socket.empty() && settings.format != Format::kHaproxy) {
    return Fail("--haproxy_socket: only with --format=haproxy");
  }
  if (!settings.haproxy_socket.empty() && !settings.on_change.empty()) {
    return Fail("--haproxy_socket and --on_change: one or the other");
  }
  std::string follower = absl::GetFlag(FLAGS_follower);
  if (follower.empty()) follower = client::HostFollowerName("tlscache-keysync:" + settings.dir);
  if (absl::Status s = ValidateFollowerName(follower); !s.ok()) {
    return Fail(absl::StrCat("--follower: ", s.message()));
  }
  absl::StatusOr<ChannelTls> tls =
      ReadChannelTls({absl::GetFlag(FLAGS_ca_file), absl::GetFlag(FLAGS_cert_file),
                      absl::GetFlag(FLAGS_key_file)});
  if (!tls.ok()) return Fail(absl::StrCat("--", tls.status().message()));
  CheckMemoryBacked(settings.dir);

  const sigset_t signals = BlockTerminationSignals();
  auto channel = grpc::CreateChannel(absl::GetFlag(FLAGS_addr), ChannelCredentials(*tls));
  client::TicketKeyFollower ring_follower(channel, ns);
  KeysyncMetrics metrics(absl::GetFlag(FLAGS_metrics_file), ns);

  if (absl::GetFlag(FLAGS_once)) {
    std::shared_ptr<const client::TicketKeySnapshot> ring =
        ring_follower.AwaitFirst(absl::GetFlag(FLAGS_timeout));
    if (ring == nullptr) {
      return Fail(absl::StrCat("no ticket key ring from ", absl::GetFlag(FLAGS_addr), " within ",
                               absl::FormatDuration(absl::GetFlag(FLAGS_timeout))),
                  1);
    }
    const std::vector<KeyFile> files = RenderRing(*ring, settings.format, settings.dir);
    absl::StatusOr<bool> written = WriteFiles(settings, files);
    if (!written.ok()) return Fail(std::string(written.status().message()), 1);
    Prune(settings, files);
    return 0;
  }

  client::TicketKeyReporter reporter(channel, ns, follower);
  std::atomic<bool> stop{false};
  std::thread waiter([&] {
    WaitForTermination(signals);
    stop = true;
  });
  LogInfo("keysync: following namespace %s at %s into %s as %s", ns, absl::GetFlag(FLAGS_addr),
          settings.dir, follower);
  uint64_t applied = 0;
  absl::Time retry_at = absl::InfinitePast();
  absl::Time metrics_at = absl::InfinitePast();
  while (!stop) {
    std::shared_ptr<const client::TicketKeySnapshot> ring =
        absl::Now() >= retry_at ? ring_follower.AwaitNewer(applied, absl::Seconds(1)) : nullptr;
    if (ring == nullptr && absl::Now() < retry_at) absl::SleepFor(absl::Milliseconds(200));
    if (ring != nullptr && !stop) {
      absl::Status s = Apply(settings, *ring, &metrics);
      if (s.ok()) {
        applied = ring->version;
        metrics.version = applied;
        metrics.applied_at = absl::Now();
        reporter.Hold(applied);
        LogInfo("keysync: the server holds ring version %d", applied);
        retry_at = absl::InfinitePast();
      } else {
        ++metrics.failures;
        LogError("keysync: ring version %d not applied (retrying in %s): %s", ring->version,
                 absl::FormatDuration(kRetryPause), s.message());
        retry_at = absl::Now() + kRetryPause;
      }
      metrics_at = absl::InfinitePast();  // what changed is in the file at once
    }
    if (absl::Now() >= metrics_at) {
      metrics.Write();
      metrics_at = absl::Now() + kMetricsInterval;
    }
  }
  reporter.Stop(/*leave=*/true);
  ring_follower.Stop();
  metrics.Remove();
  waiter.join();
  LogInfo("keysync: stopped");
  return 0;
}

}  // namespace
}  // namespace tlscache::keysync

int main(int argc, char** argv) {
  tlscache::SetUsage(tlscache::keysync::kUsage);
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    return tlscache::keysync::Fail(absl::StrCat("unexpected argument: ", rest[1]));
  }
  return tlscache::keysync::Main();
}
