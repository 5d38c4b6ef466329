#include "common/latency_histogram.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace tlscache {
namespace {

// Within the histogram's promise: 64 buckets per power of two.
void ExpectNear(absl::Duration actual, absl::Duration expected) {
  const double ratio = absl::FDivDuration(actual, expected);
  EXPECT_GE(ratio, 1.0 - 1.0 / 64) << actual << " vs " << expected;
  EXPECT_LE(ratio, 1.0 + 1.0 / 64) << actual << " vs " << expected;
}

TEST(LatencyHistogramTest, EmptyHistogramReportsZero) {
  LatencyHistogram histogram;
  EXPECT_EQ(histogram.count(), 0u);
  EXPECT_EQ(histogram.Percentile(50), absl::ZeroDuration());
  EXPECT_EQ(histogram.Mean(), absl::ZeroDuration());
  EXPECT_EQ(histogram.Max(), absl::ZeroDuration());
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram histogram;
  for (int ns = 1; ns <= 100; ++ns) histogram.Record(absl::Nanoseconds(ns));
  EXPECT_EQ(histogram.Percentile(50), absl::Nanoseconds(50));
  EXPECT_EQ(histogram.Percentile(99), absl::Nanoseconds(99));
  EXPECT_EQ(histogram.Percentile(100), absl::Nanoseconds(100));
  EXPECT_EQ(histogram.Percentile(0), absl::Nanoseconds(1));
}

TEST(LatencyHistogramTest, PercentilesOfAUniformSpreadAreWithinOneBucket) {
  LatencyHistogram histogram;
  // 1 us to 10 ms in 1 us steps.
  for (int us = 1; us <= 10000; ++us) histogram.Record(absl::Microseconds(us));
  EXPECT_EQ(histogram.count(), 10000u);
  ExpectNear(histogram.Percentile(50), absl::Microseconds(5000));
  ExpectNear(histogram.Percentile(90), absl::Microseconds(9000));
  ExpectNear(histogram.Percentile(99), absl::Microseconds(9900));
  ExpectNear(histogram.Percentile(99.9), absl::Microseconds(9990));
  EXPECT_EQ(histogram.Max(), absl::Microseconds(10000));
  EXPECT_EQ(histogram.Mean(), absl::Nanoseconds(5000500));
}

TEST(LatencyHistogramTest, ATailShowsOnlyInTheHighPercentiles) {
  LatencyHistogram histogram;
  for (int i = 0; i < 990; ++i) histogram.Record(absl::Microseconds(100));
  for (int i = 0; i < 10; ++i) histogram.Record(absl::Milliseconds(20));
  ExpectNear(histogram.Percentile(50), absl::Microseconds(100));
  ExpectNear(histogram.Percentile(99), absl::Microseconds(100));
  ExpectNear(histogram.Percentile(99.9), absl::Milliseconds(20));
}

TEST(LatencyHistogramTest, MergeEqualsRecordingEverythingInOne) {
  LatencyHistogram a, b, all;
  for (int i = 1; i <= 500; ++i) {
    a.Record(absl::Microseconds(i));
    all.Record(absl::Microseconds(i));
    b.Record(absl::Milliseconds(i));
    all.Record(absl::Milliseconds(i));
  }
  a.Merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.Max(), all.Max());
  EXPECT_EQ(a.Mean(), all.Mean());
  for (double p : {1.0, 25.0, 50.0, 75.0, 99.0, 99.9}) EXPECT_EQ(a.Percentile(p), all.Percentile(p));
}

TEST(LatencyHistogramTest, ExtremesAreClampedNotLost) {
  LatencyHistogram histogram;
  histogram.Record(absl::Nanoseconds(-5));  // a clock that stepped back
  histogram.Record(absl::Hours(2));         // beyond the last bucket
  EXPECT_EQ(histogram.count(), 2u);
  EXPECT_EQ(histogram.Percentile(0), absl::ZeroDuration());
  EXPECT_EQ(histogram.Percentile(100), absl::Hours(2));
}

}  // namespace
}  // namespace tlscache
