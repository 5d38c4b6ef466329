// RedisClusterServers: a real Redis Cluster for a test: redis-server nodes on free loopback
// ports, joined by `redis-cli --cluster create`, every master with its replicas. A node is
// down after 1 s without an answer (cluster-node-timeout), so a failover takes a few seconds.
#ifndef TLSCACHE_TESTS_TESTING_REDIS_CLUSTER_H_
#define TLSCACHE_TESTS_TESTING_REDIS_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/testing/redis_server.h"

namespace tlscache::testing {

class RedisClusterServers {
 public:
  struct Node {
    std::string id;
    int port = 0;
    bool master = false;
    int slots = 0;  // slots it serves, when a master
  };

  // NotFound when redis-server or redis-cli is not installed.
  static absl::StatusOr<std::unique_ptr<RedisClusterServers>> Start(int masters, int replicas);

  // redis-cluster://127.0.0.1:P,... over every node.
  std::string url() const;
  RedisServer& server(int port);
  // The cluster as a live node sees it (CLUSTER NODES), failed nodes left out.
  absl::StatusOr<std::vector<Node>> Nodes() const;
  // Waits until every running node says cluster_state:ok and agrees on `masters` masters
  // that serve all 16384 slots.
  absl::Status WaitUntilHealthy(int masters, absl::Duration timeout) const;
  // Waits until every running replica's link to its master is up (its first sync done).
  absl::Status WaitUntilReplicasSynced(absl::Duration timeout) const;
  // redis-cli against a running node.
  absl::StatusOr<std::string> Cli(const std::vector<std::string>& args,
                                  absl::Duration timeout = absl::Seconds(10)) const;

 private:
  RedisClusterServers() = default;
  const RedisServer& AnyRunning() const;

  std::vector<std::unique_ptr<RedisServer>> servers_;
};

}  // namespace tlscache::testing

#endif  // TLSCACHE_TESTS_TESTING_REDIS_CLUSTER_H_
