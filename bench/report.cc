#include "bench/report.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace tlscache::bench {
namespace {

double Micros(absl::Duration d) { return absl::ToDoubleMicroseconds(d); }

}  // namespace

Progress::Progress(absl::AnyInvocable<std::string(absl::Duration)> line)
    : line_(std::move(line)), start_(absl::Now()), terminal_(isatty(STDERR_FILENO) == 1) {
  thread_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(absl::Seconds(1))) {
      const std::string text = line_(absl::Now() - start_);
      std::fprintf(stderr, terminal_ ? "\r%s\033[K" : "%s\n", text.c_str());
      std::fflush(stderr);
    }
    if (terminal_) std::fputs("\n", stderr);
  });
}

Progress::~Progress() {
  stop_.Notify();
  thread_.join();
}

JsonObject LatencyJson(const LatencyHistogram& latency) {
  JsonObject json;
  json.Add("count", latency.count())
      .Add("p50_us", Micros(latency.Percentile(50)))
      .Add("p90_us", Micros(latency.Percentile(90)))
      .Add("p99_us", Micros(latency.Percentile(99)))
      .Add("p999_us", Micros(latency.Percentile(99.9)))
      .Add("max_us", Micros(latency.Max()))
      .Add("mean_us", Micros(latency.Mean()));
  return json;
}

std::string LatencyText(const LatencyHistogram& latency) {
  const auto ms = [](absl::Duration d) { return absl::ToDoubleMilliseconds(d); };
  return absl::StrFormat("p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms",
                         ms(latency.Percentile(50)), ms(latency.Percentile(90)),
                         ms(latency.Percentile(99)), ms(latency.Percentile(99.9)),
                         ms(latency.Max()));
}

double PerSecond(uint64_t count, absl::Duration elapsed) {
  const double seconds = absl::ToDoubleSeconds(elapsed);
  return seconds > 0 ? static_cast<double>(count) / seconds : 0.0;
}

absl::Status CheckWithin(absl::string_view what, int64_t value, int64_t low, int64_t high) {
  if (value >= low && value <= high) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, " ", value, " is not within ", low, "..", high));
}

}  // namespace tlscache::bench
