// SessionFollower: a TLS server process's Follow stream for one namespace
// (tlscache.v1.SessionCache/Follow), and the near cache it fills.
//
//   - Down: the namespace's change log (every session the farm stores, every deletion), in
//     order and numbered, goes into (or out of) the near cache. The follower applies each
//     number once (a stream that replaces another may repeat some).
//   - It answers from the near cache only what it can vouch for. Any gap in the numbers, or a
//     `gap` from the service (it read too slowly, its replica missed changes, a new stream
//     could not go on from where the last one was), means deletions may have been missed:
//     the follower stops answering from the near cache, asks the service which of its
//     copies are still live (FollowRequest.check), drops the others (and has the process drop
//     its own copies of them, `withdrawn`), and answers again once every answer came.
//   - Up: the process's own Puts and Deletes, handed over by CacheClient while the stream is
//     up, leave coalesced, as TCP's Nagle algorithm coalesces segments: one batch is out at a
//     time, and everything queued until the service acknowledges it goes as the next. An
//     idle stream sends a store at once; a busy one sends one batch per round trip.
//     A Put may carry an Acknowledgement, completed when the service acknowledges its batch.
//     Batches not acknowledged when the stream ends are handed back (`resend`,
//     `resend_delete`) for the unary path, so a broken stream loses no store and no deletion.
//     A batch whose acknowledgement counts failures has its deletions sent again, with a
//     back-off, for as long as they stand: a deletion is never lost.
//   - The stream is up once the service has acknowledged its first request (which names the
//     namespace and where this process stands in the log, so that a new stream goes on from
//     there); until then, and whenever it is down, Put and Delete return false and the
//     caller sends them itself. The near cache answers only while the service was heard
//     from within kVouchWithoutWord (an idle stream's heartbeat is answered) and was following
//     the log then (the response not `paused`): a deletion made meanwhile may not have
//     reached it. A stream that comes up again goes on from where
//     this process stood (no gap: the near cache answers at once) or checks first.
//   - When the replica asks the process to move (FollowResponse.reconnect: it shuts down, or
//     the stream reached its age), a new stream starts at once, to another replica, while
//     the old one goes on being read. Stores go up the new one. Once the new one is
//     acknowledged, the old one is kept open for kOverlap more, then ended.
//   - While idle the stream sends a heartbeat (an empty batch, acknowledged) every
//     `heartbeat`; Watch(), called from another thread (the process's sender), ends a stream
//     whose batch stayed unacknowledged for four heartbeats, whatever its writer is doing
//     (a write blocked by a service that stopped reading included).
//
// Thread-safety: all methods are thread-safe. Two threads per follower: one reads (and
// reconnects), one writes; a third, while a stream is being replaced, reads the old one.
#ifndef TLSCACHE_CLIENT_SESSION_FOLLOWER_H_
#define TLSCACHE_CLIENT_SESSION_FOLLOWER_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/sync_stream.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/near_cache.h"
#include "common/log.h"
#include "common/log_point.h"
#include "common/secret_bytes.h"
#include "tlscache/v1/session_cache.pb.h"

namespace tlscache::client {

// A Put's acknowledgement, for the caller that awaits it. Completed once, answered or not.
class Acknowledgement {
 public:
  void Complete(bool ok);
  // True when the cache acknowledged the call by `deadline`.
  bool Await(absl::Time deadline);

 private:
  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool ok_ ABSL_GUARDED_BY(mu_) = false;
};

// How long sessions took to reach this process: from the process that made one sending it up
// to this one putting it in its near cache. Log-scale buckets from 10 µs; p50 and p99 are the
// upper bounds of the buckets they fall in.
class LagHistogram {
 public:
  void Observe(absl::Duration lag);
  uint64_t count() const;
  absl::Duration Quantile(double q) const;

 private:
  static constexpr int kBuckets = 32;  // 10 µs · 1.5^i: up to about 3 minutes
  static absl::Duration UpperBound(int bucket);
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
};

struct FollowerStats {
  bool up = false;
  bool vouching = true;    // the near cache answers (no gap unchecked)
  uint64_t streams = 0;    // streams that came up (the first included)
  uint64_t received = 0;   // changes the service pushed
  uint64_t gaps = 0;       // gaps seen (each followed by a check)
  uint64_t withdrawn = 0;  // copies a check found dead
  uint64_t resent = 0;     // stores handed back to the unary path when a stream ended
  uint64_t batches = 0;    // requests written up the stream (heartbeats included)
  uint64_t stored = 0;     // Puts and Deletes acknowledged
  uint64_t store_failures = 0;
  NearCacheStats near;
  absl::Duration lag_p50, lag_p99;
  uint64_t lag_count = 0;
};

class SessionFollower {
 public:
  // A store or a deletion handed back, for the unary path.
  using Resend = std::function<void(v1::PutRequest put)>;
  using ResendDelete = std::function<void(v1::DeleteRequest removal)>;
  // A session the farm withdrew: its cache key, and its TLS session ID when the deleting
  // process gave it (else empty).
  using Withdrawn =
      std::function<void(absl::string_view session_id, absl::string_view tls_session_id)>;
  // The near cache answers only while the service was heard from within this: a deletion
  // made meanwhile may not have reached it. (An idle stream is answered every heartbeat.)
  static constexpr absl::Duration kVouchWithoutWord = absl::Seconds(1);
  // How long a replaced stream stays open after its successor was acknowledged.
  static constexpr absl::Duration kOverlap = absl::Seconds(1);
  // Session IDs in one check request (the service's bound).
  static constexpr int kCheckChunk = 4096;

  SessionFollower(std::shared_ptr<grpc::Channel> channel, std::string ns, size_t near_cache_bytes,
                  Resend resend, ResendDelete resend_delete, Withdrawn withdrawn,
                  absl::Duration heartbeat = absl::Milliseconds(500));
  ~SessionFollower();  // Stop()

  // Ends the stream and joins the threads; the near cache stays readable and Put, Delete and
  // Flush answer as with the stream down. Idempotent; at exit, with handshakes still running.
  void Stop();

  SessionFollower(const SessionFollower&) = delete;
  SessionFollower& operator=(const SessionFollower&) = delete;

  // The session under `session_id` from the near cache, when it can vouch for it.
  std::optional<SecretBytes> Lookup(absl::string_view session_id);
  // Where the follower stands in the deletions it applied, for Keep: taken before a lookup
  // in the service.
  uint64_t RemovalMark() const;
  // Whether `session_id` was withdrawn here after `mark` was taken (true too when the
  // follower no longer recalls that far back).
  bool WithdrawnSince(absl::string_view session_id, uint64_t mark) const;
  // A session the service returned to this process (asked after `mark`): kept in the near
  // cache, where the next lookup finds it and a check after a gap covers it. Only when the
  // follower vouches for what it holds, and the session was not withdrawn since `mark`
  // (its deletion can overtake the answer): otherwise the near cache could keep a session
  // whose deletion it will never see.
  void Keep(absl::string_view session_id, const SecretBytes& session, absl::Duration ttl,
            uint64_t mark);

  // Queues a store up the stream and keeps it in the near cache too (false: the stream is
  // down or its queue full, nothing done, `session` untouched).
  bool Put(absl::string_view session_id, SecretBytes& session, uint32_t ttl_seconds,
           std::shared_ptr<Acknowledgement> ack);
  // Withdraws the session here and queues the deletion up the stream (false: it went only as
  // far as the near cache; the caller sends the deletion).
  bool Delete(const v1::DeleteRequest& removal);
  // Waits until every store handed to the stream was acknowledged; false after `timeout`.
  bool Flush(absl::Duration timeout);
  // Ends the current stream if its oldest batch is unacknowledged for four heartbeats; ends a
  // replaced stream once its overlap is over. Called every heartbeat or so, off the
  // follower's own threads.
  void Watch(absl::Time now);

  FollowerStats stats() const;
  const NearCache& near_cache() const { return near_; }

 private:
  using Stream = grpc::ClientReaderWriter<v1::FollowRequest, v1::FollowResponse>;
  struct Sent {
    v1::FollowRequest request;  // kept until acknowledged, for the unary path
    std::vector<std::shared_ptr<Acknowledgement>> acks;
    uint64_t ops = 0;     // Puts and Deletes in it
    uint64_t stream = 0;  // the stream it went up
    absl::Time sent_at;
  };
  // A stream being replaced (see above), read by the drainer thread until it ends.
  struct Retiring {
    std::unique_ptr<grpc::ClientContext> context;
    std::unique_ptr<Stream> stream;
    uint64_t id = 0;
  };
  // A deletion whose batch failed, waiting to be sent again.
  struct Retry {
    v1::DeleteRequest removal;
    absl::Time not_before;
    absl::Time give_up;
  };

  void ReadLoop();
  void WriteLoop();
  // Drops `session_id` from the near cache and remembers it for Keep.
  void Withdraw(absl::string_view session_id);
  bool WithdrawnSinceLocked(absl::string_view session_id, uint64_t mark) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(removals_mu_);
  // Applies a response; `current`: of the stream being read by the reader (a replaced
  // stream's changes are applied only where they go on from what was applied).
  void Apply(v1::FollowResponse& response, bool current);
  void ApplyChecked(const v1::SessionCheckResult& result);
  // A gap: stops vouching and starts a check of every copy. Caller holds mu_.
  void StartCheckLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateVouchingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the stream the replica asked to leave to the drainer thread; false when one is
  // being replaced already (or the follower stops): the stream then goes on as it is.
  bool Replace(std::unique_ptr<grpc::ClientContext>& context, std::unique_ptr<Stream>& stream,
               uint64_t id);
  void DrainLoop();
  void AwaitNotWritingLocked(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stream `id` ended: fail or hand back what went up it unacknowledged; for the current
  // stream, also what waits to go up, and the follower is down.
  void Down(uint64_t id, bool current);
  bool stopping() const;

  const std::shared_ptr<grpc::Channel> channel_;
  const std::string ns_;
  const Resend resend_;
  const ResendDelete resend_delete_;
  const Withdrawn withdrawn_;
  const absl::Duration heartbeat_;
  NearCache near_;
  LagHistogram lag_;
  LogLimiter report_{absl::Minutes(1)};
  std::atomic<bool> vouching_{true};  // the near cache may answer (no check in progress)
  std::atomic<int64_t> heard_micros_{0};  // Unix µs of the last response on a stream that is up
  std::atomic<uint64_t> received_{0}, gaps_{0}, withdrawn_count_{0}, resent_{0}, streams_{0},
      stored_{0}, store_failures_{0}, batches_{0};

  // The deletions applied (a count), and the most recent ones by session ID, for Keep.
  static constexpr size_t kRecentRemovals = 4096;
  mutable absl::Mutex removals_mu_;
  uint64_t removals_ ABSL_GUARDED_BY(removals_mu_) = 0;
  std::map<std::string, uint64_t> recent_removals_ ABSL_GUARDED_BY(removals_mu_);
  std::deque<std::string> removal_order_ ABSL_GUARDED_BY(removals_mu_);
  uint64_t forgotten_before_ ABSL_GUARDED_BY(removals_mu_) = 0;  // removals no longer recalled

  // Where the applied changes stand (the reader's and the drainer's).
  absl::Mutex apply_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  LogPoint applied_ ABSL_GUARDED_BY(apply_mu_);
  bool positioned_ ABSL_GUARDED_BY(apply_mu_) = false;

  mutable absl::Mutex mu_;
  absl::CondVar cv_;  // work for the writer, an acknowledgement, a state change
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool up_ ABSL_GUARDED_BY(mu_) = false;
  // The stream being read; the writer writes to it while it is set.
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  Stream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  uint64_t stream_id_ ABSL_GUARDED_BY(mu_) = 0;  // of the current stream, growing
  uint64_t writing_ ABSL_GUARDED_BY(mu_) = 0;    // the stream the writer is in Write() on; 0: none
  std::unique_ptr<Retiring> retiring_ ABSL_GUARDED_BY(mu_);
  absl::Time retire_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  v1::FollowRequest pending_ ABSL_GUARDED_BY(mu_);
  size_t pending_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::shared_ptr<Acknowledgement>> pending_acks_ ABSL_GUARDED_BY(mu_);
  std::deque<Retry> retries_ ABSL_GUARDED_BY(mu_);
  bool hello_due_ ABSL_GUARDED_BY(mu_) = false;  // the first request of a new stream
  uint64_t next_batch_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t hello_batch_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, Sent> unacked_ ABSL_GUARDED_BY(mu_);
  absl::Time last_sent_ ABSL_GUARDED_BY(mu_);
  // Where the next stream resumes from: `applied_` as last published by Apply.
  std::optional<LogPoint> resume_from_ ABSL_GUARDED_BY(mu_);
  // The check after a gap: its chunks waiting to go up, those not answered yet, and whether
  // one failed (then it starts again at `check_again_at`).
  uint64_t check_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<v1::SessionCheck> checks_due_ ABSL_GUARDED_BY(mu_);
  int checks_open_ ABSL_GUARDED_BY(mu_) = 0;
  bool checking_ ABSL_GUARDED_BY(mu_) = false;
  bool check_failed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time check_again_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::mutex join_mu_;  // Stop() from two threads joins once
  std::thread reader_;
  std::thread writer_;
  std::thread drainer_;  // started and joined by the reader (and by Stop once it is joined)
};

}  // namespace tlscache::client

#endif  // TLSCACHE_CLIENT_SESSION_FOLLOWER_H_
