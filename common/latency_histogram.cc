#include "common/latency_histogram.h"

#include <algorithm>
#include <cmath>

namespace tlscache {

int LatencyHistogram::BucketOf(uint64_t ns) {
  if (ns < 2 * kSubBuckets) return static_cast<int>(ns);
  // Keep the 7 most significant bits: (ns >> shift) is in [64, 128).
  const int shift = (63 - __builtin_clzll(ns)) - 6;
  const int bucket = 2 * kSubBuckets + (shift - 1) * kSubBuckets +
                     static_cast<int>((ns >> shift) - kSubBuckets);
  return std::min(bucket, kBuckets - 1);
}

uint64_t LatencyHistogram::UpperBound(int bucket) {
  if (bucket < 2 * kSubBuckets) return static_cast<uint64_t>(bucket);
  const int shift = (bucket - 2 * kSubBuckets) / kSubBuckets + 1;
  const uint64_t top = (bucket - 2 * kSubBuckets) % kSubBuckets + kSubBuckets;
  return ((top + 1) << shift) - 1;
}

void LatencyHistogram::Record(absl::Duration latency) {
  const uint64_t ns = static_cast<uint64_t>(std::max<int64_t>(0, absl::ToInt64Nanoseconds(latency)));
  ++buckets_[BucketOf(ns)];
  ++count_;
  sum_ns_ += ns;
  max_ns_ = std::max(max_ns_, ns);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (int i = 0; i < kBuckets; ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_ns_ += other.sum_ns_;
  max_ns_ = std::max(max_ns_, other.max_ns_);
}

absl::Duration LatencyHistogram::Percentile(double percent) const {
  if (count_ == 0) return absl::ZeroDuration();
  const double clamped = std::clamp(percent, 0.0, 100.0);
  const uint64_t rank =
      std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(clamped / 100.0 * count_)));
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += buckets_[i];
    if (seen >= rank) {
      // The last bucket also holds everything beyond it.
      return absl::Nanoseconds(i == kBuckets - 1 ? max_ns_ : std::min(UpperBound(i), max_ns_));
    }
  }
  return Max();
}

absl::Duration LatencyHistogram::Mean() const {
  return count_ == 0 ? absl::ZeroDuration() : absl::Nanoseconds(sum_ns_ / count_);
}

}  // namespace tlscache
