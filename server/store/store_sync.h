// Blocking forms of the callback-style Store calls, for threads that may block (background
// loops, tests); never for a gRPC reaction.
#ifndef TLSCACHE_SERVER_STORE_STORE_SYNC_H_
#define TLSCACHE_SERVER_STORE_STORE_SYNC_H_

#include <optional>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "server/store/store.h"

namespace tlscache::server {

// Runs `call(done)` and waits until `done` ran; returns what it was given.
template <typename T, typename Call>
T AwaitStore(Call call) {
  absl::Notification finished;
  std::optional<T> result;
  call([&](T r) {
    result.emplace(std::move(r));
    finished.Notify();
  });
  finished.WaitForNotification();
  return *std::move(result);
}

inline absl::StatusOr<StoredRing> GetRingSync(Store& store, absl::string_view ns,
                                              absl::Duration timeout) {
  return AwaitStore<absl::StatusOr<StoredRing>>(
      [&](auto done) { store.GetRing(ns, absl::Now() + timeout, std::move(done)); });
}

inline absl::StatusOr<bool> SwapRingSync(Store& store, absl::string_view ns, uint64_t expected,
                                         uint64_t version, absl::string_view ring,
                                         absl::Duration timeout) {
  return AwaitStore<absl::StatusOr<bool>>([&](auto done) {
    store.SwapRing(ns, expected, version, ring, absl::Now() + timeout, std::move(done));
  });
}

inline absl::StatusOr<std::vector<FollowerReport>> ListFollowersSync(Store& store,
                                                                     absl::string_view ns,
                                                                     absl::Duration timeout) {
  return AwaitStore<absl::StatusOr<std::vector<FollowerReport>>>(
      [&](auto done) { store.ListFollowers(ns, absl::Now() + timeout, std::move(done)); });
}

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_STORE_STORE_SYNC_H_
