// LatencyHistogram: latencies in log-linear buckets (64 per power of two, so any percentile
// is within 1.6% of the true value) from 1 ns to about 36 minutes (longer ones fall in the
// last bucket), in a fixed 18 KiB.
// Recording is a few instructions and never allocates, so one histogram per load slot can be
// recorded on the hot path and the slots merged at the end.
//
// Thread-safety: none; each recorder owns its histogram.
#ifndef TLSCACHE_COMMON_LATENCY_HISTOGRAM_H_
#define TLSCACHE_COMMON_LATENCY_HISTOGRAM_H_

#include <array>
#include <cstdint>

#include "absl/time/time.h"

namespace tlscache {

class LatencyHistogram {
 public:
  void Record(absl::Duration latency);
  void Merge(const LatencyHistogram& other);

  uint64_t count() const { return count_; }
  // The smallest recorded latency that `percent` (0..100) of the records do not exceed,
  // to the bucket's precision; zero when nothing was recorded.
  absl::Duration Percentile(double percent) const;
  absl::Duration Mean() const;
  absl::Duration Max() const { return absl::Nanoseconds(max_ns_); }

 private:
  static constexpr int kSubBuckets = 64;
  // Values below 2 * kSubBuckets ns have a bucket each; above, 64 buckets per power of two.
  static constexpr int kBuckets = 2 * kSubBuckets + 34 * kSubBuckets;

  static int BucketOf(uint64_t ns);
  static uint64_t UpperBound(int bucket);

  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  uint64_t sum_ns_ = 0;
  uint64_t max_ns_ = 0;
};

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_LATENCY_HISTOGRAM_H_
