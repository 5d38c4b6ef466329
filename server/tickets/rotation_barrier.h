// RotationBarrier: whether a namespace's ring may rotate now, given what its followers hold.
//
// Every follower of a ring (a plugin's process, a keysync) reports the version it holds and
// renews that report within its lease. A ring at version V carries a PENDING key that the
// next rotation makes ACTIVE; a follower holding V or later can decrypt with that key. So a
// rotation goes ahead only when every follower whose lease runs holds V: no node then encrypts
// with a key another live node cannot decrypt. A follower whose lease ended stops counting
// (it is named as left behind if it was behind); one that keeps reporting an older version
// holds the rotation for at most `timeout`, then is named as left behind too.
//
// Thread-safety: all methods are thread-safe.
#ifndef TLSCACHE_SERVER_TICKETS_ROTATION_BARRIER_H_
#define TLSCACHE_SERVER_TICKETS_ROTATION_BARRIER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store/store.h"

namespace tlscache::server {

struct BarrierPolicy {
  // How long a follower's report counts.
  absl::Duration lease = absl::Seconds(30);
  // How long a due rotation waits for live followers that lag.
  absl::Duration timeout = absl::Minutes(5);
};

// What the followers' reports say about rotating a ring at `ring_version` now.
struct BarrierVerdict {
  bool rotate = false;
  size_t live = 0;                      // followers whose lease runs
  std::vector<FollowerReport> lagging;  // live, holding an older version
  std::vector<FollowerReport> lapsed;   // lease ended while holding an older version
  std::vector<FollowerReport> gone;     // lease ended, up to date: only to forget
  absl::Duration waited;                // how long the rotation has been held
};

// The pure rule, for tests: `held_since` is when this rotation was first held (now if it
// was not).
BarrierVerdict JudgeFollowers(const std::vector<FollowerReport>& reports, uint64_t ring_version,
                              absl::Time now, absl::Time held_since, const BarrierPolicy& policy);

// A follower a rotation went ahead without, and why.
struct LeftBehind {
  std::string ns;
  std::string follower;
  std::string reason;  // "lease_ended" or "timeout"
  bool operator<(const LeftBehind& o) const {
    return std::tie(ns, follower, reason) < std::tie(o.ns, o.follower, o.reason);
  }
};

class RotationBarrier {
 public:
  explicit RotationBarrier(const BarrierPolicy& policy) : policy_(policy) {}

  const BarrierPolicy& policy() const { return policy_; }

  // Judges a rotation of `ns` at `ring_version` now, logs what it waits for, and keeps the
  // figures below. When it lets the rotation go, call Passed() after the attempt.
  BarrierVerdict Judge(const std::string& ns, const std::vector<FollowerReport>& reports,
                       uint64_t ring_version, absl::Time now);
  // What the followers hold now, between rotations (for the metrics).
  void Observe(const std::string& ns, const std::vector<FollowerReport>& reports,
               uint64_t ring_version, absl::Time now);
  // The rotation that Judge() let go was attempted: its wait ends; if it `landed`, the
  // followers it went ahead without are logged and counted.
  void Passed(const std::string& ns, bool landed);
  // The namespace is no longer kept.
  void Forget(const std::string& ns);

  struct Figures {
    size_t live = 0;
    size_t lagging = 0;
    absl::Duration held;       // how long a due rotation has been held; zero if none is
    absl::Duration last_wait;  // how long the last rotation waited for followers
  };
  std::map<std::string, Figures> figures(absl::Time now) const;
  std::map<LeftBehind, uint64_t> left_behind() const;

 private:
  struct State {
    Figures figures;
    absl::Time held_since = absl::InfiniteFuture();
    BarrierVerdict let_go;  // the verdict of the rotation being attempted
  };

  const BarrierPolicy policy_;
  mutable absl::Mutex mu_;
  std::map<std::string, State> states_ ABSL_GUARDED_BY(mu_);
  std::map<LeftBehind, uint64_t> left_behind_ ABSL_GUARDED_BY(mu_);
};

// "a (version 3), b (version 4)", for messages.
std::string DescribeFollowers(const std::vector<FollowerReport>& followers);

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_TICKETS_ROTATION_BARRIER_H_
