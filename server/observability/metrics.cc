#include "server/observability/metrics.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tlscache::server {
namespace {

// Label values are escaped as the text format requires: backslash, quote and newline.
std::string Escape(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

std::string LabelSet(const std::vector<std::string>& names, const std::vector<std::string>& values,
                     const std::string& extra = "") {
  std::string out;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    absl::StrAppend(&out, out.empty() ? "" : ",", names[i], "=\"", Escape(values[i]), "\"");
  }
  if (!extra.empty()) absl::StrAppend(&out, out.empty() ? "" : ",", extra);
  return out.empty() ? "" : absl::StrCat("{", out, "}");
}

std::string Number(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::isnan(value)) return "NaN";
  return absl::StrFormat("%.17g", value);
}

void Header(const std::string& name, const std::string& help, const char* type, std::string* out) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

}  // namespace

const std::vector<double>& LatencyBuckets() {
  static const auto* buckets = new std::vector<double>{
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5};
  return *buckets;
}

Histogram::Histogram(const std::vector<double>& bounds)
    : bounds_(bounds), buckets_(new std::atomic<uint64_t>[bounds.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i] = 0;
}

void Histogram::Observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_nanos_.fetch_add(static_cast<uint64_t>(std::max(0.0, value) * 1e9),
                       std::memory_order_relaxed);
}

void Histogram::Render(const std::string& name, const std::string& labels, std::string* out) const {
  // Buckets are cumulative; labels is "a=\"x\"" or "" (no braces).
  const std::string prefix = labels.empty() ? "" : labels + ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    // Bounds in their shortest form (5e-05, 0.00025), as Prometheus clients write them.
    const std::string le = i < bounds_.size() ? absl::StrCat(bounds_[i]) : "+Inf";
    absl::StrAppend(out, name, "_bucket{", prefix, "le=\"", le, "\"} ", cumulative, "\n");
  }
  const std::string braces = labels.empty() ? "" : absl::StrCat("{", labels, "}");
  absl::StrAppend(out, name, "_sum", braces, " ",
                  Number(static_cast<double>(sum_nanos_.load(std::memory_order_relaxed)) / 1e9),
                  "\n", name, "_count", braces, " ", count_.load(std::memory_order_relaxed), "\n");
}

Metrics::CounterFamily::CounterFamily(std::string name, std::string help,
                                      std::vector<std::string> labels)
    : Family(std::move(name), std::move(help), std::move(labels),
             [] { return std::make_unique<std::atomic<uint64_t>>(0); }) {}

void Metrics::CounterFamily::Increment(const std::vector<std::string>& label_values, uint64_t by) {
  Get(label_values).fetch_add(by, std::memory_order_relaxed);
}

uint64_t Metrics::CounterFamily::Value(const std::vector<std::string>& label_values) const {
  const std::atomic<uint64_t>* series = Find(label_values);
  return series == nullptr ? 0 : series->load(std::memory_order_relaxed);
}

std::vector<std::pair<std::vector<std::string>, uint64_t>> Metrics::CounterFamily::Snapshot()
    const {
  std::vector<std::pair<std::vector<std::string>, uint64_t>> snapshot;
  ForEach([&](const std::vector<std::string>& values, const std::atomic<uint64_t>& count) {
    snapshot.emplace_back(values, count.load(std::memory_order_relaxed));
  });
  return snapshot;
}

void Metrics::CounterFamily::Render(std::string* out) const {
  Header(name_, help_, "counter", out);
  ForEach([&](const std::vector<std::string>& values, const std::atomic<uint64_t>& count) {
    absl::StrAppend(out, name_, LabelSet(labels_, values), " ",
                    count.load(std::memory_order_relaxed), "\n");
  });
}

Metrics::HistogramFamily::HistogramFamily(std::string name, std::string help,
                                          std::vector<std::string> labels)
    : Family(std::move(name), std::move(help), std::move(labels),
             [] { return std::make_unique<Histogram>(LatencyBuckets()); }) {}

void Metrics::HistogramFamily::Observe(const std::vector<std::string>& label_values,
                                       absl::Duration duration) {
  Get(label_values).Observe(absl::ToDoubleSeconds(duration));
}

void Metrics::HistogramFamily::Render(std::string* out) const {
  Header(name_, help_, "histogram", out);
  ForEach([&](const std::vector<std::string>& values, const Histogram& histogram) {
    std::string labels = LabelSet(labels_, values);
    if (!labels.empty()) labels = labels.substr(1, labels.size() - 2);
    histogram.Render(name_, labels, out);
  });
}

Metrics::CounterFamily* Metrics::AddCounter(std::string name, std::string help,
                                            std::vector<std::string> labels) {
  absl::MutexLock lock(&mu_);
  const bool single = labels.empty();
  counters_.emplace_back(new CounterFamily(std::move(name), std::move(help), std::move(labels)));
  if (single) counters_.back()->Increment({}, 0);  // a counter without labels shows 0 at once
  return counters_.back().get();
}

Metrics::HistogramFamily* Metrics::AddHistogram(std::string name, std::string help,
                                                std::vector<std::string> labels) {
  absl::MutexLock lock(&mu_);
  histograms_.emplace_back(
      new HistogramFamily(std::move(name), std::move(help), std::move(labels)));
  return histograms_.back().get();
}

void Metrics::AddGauge(std::string name, std::string help, std::vector<std::string> labels,
                       GaugeReader read) {
  absl::MutexLock lock(&mu_);
  readers_.push_back(
      {std::move(name), std::move(help), "gauge", std::move(labels), std::move(read)});
}

void Metrics::AddCounterReader(std::string name, std::string help, GaugeReader read,
                               std::vector<std::string> labels) {
  absl::MutexLock lock(&mu_);
  readers_.push_back(
      {std::move(name), std::move(help), "counter", std::move(labels), std::move(read)});
}

std::string Metrics::Render() const {
  std::string out;
  absl::MutexLock lock(&mu_);
  for (const auto& family : counters_) family->Render(&out);
  for (const auto& family : histograms_) family->Render(&out);
  for (const Reader& reader : readers_) {
    Header(reader.name, reader.help, reader.type.c_str(), &out);
    for (const GaugeSample& sample : reader.read()) {
      absl::StrAppend(&out, reader.name, LabelSet(reader.labels, sample.label_values), " ",
                      Number(sample.value), "\n");
    }
  }
  return out;
}

}  // namespace tlscache::server
