// RedisServer: a real redis-server for a test, on a free loopback port, with its own
// temporary directory and no persistence. Stopped and removed when destroyed.
//
// Tests that need one skip, with a printed reason, only when redis-server is not installed:
//   TLSCACHE_START_REDIS_OR_SKIP(redis_);
#ifndef TLSCACHE_TESTS_TESTING_REDIS_SERVER_H_
#define TLSCACHE_TESTS_TESTING_REDIS_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace tlscache::testing {

class RedisServer {
 public:
  // NotFound when redis-server is not installed; any other error is a failure. `extra` are
  // more redis-server arguments, e.g. {"--replicaof", "127.0.0.1", "7000"}.
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(std::vector<std::string> extra = {});
  // A Redis Sentinel monitoring `master_name` at 127.0.0.1:master_port (quorum 2, a master is
  // down after 1 s without an answer).
  static absl::StatusOr<std::unique_ptr<RedisServer>> StartSentinel(const std::string& master_name,
                                                                    int master_port);
  ~RedisServer();

  int port() const { return port_; }
  std::string url() const;  // redis://127.0.0.1:PORT

  // SIGKILL, as a crash would; the port stays reserved for Restart().
  void Kill();
  // SIGSTOP / SIGCONT: a Redis that accepts connections but does not answer.
  void Pause();
  void Resume();
  // Starts again on the same port (after Kill) and waits until it answers PING.
  absl::Status Restart();

  // Runs one command through redis-cli and returns its output, for checks from outside.
  absl::StatusOr<std::string> Cli(const std::vector<std::string>& args,
                                  absl::Duration timeout = absl::Seconds(10)) const;
  bool running() const { return process_ != nullptr && process_->running(); }
  // Until `replicas` replicas confirm a write to this master (WAIT). A replica past its first
  // sync ("state=online") is sent the stream only once its first acknowledgement reached the
  // master, up to a second later: a WAIT before then is not confirmed.
  absl::Status AwaitReplicas(int replicas, absl::Duration timeout) const;

 private:
  RedisServer() = default;
  absl::Status Launch();

  static absl::StatusOr<std::unique_ptr<RedisServer>> StartWith(std::vector<std::string> extra,
                                                                const std::string& sentinel_master,
                                                                int master_port);

  TempDir dir_{"redis"};
  int port_ = 0;
  std::vector<std::string> extra_;
  std::string sentinel_conf_;  // set: this is a sentinel
  std::unique_ptr<Subprocess> process_;
};

}  // namespace tlscache::testing

// `var = *started` for a StatusOr `started`; skips the test (with the reason) when it is NotFound,
// a binary that is not installed; fails it on any other error.
#define TLSCACHE_ASSIGN_OR_SKIP(var, started_expr) \
  do {                                             \
    auto started = (started_expr);                 \
    if (absl::IsNotFound(started.status())) {      \
      GTEST_SKIP() << started.status().message();  \
    }                                              \
    ASSERT_TRUE(started.ok()) << started.status(); \
    var = *std::move(started);                     \
  } while (0)

#define TLSCACHE_START_REDIS_OR_SKIP(var) \
  TLSCACHE_ASSIGN_OR_SKIP(var, ::tlscache::testing::RedisServer::Start())

#endif  // TLSCACHE_TESTS_TESTING_REDIS_SERVER_H_
