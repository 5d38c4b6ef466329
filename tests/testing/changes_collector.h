// ChangesCollector: subscribes to a store's changes of one namespace (Store::SubscribeChanges)
// and keeps every batch it receives, for tests.
#ifndef TLSCACHE_TESTS_TESTING_CHANGES_COLLECTOR_H_
#define TLSCACHE_TESTS_TESTING_CHANGES_COLLECTOR_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/store/store.h"

namespace tlscache::testing {

class ChangesCollector {
 public:
  ChangesCollector(server::Store& store, absl::string_view ns)
      : subscription_(store.SubscribeChanges(ns, [this](absl::string_view, SecretBytes batch) {
          absl::MutexLock lock(&mu_);
          batches_.emplace_back(batch.view());
        })) {}

  bool subscribed() const { return subscription_ != nullptr; }

  bool Has(absl::string_view batch) {
    absl::MutexLock lock(&mu_);
    for (const std::string& b : batches_) {
      if (b == batch) return true;
    }
    return false;
  }

  std::vector<std::string> batches() {
    absl::MutexLock lock(&mu_);
    return batches_;
  }

  // Publishes `batch` through `from` (again every 100 ms: a subscription comes up in the
  // background) until this collector has it; false after `timeout`.
  bool PublishUntilReceived(server::Store& from, absl::string_view ns, absl::string_view batch,
                            absl::Duration timeout = absl::Seconds(15)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      from.PublishChanges(ns, batch, absl::Now() + absl::Seconds(1), [](absl::Status) {});
      const absl::Time next = absl::Now() + absl::Milliseconds(100);
      while (absl::Now() < next) {
        if (Has(batch)) return true;
        absl::SleepFor(absl::Milliseconds(5));
      }
    }
    return Has(batch);
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> batches_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<server::ChangesSubscription> subscription_;  // last: stops first
};

}  // namespace tlscache::testing

#endif  // TLSCACHE_TESTS_TESTING_CHANGES_COLLECTOR_H_
