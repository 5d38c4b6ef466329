#include "client/node_load.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

namespace tlscache::client {
namespace {

// This thread's /proc/thread-self/schedstat, opened on its first lookup, closed at its exit.
struct SchedStat {
  SchedStat() : fd(open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC)) {}
  ~SchedStat() {
    if (fd >= 0) close(fd);
  }
  const int fd;
};

}  // namespace

std::optional<absl::Duration> ThreadRunQueueWait() {
  thread_local SchedStat stat;
  if (stat.fd < 0) return std::nullopt;
  char buf[96];
  const ssize_t n = pread(stat.fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return std::nullopt;
  buf[n] = '\0';
  unsigned long long on_cpu = 0, waiting = 0;
  if (std::sscanf(buf, "%llu %llu", &on_cpu, &waiting) != 2) return std::nullopt;
  return absl::Nanoseconds(waiting);
}

bool NodeWasBusy(const RunQueueWaitFn& run_queue_wait, std::optional<absl::Duration> wait_before,
                 absl::Duration elapsed) {
  if (!wait_before) return false;
  std::optional<absl::Duration> wait_after = run_queue_wait();
  return wait_after && (*wait_after - *wait_before) * 10 >= elapsed;
}

}  // namespace tlscache::client
