#include "server/tickets/rotation_barrier.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"

namespace tlscache::server {

std::string DescribeFollowers(const std::vector<FollowerReport>& followers) {
  return absl::StrJoin(followers, ", ", [](std::string* out, const FollowerReport& f) {
    absl::StrAppend(out, f.follower, " (version ", f.version, ")");
  });
}

BarrierVerdict JudgeFollowers(const std::vector<FollowerReport>& reports, uint64_t ring_version,
                              absl::Time now, absl::Time held_since, const BarrierPolicy& policy) {
  BarrierVerdict verdict;
  const int64_t now_ms = absl::ToUnixMillis(now);
  for (const FollowerReport& report : reports) {
    const bool behind = report.version < ring_version;
    if (report.lease_ends_unix_ms > now_ms) {
      ++verdict.live;
      if (behind) verdict.lagging.push_back(report);
    } else {
      (behind ? verdict.lapsed : verdict.gone).push_back(report);
    }
  }
  verdict.waited = std::max(absl::ZeroDuration(), now - held_since);
  verdict.rotate = verdict.lagging.empty() || verdict.waited >= policy.timeout;
  return verdict;
}

BarrierVerdict RotationBarrier::Judge(const std::string& ns,
                                      const std::vector<FollowerReport>& reports,
                                      uint64_t ring_version, absl::Time now) {
  absl::MutexLock lock(&mu_);
  State& state = states_[ns];
  const absl::Time held_since = std::min(state.held_since, now);
  BarrierVerdict verdict = JudgeFollowers(reports, ring_version, now, held_since, policy_);
  state.figures.live = verdict.live;
  state.figures.lagging = verdict.lagging.size();
  if (verdict.rotate) {
    state.let_go = verdict;
    return verdict;
  }
  if (state.held_since == absl::InfiniteFuture()) {
    state.held_since = now;
    LogInfo("ticket keys: namespace %s: the rotation waits for %d followers to hold version %d: %s",
            ns, verdict.lagging.size(), ring_version, DescribeFollowers(verdict.lagging));
  }
  return verdict;
}

void RotationBarrier::Observe(const std::string& ns, const std::vector<FollowerReport>& reports,
                              uint64_t ring_version, absl::Time now) {
  const BarrierVerdict verdict = JudgeFollowers(reports, ring_version, now, now, policy_);
  absl::MutexLock lock(&mu_);
  State& state = states_[ns];
  state.figures.live = verdict.live;
  state.figures.lagging = verdict.lagging.size();
}

void RotationBarrier::Passed(const std::string& ns, bool landed) {
  absl::MutexLock lock(&mu_);
  auto it = states_.find(ns);
  if (it == states_.end()) return;
  State& state = it->second;
  const BarrierVerdict verdict = std::exchange(state.let_go, BarrierVerdict{});
  state.held_since = absl::InfiniteFuture();
  if (!landed) return;
  state.figures.last_wait = verdict.waited;
  // Those it went ahead without: live ones still behind after the timeout, and those whose
  // lease ended while behind.
  for (const FollowerReport& f : verdict.lagging) ++left_behind_[{ns, f.follower, "timeout"}];
  for (const FollowerReport& f : verdict.lapsed) ++left_behind_[{ns, f.follower, "lease_ended"}];
  if (!verdict.lagging.empty() || !verdict.lapsed.empty()) {
    LogWarning(
        "ticket keys: namespace %s rotated after %s without followers that lag: %s%s%s", ns,
        absl::FormatDuration(verdict.waited),
        verdict.lagging.empty() ? ""
                                : absl::StrCat(DescribeFollowers(verdict.lagging),
                                               " still reporting after --ticket_barrier_timeout"),
        !verdict.lagging.empty() && !verdict.lapsed.empty() ? "; " : "",
        verdict.lapsed.empty() ? ""
                               : absl::StrCat(DescribeFollowers(verdict.lapsed),
                                              " whose lease ended (--ticket_follower_lease)"));
  } else if (verdict.waited > absl::ZeroDuration()) {
    LogInfo("ticket keys: namespace %s: the rotation waited %s for its followers", ns,
            absl::FormatDuration(verdict.waited));
  }
}

void RotationBarrier::Forget(const std::string& ns) {
  absl::MutexLock lock(&mu_);
  states_.erase(ns);
}

std::map<std::string, RotationBarrier::Figures> RotationBarrier::figures(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  std::map<std::string, Figures> figures;
  for (const auto& [ns, state] : states_) {
    Figures& f = figures[ns] = state.figures;
    if (state.held_since != absl::InfiniteFuture()) f.held = now - state.held_since;
  }
  return figures;
}

std::map<LeftBehind, uint64_t> RotationBarrier::left_behind() const {
  absl::MutexLock lock(&mu_);
  return left_behind_;
}

}  // namespace tlscache::server
