// LogCollector: follows a store's change log of one namespace (Store::FollowLog) and keeps
// everything it receives, for tests.
#ifndef TLSCACHE_TESTS_TESTING_LOG_COLLECTOR_H_
#define TLSCACHE_TESTS_TESTING_LOG_COLLECTOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/store/store.h"

namespace tlscache::testing {

class LogCollector {
 public:
  // A change as received, with its number; or (start) where a subscription began; or (lost)
  // that it broke.
  struct Received {
    bool start = false;
    std::string log_id;
    uint64_t seq = 0;
    std::string session_id;
    std::string payload;
    bool lost = false;
  };

  LogCollector(server::Store& store, absl::string_view ns)
      : subscription_(store.FollowLog(ns, [this](server::LogEvent event) {
          absl::MutexLock lock(&mu_);
          if (event.kind == server::LogEvent::Kind::kStart) {
            received_.push_back(Received{true, event.log_id, event.seq, "", ""});
            return;
          }
          if (event.kind == server::LogEvent::Kind::kLost) {
            received_.push_back(Received{false, "", 0, "", "", true});
            return;
          }
          uint64_t seq = event.seq;
          for (const server::LogEntry& entry : event.entries) {
            received_.push_back(
                Received{false, event.log_id, seq++, entry.session_id, std::string(entry.payload.view())});
          }
        })) {}

  // The first start, once the subscription has one.
  bool Started(absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(+[](std::vector<Received>* r) { return !r->empty(); },
                                                &received_),
                                timeout);
  }

  bool Has(absl::string_view payload) {
    absl::MutexLock lock(&mu_);
    for (const Received& r : received_) {
      if (!r.start && !r.lost && r.payload == payload) return true;
    }
    return false;
  }

  std::vector<Received> received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }

  std::vector<Received> changes() {
    std::vector<Received> out;
    for (Received& r : received()) {
      if (!r.start && !r.lost) out.push_back(std::move(r));
    }
    return out;
  }

  int starts() {
    int n = 0;
    for (const Received& r : received()) n += r.start ? 1 : 0;
    return n;
  }

  int losses() {
    int n = 0;
    for (const Received& r : received()) n += r.lost ? 1 : 0;
    return n;
  }

  // Whether every start after the first came after a loss that said the subscription broke.
  bool EveryRestartAfterALoss() {
    bool started = false;
    bool lost = false;
    for (const Received& r : received()) {
      if (r.lost) lost = true;
      if (!r.start) continue;
      if (started && !lost) return false;
      started = true;
      lost = false;
    }
    return true;
  }

  // Whether every change received follows the one before by number, in the same log, or is
  // one a start before it already stood past (published between the subscription and the
  // reading of the log's position: a follower takes it as seen).
  bool Consecutive() {
    std::vector<Received> all = received();
    std::string log_id;
    uint64_t at = 0;  // the last number the subscriber accounts for
    bool begun = false;
    for (const Received& r : all) {
      if (r.lost) continue;
      if (r.start) {
        log_id = r.log_id;
        at = r.seq;
        begun = !(r.log_id.empty() && r.seq == 0);
        continue;
      }
      if (!begun) {  // a log that had not begun begins at 1
        if (r.seq != 1) return false;
        begun = true;
      } else if (r.log_id != log_id || r.seq > at + 1) {
        return false;
      }
      log_id = r.log_id;
      at = std::max(at, r.seq);
    }
    return true;
  }

  // Appends a put of `payload` under `session_id` through `from` (again every 100 ms: a
  // subscription comes up in the background) until this collector has it; false after
  // `timeout`.
  bool AppendUntilReceived(server::Store& from, absl::string_view ns, absl::string_view session_id,
                           absl::string_view payload, absl::Duration timeout = absl::Seconds(15)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      Append(from, ns, session_id, payload);
      const absl::Time next = absl::Now() + absl::Milliseconds(100);
      while (absl::Now() < next) {
        if (Has(payload)) return true;
        absl::SleepFor(absl::Milliseconds(5));
      }
    }
    return Has(payload);
  }

  static void Append(server::Store& from, absl::string_view ns, absl::string_view session_id,
                     absl::string_view payload, bool deletion = false,
                     absl::Duration hold = absl::ZeroDuration()) {
    std::vector<server::LogChange> changes;
    changes.push_back(
        server::LogChange{std::string(session_id), deletion, hold, SecretBytes(payload)});
    from.AppendChanges(ns, std::move(changes), absl::Now() + absl::Seconds(1), [](absl::Status) {});
  }

 private:
  absl::Mutex mu_;
  std::vector<Received> received_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<server::Subscription> subscription_;  // last: stops first
};

}  // namespace tlscache::testing

#endif  // TLSCACHE_TESTS_TESTING_LOG_COLLECTOR_H_
