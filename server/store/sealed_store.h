// SealedStore: a Store that seals every value before it reaches the store beneath it and
// opens it on the way back (server/security/sealer.h). Sessions are bound to their namespace and
// session ID, rings to their namespace.
//
// A value that does not open (tampered, moved under another key or namespace, sealed with a
// key no longer configured, or stored before sealing was turned on) is a miss: Get answers
// NotFound and the failure is counted and logged (at most once a minute, never with bytes). A
// ring that does not open comes back with its version and no bytes, so the ticket key service
// can replace it by compare-and-set.
//
// Thread-safety: as Store.
#ifndef TLSCACHE_SERVER_STORE_SEALED_STORE_H_
#define TLSCACHE_SERVER_STORE_SEALED_STORE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "common/log.h"
#include "server/security/sealer.h"
#include "server/store/store.h"

namespace tlscache::server {

class SealedStore final : public Store {
 public:
  SealedStore(std::unique_ptr<Store> inner, std::unique_ptr<Sealer> sealer);

  void Put(const StoreKey& key, absl::string_view session, absl::Duration ttl, absl::Time deadline,
           PutDone done) override;
  void Get(const StoreKey& key, bool consume, absl::Time deadline, GetDone done) override;
  void Delete(const StoreKey& key, absl::Duration hold, absl::Time deadline,
              DeleteDone done) override {
    inner_->Delete(key, hold, deadline, std::move(done));
  }
  void Live(const StoreKey& key, absl::Time deadline, LiveDone done) override {
    inner_->Live(key, deadline, std::move(done));
  }
  void GetRing(absl::string_view ns, absl::Time deadline, GetRingDone done) override;
  void SwapRing(absl::string_view ns, uint64_t expected, uint64_t version, absl::string_view ring,
                absl::Time deadline, SwapRingDone done) override;
  // Each change in the log is sealed too (kind kChanges, bound to the namespace and the
  // session ID): nothing crosses the store's pub/sub unsealed. A change that does not open is
  // left out of what the subscriber receives (and counted); its number is skipped, which the
  // subscriber's followers see as a gap.
  void AppendChanges(absl::string_view ns, std::vector<LogChange> changes, absl::Time deadline,
                     StatusDone done) override;
  std::unique_ptr<Subscription> FollowLog(absl::string_view ns, LogHandler handler) override;
  // Reports are not secret: passed through as they are.
  void ReportFollower(absl::string_view ns, const FollowerReport& report, absl::Time deadline,
                      StatusDone done) override {
    inner_->ReportFollower(ns, report, deadline, std::move(done));
  }
  void ForgetFollower(absl::string_view ns, const FollowerReport& stale, absl::Time deadline,
                      StatusDone done) override {
    inner_->ForgetFollower(ns, stale, deadline, std::move(done));
  }
  void ListFollowers(absl::string_view ns, absl::Time deadline, FollowersDone done) override {
    inner_->ListFollowers(ns, deadline, std::move(done));
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
  std::string Describe() const override;
  void AddStats(StoreStats* stats) const override;

  // Values read back that did not open, since start.
  uint64_t open_failures() const { return open_failures_.load(std::memory_order_relaxed); }

 private:
  void CountOpenFailure(absl::string_view what, const absl::Status& why);

  const std::unique_ptr<Store> inner_;
  const std::unique_ptr<Sealer> sealer_;
  std::atomic<uint64_t> open_failures_{0};
  LogLimiter report_{absl::Minutes(1)};
};

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_STORE_SEALED_STORE_H_
