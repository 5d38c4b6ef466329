// Eventually: waits for a condition a test cannot be told about (another process, a server's
// thread), polling it, instead of sleeping a fixed time.
#ifndef TLSCACHE_TESTS_TESTING_EVENTUALLY_H_
#define TLSCACHE_TESTS_TESTING_EVENTUALLY_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tlscache::testing {

// Polls `condition` every few milliseconds until it holds (true) or `timeout` passes (false).
template <typename Condition>
bool Eventually(Condition condition, absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

}  // namespace tlscache::testing

#endif  // TLSCACHE_TESTS_TESTING_EVENTUALLY_H_
