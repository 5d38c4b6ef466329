#include "client/circuit_breaker.h"

#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace tlscache::client {
namespace {

class CircuitBreakerTest : public ::testing::Test {
 protected:
  CircuitBreakerTest() {
    options_.failure_threshold = 3;
    options_.initial_open = absl::Milliseconds(100);
    options_.max_open = absl::Milliseconds(350);
    options_.clock = &clock_;
  }
  testing::FakeClock clock_;
  BreakerOptions options_;
};

TEST_F(CircuitBreakerTest, OpensAfterConsecutiveFailuresOnly) {
  CircuitBreaker breaker(options_);
  breaker.RecordFailure();
  breaker.RecordFailure();
  breaker.RecordSuccess();  // resets the run
  breaker.RecordFailure();
  breaker.RecordFailure();
  EXPECT_EQ(breaker.state(), BreakerState::kClosed);
  EXPECT_TRUE(breaker.Allow());
  breaker.RecordFailure();
  EXPECT_EQ(breaker.state(), BreakerState::kOpen);
  EXPECT_FALSE(breaker.Allow());
}

TEST_F(CircuitBreakerTest, LetsOneProbeThroughAfterTheOpenPeriod) {
  CircuitBreaker breaker(options_);
  for (int i = 0; i < 3; ++i) breaker.RecordFailure();
  clock_.Advance(absl::Milliseconds(99));
  EXPECT_FALSE(breaker.Allow());
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_TRUE(breaker.Allow());  // the probe
  EXPECT_EQ(breaker.state(), BreakerState::kHalfOpen);
  EXPECT_FALSE(breaker.Allow());  // only one
  breaker.RecordSuccess();
  EXPECT_EQ(breaker.state(), BreakerState::kClosed);
  EXPECT_TRUE(breaker.Allow());
}

TEST_F(CircuitBreakerTest, AFailedProbeDoublesTheOpenPeriodUpToTheMaximum) {
  CircuitBreaker breaker(options_);
  for (int i = 0; i < 3; ++i) breaker.RecordFailure();
  const absl::Duration expected[] = {absl::Milliseconds(200), absl::Milliseconds(350),
                                     absl::Milliseconds(350)};
  clock_.Advance(absl::Milliseconds(100));
  for (absl::Duration open_for : expected) {
    ASSERT_TRUE(breaker.Allow());
    breaker.RecordFailure();
    clock_.Advance(open_for - absl::Milliseconds(1));
    EXPECT_FALSE(breaker.Allow()) << open_for;
    clock_.Advance(absl::Milliseconds(1));
  }
  EXPECT_TRUE(breaker.Allow());
}

TEST_F(CircuitBreakerTest, AnInconclusiveOutcomeNeitherOpensNorClosesIt) {
  CircuitBreaker breaker(options_);
  breaker.RecordFailure();
  breaker.RecordFailure();
  for (int i = 0; i < 10; ++i) breaker.RecordInconclusive();  // a busy node's timeouts
  EXPECT_EQ(breaker.state(), BreakerState::kClosed);
  breaker.RecordFailure();  // the run of failures was not reset either
  EXPECT_EQ(breaker.state(), BreakerState::kOpen);
  // A probe that says nothing: open again for the same period, then probe again.
  clock_.Advance(absl::Milliseconds(100));
  ASSERT_TRUE(breaker.Allow());
  breaker.RecordInconclusive();
  EXPECT_EQ(breaker.state(), BreakerState::kOpen);
  clock_.Advance(absl::Milliseconds(99));
  EXPECT_FALSE(breaker.Allow());
  clock_.Advance(absl::Milliseconds(1));
  ASSERT_TRUE(breaker.Allow());
  breaker.RecordSuccess();
  EXPECT_EQ(breaker.state(), BreakerState::kClosed);
}

}  // namespace
}  // namespace tlscache::client
