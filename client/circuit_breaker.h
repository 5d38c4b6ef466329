// CircuitBreaker: stops a client from asking a cache that keeps failing.
//
// Closed: every call is allowed; `failure_threshold` consecutive failures open it. Open: no
// call is allowed until the open period ends, then exactly one probe is let through
// (half-open). The probe's success closes the breaker; its failure opens it again for twice
// as long, up to `max_open`. A miss is a success: the cache answered.
//
// Thread-safety: all methods are thread-safe.
#ifndef TLSCACHE_CLIENT_CIRCUIT_BREAKER_H_
#define TLSCACHE_CLIENT_CIRCUIT_BREAKER_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace tlscache::client {

struct BreakerOptions {
  int failure_threshold = 5;
  absl::Duration initial_open = absl::Milliseconds(100);
  absl::Duration max_open = absl::Seconds(5);
  Clock* clock = Clock::Real();
};

enum class BreakerState { kClosed, kOpen, kHalfOpen };
const char* BreakerStateName(BreakerState state);

class CircuitBreaker {
 public:
  explicit CircuitBreaker(const BreakerOptions& options) : options_(options) {}

  // Whether a call may go out now. A true answer while open makes this call the probe: its
  // outcome must be recorded.
  bool Allow();
  void RecordSuccess();
  void RecordFailure();
  // A call that says nothing of the cache (it ran out of time because this node was busy):
  // closed, nothing changes; a probe's such outcome opens the breaker again for the same
  // period, to probe again then.
  void RecordInconclusive();
  BreakerState state() const;

 private:
  const BreakerOptions options_;
  mutable absl::Mutex mu_;
  BreakerState state_ ABSL_GUARDED_BY(mu_) = BreakerState::kClosed;
  int failures_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration open_for_ ABSL_GUARDED_BY(mu_);
  absl::Time open_until_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tlscache::client

#endif  // TLSCACHE_CLIENT_CIRCUIT_BREAKER_H_
