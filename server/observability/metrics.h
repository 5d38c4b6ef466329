// Metrics: the service's counters and histograms, rendered in the Prometheus text format
// (version 0.0.4) for /metrics.
//
// Families are created once, at startup, and looked up by label values on each observation;
// the label sets are small and fixed (methods and status codes), so a series is found under a
// shared lock and updated with atomics.
//
// Thread-safety: every method may be called from any thread.
#ifndef TLSCACHE_SERVER_OBSERVABILITY_METRICS_H_
#define TLSCACHE_SERVER_OBSERVABILITY_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tlscache::server {

// A cumulative histogram with fixed upper bounds (seconds).
class Histogram {
 public:
  explicit Histogram(const std::vector<double>& bounds);
  void Observe(double value);
  // Appends the _bucket, _sum and _count lines for series `name{labels}`.
  void Render(const std::string& name, const std::string& labels, std::string* out) const;

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1 (the +Inf bucket)
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_nanos_{0};  // sum in nanoseconds: exact, and atomic as an integer
};

// Latency buckets from 50 µs to 2.5 s: a cache call is sub-millisecond when healthy.
const std::vector<double>& LatencyBuckets();

class Metrics {
 public:
  // The series of one metric family by label values, each created on first use. Series are
  // never removed, so a reference to one stays valid.
  template <typename Series>
  class Family {
   protected:
    using Make = std::unique_ptr<Series> (*)();
    Family(std::string name, std::string help, std::vector<std::string> labels, Make make)
        : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)), make_(make) {}

    Series& Get(const std::vector<std::string>& label_values) {
      if (Series* found = Find(label_values)) return *found;
      absl::MutexLock lock(&mu_);
      std::unique_ptr<Series>& series = series_[label_values];
      if (series == nullptr) series = make_();
      return *series;
    }
    Series* Find(const std::vector<std::string>& label_values) const {
      absl::ReaderMutexLock lock(&mu_);
      auto it = series_.find(label_values);
      return it == series_.end() ? nullptr : it->second.get();
    }
    template <typename Fn>
    void ForEach(Fn fn) const {
      absl::ReaderMutexLock lock(&mu_);
      for (const auto& [values, series] : series_) fn(values, *series);
    }

    const std::string name_, help_;
    const std::vector<std::string> labels_;

   private:
    const Make make_;
    mutable absl::Mutex mu_;
    std::map<std::vector<std::string>, std::unique_ptr<Series>> series_ ABSL_GUARDED_BY(mu_);
  };

  // A family of counters by one label set, e.g. tlscache_requests_total{method,code}.
  class CounterFamily : public Family<std::atomic<uint64_t>> {
   public:
    void Increment(const std::vector<std::string>& label_values, uint64_t by = 1);
    uint64_t Value(const std::vector<std::string>& label_values) const;
    // Every series: its label values and count.
    std::vector<std::pair<std::vector<std::string>, uint64_t>> Snapshot() const;

   private:
    friend class Metrics;
    CounterFamily(std::string name, std::string help, std::vector<std::string> labels);
    void Render(std::string* out) const;
  };

  class HistogramFamily : public Family<Histogram> {
   public:
    void Observe(const std::vector<std::string>& label_values, absl::Duration duration);

   private:
    friend class Metrics;
    HistogramFamily(std::string name, std::string help, std::vector<std::string> labels);
    void Render(std::string* out) const;
  };

  // A value read when rendered: one sample per returned (label values, value).
  struct GaugeSample {
    std::vector<std::string> label_values;
    double value;
  };
  using GaugeReader = std::function<std::vector<GaugeSample>()>;

  // The returned families live as long as the Metrics.
  CounterFamily* AddCounter(std::string name, std::string help, std::vector<std::string> labels);
  HistogramFamily* AddHistogram(std::string name, std::string help,
                                std::vector<std::string> labels);
  void AddGauge(std::string name, std::string help, std::vector<std::string> labels,
                GaugeReader read);
  // Like a gauge, but rendered as a counter (a total kept elsewhere, e.g. by a store).
  void AddCounterReader(std::string name, std::string help, GaugeReader read,
                        std::vector<std::string> labels = {});

  std::string Render() const;

 private:
  struct Reader {
    std::string name, help, type;
    std::vector<std::string> labels;
    GaugeReader read;
  };

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<CounterFamily>> counters_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<HistogramFamily>> histograms_ ABSL_GUARDED_BY(mu_);
  std::vector<Reader> readers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_OBSERVABILITY_METRICS_H_
