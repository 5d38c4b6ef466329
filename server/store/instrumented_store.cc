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
    inner_->Put(key, session, ttl, deadline, Timed<bool>("put", std::move(done)));
  }
  void Get(const StoreKey& key, bool consume, absl::Time deadline, GetDone done) override {
    inner_->Get(key, consume, deadline, Timed<StoreEntry>("get", std::move(done)));
  }
  void Delete(const StoreKey& key, absl::Duration hold, absl::Time deadline,
              DeleteDone done) override {
    inner_->Delete(key, hold, deadline, Timed<Deletion>("delete", std::move(done)));
  }
  void Live(const StoreKey& key, absl::Time deadline, LiveDone done) override {
    inner_->Live(key, deadline, Timed<bool>("live", std::move(done)));
  }
  void GetRing(absl::string_view ns, absl::Time deadline, GetRingDone done) override {
    inner_->GetRing(ns, deadline, Timed<StoredRing>("get_ring", std::move(done)));
  }
  void SwapRing(absl::string_view ns, uint64_t expected, uint64_t version, absl::string_view ring,
                absl::Time deadline, SwapRingDone done) override {
    inner_->SwapRing(ns, expected, version, ring, deadline,
                     Timed<bool>("swap_ring", std::move(done)));
  }
  void AppendChanges(absl::string_view ns, std::vector<LogChange> changes, absl::Time deadline,
                     StatusDone done) override {
    inner_->AppendChanges(ns, std::move(changes), deadline, TimedStatus("append", std::move(done)));
  }
  std::unique_ptr<Subscription> FollowLog(absl::string_view ns, LogHandler handler) override {
    return inner_->FollowLog(ns, std::move(handler));
  }
  void ReportFollower(absl::string_view ns, const FollowerReport& report, absl::Time deadline,
                      StatusDone done) override {
    inner_->ReportFollower(ns, report, deadline, TimedStatus("report_follower", std::move(done)));
  }
  void ForgetFollower(absl::string_view ns, const FollowerReport& stale, absl::Time deadline,
                      StatusDone done) override {
    inner_->ForgetFollower(ns, stale, deadline, TimedStatus("forget_follower", std::move(done)));
  }
  void ListFollowers(absl::string_view ns, absl::Time deadline, FollowersDone done) override {
    inner_->ListFollowers(ns, deadline,
                          Timed<std::vector<FollowerReport>>("list_followers", std::move(done)));
  }
  void PublishNotice(absl::string_view channel, absl::string_view payload, absl::Time deadline,
                     StatusDone done) override {
    inner_->PublishNotice(channel, payload, deadline, std::move(done));
  }
  std::unique_ptr<Subscription> SubscribeNotices(absl::string_view channel,
                                                 NoticeHandler handler) override {
    return inner_->SubscribeNotices(channel, std::move(handler));
  }
  absl::Status Health() override { return inner_->Health(); }
  std::string Describe() const override { return inner_->Describe(); }
  void AddStats(StoreStats* stats) const override { inner_->AddStats(stats); }

 private:
  // `done`, timed and counted under `op`.
  template <typename T>
  absl::AnyInvocable<void(absl::StatusOr<T>) &&> Timed(const char* op,
                                                       absl::AnyInvocable<void(absl::StatusOr<T>) &&> done) {
    return [this, op, start = absl::Now(), done = std::move(done)](absl::StatusOr<T> r) mutable {
      Record(op, start, r.status());
      std::move(done)(std::move(r));
    };
  }

  StatusDone TimedStatus(const char* op, StatusDone done) {
    return [this, op, start = absl::Now(), done = std::move(done)](absl::Status s) mutable {
      Record(op, start, s);
      std::move(done)(std::move(s));
    };
  }

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
