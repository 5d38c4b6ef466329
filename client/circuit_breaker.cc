#include "client/circuit_breaker.h"

#include <algorithm>

namespace tlscache::client {

const char* BreakerStateName(BreakerState state) {
  switch (state) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half-open";
  }
  return "unknown";
}

bool CircuitBreaker::Allow() {
  absl::MutexLock lock(&mu_);
  switch (state_) {
    case BreakerState::kClosed:
      return true;
    case BreakerState::kHalfOpen:
      return false;  // the probe is out
    case BreakerState::kOpen:
      if (options_.clock->Now() < open_until_) return false;
      state_ = BreakerState::kHalfOpen;
      return true;
  }
  return false;
}

void CircuitBreaker::RecordSuccess() {
  absl::MutexLock lock(&mu_);
  state_ = BreakerState::kClosed;
  failures_ = 0;
  open_for_ = absl::ZeroDuration();
}

void CircuitBreaker::RecordFailure() {
  absl::MutexLock lock(&mu_);
  if (state_ == BreakerState::kClosed) {
    if (++failures_ < options_.failure_threshold) return;
    open_for_ = options_.initial_open;
  } else if (state_ == BreakerState::kHalfOpen) {
    open_for_ = std::min(open_for_ * 2, options_.max_open);
  } else {
    return;  // a call that started before the breaker opened
  }
  state_ = BreakerState::kOpen;
  open_until_ = options_.clock->Now() + open_for_;
}

void CircuitBreaker::RecordInconclusive() {
  absl::MutexLock lock(&mu_);
  if (state_ != BreakerState::kHalfOpen) return;
  state_ = BreakerState::kOpen;
  open_until_ = options_.clock->Now() + open_for_;
}

BreakerState CircuitBreaker::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

}  // namespace tlscache::client
