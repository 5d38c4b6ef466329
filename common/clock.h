// Clock: the source of "now" for everything that expires. Production code uses
// Clock::Real(); tests pass a FakeClock (tests/testing/fake_clock.h) to move time by hand.
//
// Thread-safety: implementations are safe to call from any thread.
#ifndef TLSCACHE_COMMON_CLOCK_H_
#define TLSCACHE_COMMON_CLOCK_H_

#include "absl/time/time.h"

namespace tlscache {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() = 0;

  // The process-wide wall clock. Never destroyed.
  static Clock* Real();
};

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_CLOCK_H_
