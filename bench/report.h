// What tlscache-bench prints: a progress line on stderr while a load runs, and the result as
// text or as one JSON object on stdout.
#ifndef TLSCACHE_BENCH_REPORT_H_
#define TLSCACHE_BENCH_REPORT_H_

#include <cstdint>
#include <string>
#include <thread>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/json_object.h"
#include "common/latency_histogram.h"

namespace tlscache::bench {

// Once a second, until destroyed, writes `line(time since construction)` to stderr: in place
// on a terminal, one line per second otherwise (a log keeps each).
class Progress {
 public:
  explicit Progress(absl::AnyInvocable<std::string(absl::Duration)> line);
  ~Progress();

  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

 private:
  absl::AnyInvocable<std::string(absl::Duration)> line_;
  const absl::Time start_;
  const bool terminal_;
  absl::Notification stop_;
  std::thread thread_;
};


// {"count", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us"}.
JsonObject LatencyJson(const LatencyHistogram& latency);
// "p50 0.123 ms  p90 ...  p99 ...  p99.9 ...  max ...".
std::string LatencyText(const LatencyHistogram& latency);
// `count` per second of `elapsed`.
double PerSecond(uint64_t count, absl::Duration elapsed);
// Ok when low <= value <= high; otherwise InvalidArgument "WHAT VALUE is not within LOW..HIGH".
absl::Status CheckWithin(absl::string_view what, int64_t value, int64_t low, int64_t high);

}  // namespace tlscache::bench

#endif  // TLSCACHE_BENCH_REPORT_H_
