// SessionFeed: every change of a namespace (a session stored, a session deleted), for the TLS
// server processes that follow it (tlscache.v1.SessionCache/Follow, server/follow_stream.h).
//
// A change made through this replica (a unary Put, Delete or consuming Get, or a batch up a
// Follow stream) goes to every local follower of its namespace but the one that made it, and,
// on a store that replicas share (Redis), to every other replica through the store's pub/sub
// (Store::PublishChanges), coalesced: one publish per namespace in flight, and what arrives
// meanwhile goes out as the next batch. Batches from other replicas go to every local
// follower. A replica skips its own batches when they come back.
//
// Best effort, bounded memory: a follower that cannot keep up loses changes (it counts them),
// and so does the pub/sub while the store is down; a change lost costs a remote lookup, and
// followers drop their copies when their stream ends, so they miss no deletion they keep.
//
// Thread-safety: all methods are thread-safe. Lock order: the feed's, then a follower's:
// Deliver is called under the feed's lock and must not call back into the feed.
#ifndef TLSCACHE_SERVER_SESSION_FEED_H_
#define TLSCACHE_SERVER_SESSION_FEED_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/observability/metrics.h"
#include "server/store/store.h"
#include "tlscache/v1/session_cache.pb.h"

namespace tlscache::server {

struct FeedOptions {
  // Unique per replica (random at start), to skip its own batches on the pub/sub.
  std::string replica_id;
  // The most a namespace's unpublished changes may hold while a publish is in flight.
  size_t max_publish_bytes = 4 << 20;
  absl::Duration store_timeout = absl::Seconds(1);
  // A follower this long on the feed (drawn again for each, from 100% to 120% of it, so
  // that followers that came together do not all move together) is asked to move to
  // another replica (Follower::HandOver), and ended `handover_grace` later if it has not
  // gone. Zero: never. With the maximum connection age here, a follower that came with its
  // connection moves just after the connection was told to go (GOAWAY, at 90% to 110% of
  // that age): its process has resolved the replicas again by then, and the stream may go
  // to one that came meanwhile.
  absl::Duration max_follow_age = absl::ZeroDuration();
  absl::Duration handover_grace = absl::Minutes(1);
};

class SessionFeed {
 public:
  class Follower {
   public:
    virtual ~Follower() = default;
    // Queues `change` for the process; never blocks, never calls into the feed.
    virtual void Deliver(const v1::SessionChange& change) = 0;
    // Ends the stream (the server shuts down).
    virtual void Stop() = 0;
    // Asks the process to move its stream to another replica (FollowResponse.reconnect).
    virtual void HandOver() = 0;
    // The process's latest near-cache report.
    virtual v1::NearCacheReport Report() const = 0;
  };

  // `store` and `metrics` outlive the feed.
  SessionFeed(Store* store, FeedOptions options, Metrics* metrics);
  ~SessionFeed();  // followers must have left

  SessionFeed(const SessionFeed&) = delete;
  SessionFeed& operator=(const SessionFeed&) = delete;

  void Join(const std::string& ns, Follower* follower);
  // After Leave returns, `follower` is not called again.
  void Leave(const std::string& ns, Follower* follower);

  // A change made through this replica; `origin` (may be null) made it and is not sent it.
  // The change's session bytes are wiped before this returns.
  void Changed(absl::string_view ns, v1::SessionChange* change, const Follower* origin);

  // Ends every follower's stream.
  void StopAll();
  // Asks every follower to move to another replica (a shutdown), and waits until none is
  // left or `timeout` passed.
  void HandOverAll(absl::Duration timeout);
  // Asks the followers older than their age to move, and ends those that were asked a
  // grace ago; called now and then (CacheServer's monitor).
  void HandOverAged(absl::Time now);
  size_t followers() const {
    absl::MutexLock lock(&mu_);
    return followers_.size();
  }
  // Since HandOverAll: new followers are refused.
  bool handing_over() const { return handing_over_.load(std::memory_order_acquire); }

  // Counted by followers: changes they could not queue.
  void CountDropped(uint64_t n) { dropped_.fetch_add(n, std::memory_order_relaxed); }
  // Counted by followers: bytes of the responses they wrote.
  void CountSent(uint64_t bytes) { sent_bytes_.fetch_add(bytes, std::memory_order_relaxed); }

 private:
  struct Publisher {
    v1::FeedBatch pending;
    size_t pending_bytes = 0;
    bool in_flight = false;
  };

  void DeliverLocked(const std::string& ns, const v1::SessionChange& change, const Follower* origin)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends what `ns` has pending, one publish at a time.
  void PublishPending(const std::string& ns);
  // A batch from the store's pub/sub.
  void Received(absl::string_view ns, SecretBytes batch);
  void AddMetrics(Metrics* metrics);

  Store* const store_;
  const FeedOptions options_;
  const bool shared_;  // the store shares changes with other replicas
  Metrics::CounterFamily* changes_;
  Metrics::HistogramFamily* lag_;

  mutable absl::Mutex mu_;
  struct Joined {
    Follower* follower;
    absl::Time hand_over_at;  // InfiniteFuture: never
    bool asked = false;
  };
  std::multimap<std::string, Joined> followers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Publisher> publishers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<ChangesSubscription>> subscriptions_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> handing_over_{false};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> sent_bytes_{0};
  std::atomic<uint64_t> published_{0};
  std::atomic<uint64_t> publish_dropped_{0};
};

// Wipes the session bytes of every change in `changes`.
void WipeChanges(google::protobuf::RepeatedPtrField<v1::SessionChange>* changes);

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_SESSION_FEED_H_
