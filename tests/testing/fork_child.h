// InChild: runs a function in a forked child of the test process (which then exits 0, unless
// the function exits or dies first) and returns the child's status as waitpid gives it: for
// tests of what processes forked from one parent share.
#ifndef TLSCACHE_TESTS_TESTING_FORK_CHILD_H_
#define TLSCACHE_TESTS_TESTING_FORK_CHILD_H_

#include <sys/wait.h>
#include <unistd.h>

namespace tlscache::testing {

template <typename Fn>
int InChild(Fn child) {
  const pid_t pid = fork();
  if (pid == 0) {
    child();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

// Whether `status` (of InChild) is an exit with code 0.
inline bool ExitedZero(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

}  // namespace tlscache::testing

#endif  // TLSCACHE_TESTS_TESTING_FORK_CHILD_H_
