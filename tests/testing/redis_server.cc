#include "tests/testing/redis_server.h"

#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <fstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace tlscache::testing {

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(std::vector<std::string> extra) {
  return StartWith(std::move(extra), "", 0);
}

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::StartSentinel(
    const std::string& master_name, int master_port) {
  return StartWith({}, master_name, master_port);
}

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::StartWith(
    std::vector<std::string> extra, const std::string& sentinel_master, int master_port) {
  if (FindInPath("redis-server").empty()) {
    return absl::NotFoundError("redis-server is not installed (apt-get install redis-server)");
  }
  std::unique_ptr<RedisServer> server(new RedisServer());
  if (server->dir_.path().empty()) return absl::InternalError("mkdtemp failed");
  server->extra_ = std::move(extra);
  if (!sentinel_master.empty()) {
    // Sentinels rewrite their configuration file: each gets its own.
    server->sentinel_conf_ = server->dir_.Path("sentinel.conf");
    std::ofstream(server->sentinel_conf_)
        << "sentinel monitor " << sentinel_master << " 127.0.0.1 " << master_port << " 2\n"
        << "sentinel down-after-milliseconds " << sentinel_master << " 1000\n"
        << "sentinel failover-timeout " << sentinel_master << " 5000\n";
  }
  // A port picked a moment ago can be taken by someone else in between: try a few.
  absl::Status status;
  for (int attempt = 0; attempt < 5; ++attempt) {
    server->port_ = PickFreePort();
    status = server->Launch();
    if (status.ok()) return server;
  }
  return status;
}

RedisServer::~RedisServer() {
  process_.reset();  // kills and reaps, before its directory goes
}

std::string RedisServer::url() const { return absl::StrCat("redis://127.0.0.1:", port_); }

absl::Status RedisServer::Launch() {
  std::vector<std::string> argv = {"redis-server"};
  if (!sentinel_conf_.empty()) argv.insert(argv.end(), {sentinel_conf_, "--sentinel"});
  argv.insert(argv.end(),
              {"--port", absl::StrCat(port_), "--bind", "127.0.0.1", "--dir", dir_.path(),
               "--daemonize", "no", "--protected-mode", "no", "--logfile", ""});
  if (sentinel_conf_.empty()) argv.insert(argv.end(), {"--save", "", "--appendonly", "no"});
  argv.insert(argv.end(), extra_.begin(), extra_.end());
  absl::StatusOr<std::unique_ptr<Subprocess>> process = Subprocess::Start(argv);
  if (!process.ok()) return process.status();
  process_ = *std::move(process);
  absl::StatusOr<std::string> ready = process_->WaitForOutput(
      sentinel_conf_.empty() ? "Ready to accept connections" : "+monitor master",
      absl::Seconds(20));
  if (!ready.ok()) {
    process_.reset();
    return ready.status();
  }
  return absl::OkStatus();
}

void RedisServer::Kill() {
  process_->Signal(SIGKILL);
  (void)process_->Wait(absl::Seconds(10));
}

void RedisServer::Pause() { process_->Signal(SIGSTOP); }
void RedisServer::Resume() { process_->Signal(SIGCONT); }

absl::Status RedisServer::Restart() {
  if (process_ != nullptr && process_->running()) Kill();
  absl::Status status;
  // The port is ours, but the kernel may take a moment to release it.
  for (int attempt = 0; attempt < 20; ++attempt) {
    status = Launch();
    if (status.ok()) return status;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return status;
}

namespace {

// From INFO replication: the master's offset, and each replica's acknowledged one.
struct ReplicationOffsets {
  explicit ReplicationOffsets(absl::string_view info) {
    for (absl::string_view line : absl::StrSplit(info, '\n')) {
      line = absl::StripTrailingAsciiWhitespace(line);
      int64_t offset = 0;
      if (absl::ConsumePrefix(&line, "master_repl_offset:")) {
        (void)absl::SimpleAtoi(line, &master);
      } else if (absl::StartsWith(line, "slave") && absl::StrContains(line, ",offset=")) {
        absl::string_view acked = line.substr(line.find(",offset=") + 8);
        if (absl::SimpleAtoi(acked.substr(0, acked.find(',')), &offset)) replicas.push_back(offset);
      }
    }
  }

  int64_t master = -1;
  std::vector<int64_t> replicas;
};

}  // namespace

absl::Status RedisServer::AwaitReplicas(int replicas, absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  // A write (undone at once), then the replicas' acknowledged offsets until enough reach past
  // it. (A WAIT could count a replica that has acknowledged nothing yet, at offset 0.)
  absl::StatusOr<std::string> info = Cli({"SET", "tlscache-testing:replicated", "1"});
  if (info.ok()) info = Cli({"DEL", "tlscache-testing:replicated"});
  if (info.ok()) info = Cli({"INFO", "replication"});
  if (!info.ok()) return info.status();
  const int64_t written = ReplicationOffsets(*info).master;
  while (absl::Now() < deadline) {
    info = Cli({"INFO", "replication"});
    if (!info.ok()) return info.status();
    const std::vector<int64_t> acked = ReplicationOffsets(*info).replicas;
    if (std::count_if(acked.begin(), acked.end(),
                      [&](int64_t offset) { return offset >= written; }) >= replicas) {
      return absl::OkStatus();
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("redis 127.0.0.1:", port_, ": fewer than ", replicas,
                   " replicas acknowledged offset ", written, ": ", *info));
}

absl::StatusOr<std::string> RedisServer::Cli(const std::vector<std::string>& args,
                                             absl::Duration timeout) const {
  std::vector<std::string> argv = {"redis-cli", "-h", "127.0.0.1", "-p", absl::StrCat(port_)};
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<std::unique_ptr<Subprocess>> cli = Subprocess::Start(argv);
  if (!cli.ok()) return cli.status();
  absl::StatusOr<int> code = (*cli)->Wait(timeout);
  if (!code.ok()) return code.status();
  if (*code != 0) {
    return absl::InternalError(absl::StrCat("redis-cli ", absl::StrJoin(args, " "), " exited ",
                                            *code, ": ", (*cli)->output()));
  }
  return (*cli)->FullOutput(absl::Seconds(5));
}

}  // namespace tlscache::testing
