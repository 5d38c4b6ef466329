#include "common/signals.h"

#include <pthread.h>

namespace tlscache {

sigset_t BlockTerminationSignals() {
  signal(SIGPIPE, SIG_IGN);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

int WaitForTermination(const sigset_t& signals, const std::function<void()>& on_hangup) {
  while (true) {
    int received = 0;
    if (sigwait(&signals, &received) != 0) continue;
    if (received != SIGHUP) return received;
    if (on_hangup) on_hangup();
  }
}

}  // namespace tlscache
