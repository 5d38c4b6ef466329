// Subprocess: a child process for tests (redis-server, tlscache-server), with its stderr and
// stdout captured so that a test can wait for a line such as "listening on".
//
// The destructor kills (SIGKILL) and reaps a child that is still running, so a failing test
// never leaves a process behind.
#ifndef TLSCACHE_TESTS_TESTING_SUBPROCESS_H_
#define TLSCACHE_TESTS_TESTING_SUBPROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tlscache::testing {

class Subprocess {
 public:
  // argv[0] is the program: a path, or a name looked up in PATH.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv);
  ~Subprocess();

  pid_t pid() const { return pid_; }
  void Signal(int signo);

  // Waits for the child to exit: its exit code, or 128 + signal when a signal ended it.
  // DeadlineExceeded if it is still running after `timeout`.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  bool running();

  // Waits until the combined stdout/stderr output contains `text`; returns the whole line it
  // is in, or DeadlineExceeded (with the output so far) after `timeout`.
  absl::StatusOr<std::string> WaitForOutput(const std::string& text, absl::Duration timeout);
  std::string output() const;
  // All the output, once the child (and anything it passed its stdout to) closed it.
  absl::StatusOr<std::string> FullOutput(absl::Duration timeout);

 private:
  Subprocess() = default;
  void ReadOutput(int fd);

  pid_t pid_ = -1;
  bool reaped_ = false;
  int exit_code_ = -1;
  std::thread reader_;
  mutable absl::Mutex mu_;
  absl::CondVar output_cv_;  // output grew or closed
  std::string output_ ABSL_GUARDED_BY(mu_);
  bool output_closed_ ABSL_GUARDED_BY(mu_) = false;
};

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, then release).
int PickFreePort();

// Path of a binary built by this project, e.g. BuiltBinary("tlscache-server").
std::string BuiltBinary(const std::string& name);

// Absolute path of `name` in PATH, or "" when it is not installed.
std::string FindInPath(const std::string& name);

}  // namespace tlscache::testing

#endif  // TLSCACHE_TESTS_TESTING_SUBPROCESS_H_
