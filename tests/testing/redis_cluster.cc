#include "tests/testing/redis_cluster.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "tests/testing/subprocess.h"

namespace tlscache::testing {

absl::StatusOr<std::unique_ptr<RedisClusterServers>> RedisClusterServers::Start(int masters,
                                                                                int replicas) {
  if (FindInPath("redis-cli").empty()) {
    return absl::NotFoundError("redis-cli is not installed (apt-get install redis-tools)");
  }
  std::unique_ptr<RedisClusterServers> cluster(new RedisClusterServers());
  std::vector<std::string> create = {"redis-cli", "--cluster", "create"};
  for (int i = 0; i < masters * (1 + replicas); ++i) {
    absl::StatusOr<std::unique_ptr<RedisServer>> node =
        RedisServer::Start({"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                            "--cluster-node-timeout", "1000", "--appendonly", "no",
                            // A replica's first sync starts at once, not 5 s later (Redis 7's
                            // default waits for more replicas to share the transfer).
                            "--repl-diskless-sync-delay", "0"});
    if (!node.ok()) return node.status();
    create.push_back(absl::StrCat("127.0.0.1:", (*node)->port()));
    cluster->servers_.push_back(*std::move(node));
  }
  create.insert(create.end(), {"--cluster-replicas", absl::StrCat(replicas), "--cluster-yes"});
  absl::StatusOr<std::unique_ptr<Subprocess>> cli = Subprocess::Start(create);
  if (!cli.ok()) return cli.status();
  absl::StatusOr<int> code = (*cli)->Wait(absl::Seconds(60));
  if (!code.ok() || *code != 0) {
    return absl::InternalError(absl::StrCat("redis-cli --cluster create failed: ",
                                            (*cli)->output()));
  }
  if (absl::Status s = cluster->WaitUntilHealthy(masters, absl::Seconds(30)); !s.ok()) return s;
  if (absl::Status s = cluster->WaitUntilReplicasSynced(absl::Seconds(30)); !s.ok()) return s;
  // Deletions and consuming lookups are acknowledged once a replica confirms them: every
  // master's replicas take its stream before the cluster is handed over.
  for (const auto& server : cluster->servers_) {
    absl::StatusOr<std::string> info = server->Cli({"INFO", "replication"});
    if (!info.ok()) return info.status();
    if (!absl::StrContains(*info, "role:master")) continue;
    if (absl::Status s = server->AwaitReplicas(replicas, absl::Seconds(30)); !s.ok()) return s;
  }
  return cluster;
}

absl::Status RedisClusterServers::WaitUntilReplicasSynced(absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  std::string last = "nothing asked yet";
  while (absl::Now() < deadline) {
    bool synced = true;
    for (const auto& server : servers_) {
      if (!server->running()) continue;
      absl::StatusOr<std::string> info = server->Cli({"INFO", "replication"});
      if (!info.ok() || (!absl::StrContains(*info, "role:master") &&
                         !absl::StrContains(*info, "master_link_status:up"))) {
        synced = false;
        last = info.ok() ? *info : std::string(info.status().message());
        break;
      }
    }
    if (synced) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError(absl::StrCat("a replica is not in sync: ", last));
}

std::string RedisClusterServers::url() const {
  std::vector<std::string> nodes;
  for (const auto& server : servers_) nodes.push_back(absl::StrCat("127.0.0.1:", server->port()));
  return absl::StrCat("redis-cluster://", absl::StrJoin(nodes, ","));
}

RedisServer& RedisClusterServers::server(int port) {
  for (auto& server : servers_) {
    if (server->port() == port) return *server;
  }
  return *servers_.front();
}

const RedisServer& RedisClusterServers::AnyRunning() const {
  for (const auto& server : servers_) {
    if (server->running()) return *server;
  }
  return *servers_.front();
}

absl::StatusOr<std::string> RedisClusterServers::Cli(const std::vector<std::string>& args,
                                                     absl::Duration timeout) const {
  return AnyRunning().Cli(args, timeout);
}

absl::StatusOr<std::vector<RedisClusterServers::Node>> RedisClusterServers::Nodes() const {
  absl::StatusOr<std::string> text = Cli({"CLUSTER", "NODES"});
  if (!text.ok()) return text.status();
  // <id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot> <slot> ...
  std::vector<Node> nodes;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    const std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.size() < 8 || absl::StrContains(fields[2], "fail")) continue;
    Node node;
    node.id = std::string(fields[0]);
    const absl::string_view address = fields[1].substr(0, fields[1].find('@'));
    if (!absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &node.port)) continue;
    node.master = absl::StrContains(fields[2], "master");
    for (size_t i = 8; i < fields.size(); ++i) {
      if (fields[i].front() == '[') continue;  // a slot being migrated
      const std::vector<absl::string_view> range = absl::StrSplit(fields[i], '-');
      int first = 0;
      int last = 0;
      if (!absl::SimpleAtoi(range[0], &first)) continue;
      if (range.size() < 2 || !absl::SimpleAtoi(range[1], &last)) last = first;
      node.slots += last - first + 1;
    }
    nodes.push_back(std::move(node));
  }
  return nodes;
}

absl::Status RedisClusterServers::WaitUntilHealthy(int masters, absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  std::string last = "nothing asked yet";
  while (absl::Now() < deadline) {
    bool healthy = true;
    for (const auto& server : servers_) {
      if (!server->running()) continue;
      absl::StatusOr<std::string> info = server->Cli({"CLUSTER", "INFO"});
      std::vector<std::string> lines;
      if (info.ok()) {
        for (absl::string_view line : absl::StrSplit(*info, '\n')) {
          lines.emplace_back(absl::StripSuffix(line, "\r"));
        }
      }
      const auto has = [&lines](const std::string& line) {
        return std::find(lines.begin(), lines.end(), line) != lines.end();
      };
      if (!info.ok() || !has("cluster_state:ok") || !has("cluster_slots_ok:16384") ||
          !has(absl::StrCat("cluster_size:", masters))) {
        healthy = false;
        last = info.ok() ? *info : std::string(info.status().message());
        break;
      }
    }
    if (healthy) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError(absl::StrCat("the cluster is not healthy: ", last));
}

}  // namespace tlscache::testing
