#include "server/store/instrumented_store.h"

#include <string>
#include <utility>

#include "absl/time/clock.h"

namespace tlscache::server {
namespace {

class InstrumentedStore final : public Store {
 public:
  InstrumentedStore(std::unique_ptr<Store> inner, Metrics& metrics)
      : inner_(std::move(inner)),
        duration_(metrics.AddHistogram("tlscache_store_duration_seconds",
                                       "store operation latency, until its answer", {"op"})),
        errors_(metrics.AddCounter("tlscache_store_errors_total",
                                   "store operations that failed (a miss is not a failure)",
                                   {"op"})) {}

  void Put(const StoreKey& key, absl::string_view session, absl::Duration ttl, absl::Time deadline,
           PutDone done) override {
    inner_->Put(key, session, ttl, deadline,
                [this, start = absl::Now(), done = std::move(done)](absl::Status s) mutable {
                  Record("put", start, s);
                  std::move(done)(std::move(s));
                });
  }
  void Get(const StoreKey& key, bool consume, absl::Time deadline, GetDone done) override {
    inner_->Get(key, consume, deadline,
                [this, start = absl::Now(),
                 done = std::move(done)](absl::StatusOr<StoreEntry> entry) mutable {
                  Record("get", start, entry.status());
                  std::move(done)(std::move(entry));
                });
  }
  void Delete(const StoreKey& key, absl::Time deadline, DeleteDone done) override {
    inner_->Delete(
        key, deadline,
        [this, start = absl::Now(), done = std::move(done)](absl::StatusOr<bool> existed) mutable {
          Record("delete", start, existed.status());
          std::move(done)(std::move(existed));
        });
  }
  void GetRing(absl::string_view ns, absl::Time deadline, GetRingDone done) override {
    inner_->GetRing(ns, deadline,
                    [this, start = absl::Now(),
                     done = std::move(done)](absl::StatusOr<StoredRing> ring) mutable {
                      Record("get_ring", start, ring.status());
                      std::move(done)(std::move(ring));
                    });
  }
  void SwapRing(absl::string_view ns, uint64_t expected, uint64_t version, absl::string_view ring,
                absl::Time deadline, SwapRingDone done) override {
    inner_->SwapRing(
        ns, expected, version, ring, deadline,
        [this, start = absl::Now(), done = std::move(done)](absl::StatusOr<bool> swapped) mutable {
          Record("swap_ring", start, swapped.status());
          std::move(done)(std::move(swapped));
        });
  }
  bool SharesChanges() const override { return inner_->SharesChanges(); }
  void PublishChanges(absl::string_view ns, absl::string_view batch, absl::Time deadline,
                      PutDone done) override {
    inner_->PublishChanges(
        ns, batch, deadline,
        [this, start = absl::Now(), done = std::move(done)](absl::Status s) mutable {
          Record("publish", start, s);
          std::move(done)(std::move(s));
        });
  }
  std::unique_ptr<ChangesSubscription> SubscribeChanges(absl::string_view ns,
                                                        ChangesHandler handler) override {
    return inner_->SubscribeChanges(ns, std::move(handler));
  }
  absl::Status Health() override { return inner_->Health(); }
  std::string Describe() const override { return inner_->Describe(); }
  void AddStats(StoreStats* stats) const override { inner_->AddStats(stats); }

 private:
  void Record(const char* op, absl::Time start, const absl::Status& status) {
    duration_->Observe({op}, absl::Now() - start);
    if (!status.ok() && !absl::IsNotFound(status)) errors_->Increment({op});
  }

  const std::unique_ptr<Store> inner_;
  Metrics::HistogramFamily* const duration_;
  Metrics::CounterFamily* const errors_;
};

}  // namespace

std::unique_ptr<Store> InstrumentStore(std::unique_ptr<Store> inner, Metrics& metrics) {
  return std::make_unique<InstrumentedStore>(std::move(inner), metrics);
}

}  // namespace tlscache::server
