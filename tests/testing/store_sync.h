// Blocking wrappers around the callback-style Store API, for tests.
#ifndef TLSCACHE_TESTS_TESTING_STORE_SYNC_H_
#define TLSCACHE_TESTS_TESTING_STORE_SYNC_H_

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "server/store/store.h"
#include "server/store/store_sync.h"

namespace tlscache::testing {

inline constexpr absl::Duration kStoreCallTimeout = absl::Seconds(5);

using server::AwaitStore;

// Whether it was stored (false: a deletion stands).
inline absl::StatusOr<bool> PutSync(server::Store& store, absl::string_view ns,
                                    absl::string_view id, absl::string_view session,
                                    absl::Duration ttl) {
  return AwaitStore<absl::StatusOr<bool>>([&](auto cb) {
    store.Put({ns, id}, session, ttl, absl::Now() + kStoreCallTimeout, std::move(cb));
  });
}

inline absl::StatusOr<server::StoreEntry> GetSync(server::Store& store, absl::string_view ns,
                                                  absl::string_view id, bool consume = false) {
  return AwaitStore<absl::StatusOr<server::StoreEntry>>([&](auto cb) {
    store.Get({ns, id}, consume, absl::Now() + kStoreCallTimeout, std::move(cb));
  });
}

// Whether a live entry was there.
inline absl::StatusOr<bool> DeleteSync(server::Store& store, absl::string_view ns,
                                       absl::string_view id,
                                       absl::Duration hold = absl::Seconds(60)) {
  absl::StatusOr<server::Deletion> deletion = AwaitStore<absl::StatusOr<server::Deletion>>(
      [&](auto cb) { store.Delete({ns, id}, hold, absl::Now() + kStoreCallTimeout, std::move(cb)); });
  if (!deletion.ok()) return deletion.status();
  return deletion->existed;
}

inline absl::StatusOr<bool> LiveSync(server::Store& store, absl::string_view ns,
                                     absl::string_view id) {
  return AwaitStore<absl::StatusOr<bool>>(
      [&](auto cb) { store.Live({ns, id}, absl::Now() + kStoreCallTimeout, std::move(cb)); });
}

// One change for the log of `ns` (a put, or a deletion standing for `hold`).
inline server::LogChange Change(absl::string_view session_id, absl::string_view payload,
                                bool deletion = false, absl::Duration hold = absl::ZeroDuration()) {
  return server::LogChange{std::string(session_id), deletion, hold, SecretBytes(payload)};
}

inline absl::Status AppendSync(server::Store& store, absl::string_view ns,
                               std::vector<server::LogChange> changes) {
  return AwaitStore<absl::Status>([&](auto cb) {
    store.AppendChanges(ns, std::move(changes), absl::Now() + kStoreCallTimeout, std::move(cb));
  });
}

inline absl::StatusOr<server::StoredRing> GetRingSync(server::Store& store, absl::string_view ns) {
  return server::GetRingSync(store, ns, kStoreCallTimeout);
}

inline absl::StatusOr<bool> SwapRingSync(server::Store& store, absl::string_view ns,
                                         uint64_t expected, uint64_t version,
                                         absl::string_view ring) {
  return server::SwapRingSync(store, ns, expected, version, ring, kStoreCallTimeout);
}

// How a store came back after a failure injected at some moment (a master killed).
struct Recovery {
  bool recovered = false;
  absl::Duration after;  // from the failure to the first write and read that succeeded
  int failed = 0;        // attempts that failed meanwhile
  absl::Duration slowest_failure;
  std::vector<absl::Status> unexpected;  // failures other than UNAVAILABLE or DEADLINE_EXCEEDED
};

// One entry written and read back to tell whether the store serves it.
struct Probe {
  std::string id;
  std::string session;
};

// Writes every probe under ns/id and reads it back, every 20 ms from `since`, until all of
// them succeed in one round, or for `give_up`. With a probe on each shard of a store, the
// store has recovered when every shard serves again.
inline Recovery AwaitRecovery(server::Store& store, const std::vector<Probe>& probes,
                              absl::Time since, absl::Duration give_up = absl::Seconds(30)) {
  Recovery recovery;
  while (absl::Now() - since < give_up) {
    const absl::Time start = absl::Now();
    absl::Status failure;
    for (const Probe& probe : probes) {
      const absl::Status put =
          PutSync(store, "ns", probe.id, probe.session, absl::Seconds(600)).status();
      failure = put.ok() ? GetSync(store, "ns", probe.id).status() : put;
      if (!failure.ok()) break;
    }
    if (failure.ok()) {
      recovery.recovered = true;
      recovery.after = absl::Now() - since;
      break;
    }
    if (!absl::IsUnavailable(failure) && !absl::IsDeadlineExceeded(failure)) {
      recovery.unexpected.push_back(failure);
    }
    recovery.slowest_failure = std::max(recovery.slowest_failure, absl::Now() - start);
    ++recovery.failed;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return recovery;
}

}  // namespace tlscache::testing

#endif  // TLSCACHE_TESTS_TESTING_STORE_SYNC_H_
