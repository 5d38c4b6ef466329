// The Prometheus text format that /metrics serves (server/observability/metrics.h): headers,
// label escaping, cumulative histogram buckets, gauges read at render time.
#include "server/observability/metrics.h"

#include <string>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tlscache::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(MetricsTest, ACounterHasItsHeadersAndOneLinePerLabelSet) {
  Metrics metrics;
  Metrics::CounterFamily* calls = metrics.AddCounter("calls_total", "calls made", {"method"});
  calls->Increment({"get"});
  calls->Increment({"get"}, 2);
  calls->Increment({"put"});
  const std::string text = metrics.Render();
  EXPECT_THAT(text, HasSubstr("# HELP calls_total calls made\n# TYPE calls_total counter\n"));
  EXPECT_THAT(text, HasSubstr("calls_total{method=\"get\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("calls_total{method=\"put\"} 1\n"));
  EXPECT_EQ(calls->Value({"get"}), 3u);
  EXPECT_EQ(calls->Value({"never"}), 0u);
}

TEST(MetricsTest, LabelValuesAreEscapedAsTheTextFormatRequires) {
  Metrics metrics;
  metrics.AddCounter("odd_total", "odd labels", {"v"})->Increment({"a\"b\\c\nd"});
  EXPECT_THAT(metrics.Render(), HasSubstr("odd_total{v=\"a\\\"b\\\\c\\nd\"} 1\n"));
}

TEST(MetricsTest, HistogramBucketsAreCumulativeAndEndInInf) {
  Metrics metrics;
  Metrics::HistogramFamily* latency = metrics.AddHistogram("latency_seconds", "latency", {"op"});
  latency->Observe({"get"}, absl::Microseconds(70));   // in le=0.0001
  latency->Observe({"get"}, absl::Microseconds(700));  // in le=0.001
  latency->Observe({"get"}, absl::Seconds(10));        // only in +Inf
  const std::string text = metrics.Render();
  EXPECT_THAT(text, HasSubstr("# TYPE latency_seconds histogram\n"));
  EXPECT_THAT(text, HasSubstr("latency_seconds_bucket{op=\"get\",le=\"5e-05\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("latency_seconds_bucket{op=\"get\",le=\"0.0001\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("latency_seconds_bucket{op=\"get\",le=\"0.001\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("latency_seconds_bucket{op=\"get\",le=\"2.5\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("latency_seconds_bucket{op=\"get\",le=\"+Inf\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("latency_seconds_count{op=\"get\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("latency_seconds_sum{op=\"get\"} 10.0007"));
}

TEST(MetricsTest, GaugesAreReadWhenRenderedAndCounterReadersAreTypedCounters) {
  Metrics metrics;
  double level = 1;
  metrics.AddGauge("level", "a level", {"pool"}, [&] {
    return std::vector<Metrics::GaugeSample>{{{"a"}, level}};
  });
  metrics.AddCounterReader("kept_total", "kept elsewhere", [] {
    return std::vector<Metrics::GaugeSample>{{{}, 42}};
  });
  EXPECT_THAT(metrics.Render(), HasSubstr("level{pool=\"a\"} 1\n"));
  level = 2.5;
  const std::string text = metrics.Render();
  EXPECT_THAT(text, HasSubstr("# TYPE level gauge\n"));
  EXPECT_THAT(text, HasSubstr("level{pool=\"a\"} 2.5\n"));
  EXPECT_THAT(text, Not(HasSubstr("level{pool=\"a\"} 1\n")));
  EXPECT_THAT(text, HasSubstr("# TYPE kept_total counter\nkept_total 42\n"));
}

}  // namespace
}  // namespace tlscache::server
