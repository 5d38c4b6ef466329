// SessionFeed: a replica's side of each namespace's change log (server/store/store.h): what
// it appends for the changes made through it, and what it relays to the TLS server processes
// following the namespace through it (tlscache.v1.SessionCache/Follow, server/sessions/follow_stream.h).
//
// Appending: every change made through this replica (SessionWrites) is queued on its
// namespace and appended to the store's log, one append in flight per namespace, what arrives
// meanwhile going as the next (coalesced). A deletion's completion says whether the log holds
// it; one that failed is tried again (Tick) until the log holds it or its hold has passed. A
// put that failed is dropped: a follower then looks the session up instead.
//
// Relaying: while a namespace has followers here, the feed follows its log and hands every
// change, in the log's order and numbered, to each of them. It keeps the most recent changes
// (up to `max_ring_bytes` per namespace) so that a follower that comes from another replica
// with the position it reached there goes on from that position without a gap. A follower
// that cannot go on (its position is not in what the feed kept, or the feed's subscription
// missed changes) is told so (`gap`), and checks its copies. While the subscription is broken
// (from the store's kLost to its next kStart) every follower is paused: its process's near
// cache answers nothing, since a change made meanwhile may not reach it. The subscription is
// released when the last follower of the namespace leaves.
//
// Memory: each change is held once (shared by the ring and the followers' queues), and every
// change held counts against `max_total_bytes`; past it, the rings give up their oldest
// changes and a follower that lags is cut loose with a gap rather than hold more.
//
// Thread-safety: all methods are thread-safe. Each namespace has its own mutex (a busy
// namespace does not hold up another); lock order: a namespace's, then a follower's. Follower
// methods are called under the namespace's mutex and must not call back into the feed.
#ifndef TLSCACHE_SERVER_SESSIONS_SESSION_FEED_H_
#define TLSCACHE_SERVER_SESSIONS_SESSION_FEED_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/log_point.h"
#include "server/observability/metrics.h"
#include "server/store/store.h"
#include "tlscache/v1/session_cache.pb.h"

namespace tlscache::server {

struct FeedOptions {
  absl::Duration store_timeout = absl::Seconds(1);
  // The most one append carries, and the most a namespace's queue of changes not yet
  // appended holds (past it, puts are dropped and counted; deletions are kept).
  size_t max_append_bytes = 1 << 20;
  size_t max_queued_bytes = 16 << 20;
  // The recent changes a namespace keeps for followers that come from another replica.
  size_t max_ring_bytes = 8 << 20;
  // What one follower may have waiting to be written before it is cut loose (a gap).
  size_t max_follower_bytes = 4 << 20;
  // Every change held (rings and followers' queues together).
  size_t max_total_bytes = size_t{256} << 20;
  // A follower this long on the feed (drawn again for each, from 100% to 120% of it, so
  // that followers that came together do not all move together) is asked to move to
  // another replica (Follower::HandOver), and ended `handover_grace` later if it has not
  // gone. Zero: never. With the maximum connection age here, a follower that came with its
  // connection moves just after the connection was told to go (GOAWAY, at 90% to 110% of
  // that age): its process has resolved the replicas again by then, and the stream may go
  // to one that came meanwhile.
  absl::Duration max_follow_age = absl::ZeroDuration();
  absl::Duration handover_grace = absl::Minutes(1);
  // The most pushes a second this replica writes for one namespace: its changes a second
  // times the followers (nodes) it pushes them to here. Past it, over a second, the
  // namespace's pushes stop here: its followers are paused (their nodes' near caches answer
  // nothing, lookups go to the service), said in the log and in /metrics. Once the rate has
  // stayed under half the budget for `push_calm`, pushes resume, with a gap (the followers
  // check their copies). Zero: no budget.
  double push_budget = 0;
  absl::Duration push_calm = absl::Seconds(5);
};


// One change of a log, held once for every follower that has it queued; its session bytes
// are wiped, and its bytes released from the feed's total, when the last holder drops it.
class FeedChange {
 public:
  FeedChange(uint64_t seq, v1::SessionChange change, std::shared_ptr<std::atomic<size_t>> total);
  ~FeedChange();
  FeedChange(const FeedChange&) = delete;
  FeedChange& operator=(const FeedChange&) = delete;

  uint64_t seq() const { return seq_; }
  const v1::SessionChange& change() const { return change_; }
  size_t bytes() const { return bytes_; }

 private:
  const uint64_t seq_;
  v1::SessionChange change_;
  const size_t bytes_;
  const std::shared_ptr<std::atomic<size_t>> total_;
};
using FeedChangePtr = std::shared_ptr<const FeedChange>;

class SessionFeed {
 public:
  class Follower {
   public:
    virtual ~Follower() = default;
    // The follower's first place in the log: at `at`, after `replay` (the changes since the
    // position it asked to resume from), or (`gap`) cut off from what came before.
    virtual void Begin(const LogPoint& at, std::vector<FeedChangePtr> replay, bool gap) = 0;
    // Changes of `log_id` numbered from `first` (`changes` empty: the feed's subscription
    // started again, at `first` - 1). Queues them for the process; never blocks. A follower
    // that cannot go on from where it stood, or that holds more than it may, owes its
    // process a gap.
    virtual void Deliver(absl::string_view log_id, uint64_t first,
                         const std::vector<FeedChangePtr>& changes, bool over_budget) = 0;
    // Ends the stream (the server shuts down).
    virtual void Stop() = 0;
    // Asks the process to move its stream to another replica (FollowResponse.reconnect).
    virtual void HandOver() = 0;
    // Ends the stream if the authorization in force no longer grants its namespace.
    virtual void Reauthorize() = 0;
    // Called now and then (Tick): a stream whose process has stopped reading lets go.
    virtual void Tick(absl::Time now) = 0;
    // The feed stopped (true) or went back to (false) following the log: a change made
    // meanwhile may not reach the follower, whose near cache must not answer.
    virtual void Pause(bool paused) = 0;
    // The process's latest near-cache report.
    virtual v1::NearCacheReport Report() const = 0;
  };

  // Done once the log holds a change (ok), or with why not.
  using AppendDone = absl::AnyInvocable<void(absl::Status) &&>;

  // `store` and `metrics` outlive the feed.
  SessionFeed(Store* store, FeedOptions options, Metrics* metrics);
  ~SessionFeed();  // followers must have left

  SessionFeed(const SessionFeed&) = delete;
  SessionFeed& operator=(const SessionFeed&) = delete;

  // `resume_after`: where the process stood on its previous stream, if anywhere. The
  // follower's Begin comes once the feed knows where the log stands (at once, or when its
  // subscription starts). `push` false: an upload-only stream (FollowRequest.upload_only),
  // begun at once and handed no changes; it is still asked to move, ticked and stopped.
  void Join(const std::string& ns, Follower* follower, std::optional<LogPoint> resume_after,
            bool push = true);
  // After Leave returns, `follower` is not called again.
  void Leave(const std::string& ns, Follower* follower);

  // Queues `change` (a serialized v1.SessionChange: session bytes, wiped) for the log of `ns`.
  // `done` (may be null) runs once: ok when the log holds it, or the first failure (a
  // deletion is still tried again in the background until its hold has passed).
  void Append(const std::string& ns, LogChange change, AppendDone done);

  // Ends every follower's stream.
  void StopAll();
  // Asks every follower to move to another replica (a shutdown), and waits until none is
  // left or `timeout` passed.
  void HandOverAll(absl::Duration timeout);
  // Whether the namespace's pushes are suspended here (over the push budget).
  bool PushSuspended(const std::string& ns);
  // Every follower checks its authorization again (the policy was reloaded).
  void ReauthorizeAll();
  // Called now and then (CacheServer's monitor): asks the followers older than their age to
  // move and ends those asked a grace ago; ticks every follower; tries the failed appends
  // again.
  void Tick(absl::Time now);
  size_t followers() const;
  const FeedOptions& options() const { return options_; }
  // Since HandOverAll: new followers are refused.
  bool handing_over() const { return handing_over_.load(std::memory_order_acquire); }

  // Counted by followers.
  void CountGap() { gaps_.fetch_add(1, std::memory_order_relaxed); }
  void CountSent(uint64_t bytes) { sent_bytes_.fetch_add(bytes, std::memory_order_relaxed); }
  // A stream the service ended, and why: "unread" (batches past the bound), "checks" (checks
  // past theirs), "denied" (its namespace no longer granted), "stuck" (it read nothing).
  void CountEnded(const char* reason) { ended_->Increment({reason}, 1); }

 private:
  class Namespace;

  std::shared_ptr<Namespace> Find(const std::string& ns, bool create);
  // Drops `ns` from the map once it has neither followers nor appends.
  void Release(const std::string& ns);
  void AddMetrics(Metrics* metrics);
  std::vector<std::shared_ptr<Namespace>> All() const;

  Store* const store_;
  const FeedOptions options_;
  const std::shared_ptr<std::atomic<size_t>> total_bytes_;
  Metrics::CounterFamily* changes_;
  Metrics::HistogramFamily* lag_;
  Metrics::CounterFamily* ended_;

  mutable absl::Mutex mu_;  // the map only
  std::map<std::string, std::shared_ptr<Namespace>> namespaces_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> handing_over_{false};
  std::atomic<uint64_t> gaps_{0};
  std::atomic<uint64_t> pushed_{0};  // changes handed to followers, one per follower
  std::atomic<uint64_t> suspensions_{0};
  std::atomic<uint64_t> sent_bytes_{0};
  std::atomic<uint64_t> appends_{0};
  std::atomic<uint64_t> append_failures_{0};
  std::atomic<uint64_t> puts_dropped_{0};
};

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_SESSIONS_SESSION_FEED_H_
