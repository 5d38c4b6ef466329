// SessionFollower: a TLS server process's Follow stream for one namespace
// (tlscache.v1.SessionCache/Follow), and its part in its node's near cache (client/node.h).
//
//   - One process of the node follows the namespace for all of them (the one holding the
//     NodeFeed's lease; when it exits or is killed, another takes over within
//     kLeaseRetry): its stream receives the namespace's change log (every session the farm
//     stores, every deletion), in order and numbered, and writes it into the node's near
//     cache, each number once (a stream that replaces another may repeat some). Every other
//     process's stream is upload-only (FollowRequest.upload_only): the service pushes each
//     change once per node.
//   - The near cache answers only what the node can vouch for. Any gap in the numbers, or a
//     `gap` from the service (it read too slowly, its replica missed changes, a new stream
//     could not go on from where the node stood), means deletions may have been missed:
//     the follower stops the node's near cache answering, asks the service which of its
//     copies are still live (FollowRequest.check), drops the others, and lets it answer
//     again once every answer came.
//   - Every session the node withdraws (a deletion pushed, a copy found dead, a deletion by
//     one of its processes) is numbered in the NodeFeed; each process's own thread hands those
//     to `withdrawn` (the process drops its own copies) as they come.
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
//     namespace and, for the node's follower, where the node stands in the log, so that a new
//     stream goes on from there); until then, and whenever it is down, Put and Delete return
//     false and the caller sends them itself. The near cache answers only while the node's
//     follower heard from the service within kVouchWithoutWord (an idle stream's heartbeat is
//     answered) and the service was following the log then (the response not `paused`): a
//     deletion made meanwhile may not have reached it. A stream that comes up again goes on
//     from where the node stood (no gap: the near cache answers at once) or checks first.
//   - When the replica asks the process to move (FollowResponse.reconnect: it shuts down, or
//     the stream reached its age), a new stream starts at once, to another replica, while
//     the old one goes on being read. Stores go up the new one. Once the new one is
//     acknowledged, the old one is kept open for kOverlap more, then ended.
//   - While idle the stream sends a heartbeat (an empty batch, acknowledged) every
//     `heartbeat`; Watch(), called from another thread (the process's sender), ends a stream
//     whose batch stayed unacknowledged for four heartbeats, whatever its writer is doing
//     (a write blocked by a service that stopped reading included).
//
// Thread-safety: all methods are thread-safe. Three threads per follower: one reads (and
// reconnects), one writes, one takes the lease and hands withdrawals over; a fourth, while a
// stream is being replaced, reads the old one.
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
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "client/acknowledgement.h"
#include "client/client_stats.h"
#include "client/node.h"
#include "common/latency_histogram.h"
#include "common/log.h"
#include "common/log_point.h"
#include "common/secret_bytes.h"
#include "tlscache/v1/session_cache.pb.h"

namespace tlscache::client {

class SessionFollower {
 public:
  // A store or a deletion handed back, for the unary path.
  using Resend = std::function<void(v1::PutRequest put)>;
  using ResendDelete = std::function<void(v1::DeleteRequest removal)>;
  // A session the farm withdrew: its cache key, and its TLS session ID when the deleting
  // process gave it (else empty). An empty key: withdrawals were lost for this process (it
  // fell too far behind): it drops every copy of the namespace it holds.
  using Withdrawn =
      std::function<void(absl::string_view session_id, absl::string_view tls_session_id)>;
  // The near cache answers only while the service was heard from within this: a deletion
  // made meanwhile may not have reached it. (An idle stream is answered every heartbeat.)
  static constexpr absl::Duration kVouchWithoutWord = absl::Seconds(1);
  // How often a process that does not follow for its node tries the lease, and how long its
  // thread waits for withdrawals in between.
  static constexpr absl::Duration kLeaseRetry = absl::Milliseconds(100);
  // How long a replaced stream stays open after its successor was acknowledged.
  static constexpr absl::Duration kOverlap = absl::Seconds(1);
  // Session IDs in one check request (the service's bound).
  static constexpr int kCheckChunk = 4096;

  // `node`: the near cache and namespace state this process shares with its node's others.
  SessionFollower(std::shared_ptr<grpc::Channel> channel, std::string ns, std::shared_ptr<Node> node,
                  Resend resend, ResendDelete resend_delete, Withdrawn withdrawn,
                  absl::Duration heartbeat = absl::Milliseconds(500));
  ~SessionFollower();  // Stop()

  // Ends the stream, gives the lease up and joins the threads; the near cache stays readable
  // and Put, Delete and Flush answer as with the stream down. Idempotent; at exit, with
  // handshakes still running.
  void Stop();

  SessionFollower(const SessionFollower&) = delete;
  SessionFollower& operator=(const SessionFollower&) = delete;

  // The session under `session_id` from the near cache, when it can vouch for it.
  std::optional<SecretBytes> Lookup(absl::string_view session_id);
  // Where the node stands in its withdrawals, for Keep: taken before a lookup in the service.
  uint64_t RemovalMark() const;
  // Whether `session_id` was withdrawn on the node after `mark` was taken (true too when the
  // node no longer recalls that far back).
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
    bool follows = false;
  };
  // A deletion whose batch failed, waiting to be sent again.
  struct Retry {
    v1::DeleteRequest removal;
    absl::Time not_before;
    absl::Time give_up;
  };

  void ReadLoop();
  void WriteLoop();
  // Takes the lease when it is free, and hands the node's withdrawals to `withdrawn_`.
  void NodeLoop();
  // The near cache is on (the node had room for the namespace).
  bool sharing() const { return feed_ != nullptr; }
  // Applies a response; `current`: of the stream being read by the reader (a replaced
  // stream's changes are applied only where they go on from what was applied); `follows`:
  // of a stream that receives the log for the node.
  void Apply(v1::FollowResponse& response, bool current, bool follows);
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
  const std::shared_ptr<Node> node_;
  NodeFeed* const feed_;  // null: the node had no room for the namespace (no near cache)
  const Resend resend_;
  const ResendDelete resend_delete_;
  const Withdrawn withdrawn_;
  const absl::Duration heartbeat_;
  // How long sessions took to reach this process: from the process that made one sending it
  // up to this one putting it in its near cache.
  mutable absl::Mutex lag_mu_;
  LatencyHistogram lag_ ABSL_GUARDED_BY(lag_mu_);
  LogLimiter report_{absl::Minutes(1)};
  std::atomic<bool> leading_{false};  // this process holds the lease (set once)
  // NodeLoop tried the lease once: the first stream waits for it, so that the process that
  // takes the lease at its start follows from its first stream on.
  absl::Notification lease_tried_;
  std::atomic<uint64_t> received_{0}, gaps_{0}, withdrawn_count_{0}, resent_{0}, streams_{0},
      stored_{0}, store_failures_{0}, batches_{0};

  // The reader's and the drainer's applying of changes, one at a time (the position they go
  // on from is the node's, in feed_).
  absl::Mutex apply_mu_ ABSL_ACQUIRED_BEFORE(mu_);

  mutable absl::Mutex mu_;
  absl::CondVar cv_;  // work for the writer, an acknowledgement, a state change
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool up_ ABSL_GUARDED_BY(mu_) = false;
  // The stream being read; the writer writes to it while it is set.
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  Stream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  uint64_t stream_id_ ABSL_GUARDED_BY(mu_) = 0;  // of the current stream, growing
  bool follows_ ABSL_GUARDED_BY(mu_) = false;     // the current stream receives the log
  // The lease was taken while a check was going on, or after its holder died: the first
  // stream up checks the near cache's copies.
  bool check_when_up_ ABSL_GUARDED_BY(mu_) = false;
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
  // The check after a gap: its chunks waiting to go up, those not answered yet, and whether
  // one failed (then it starts again at `check_again_at`).
  uint64_t check_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<v1::SessionCheck> checks_due_ ABSL_GUARDED_BY(mu_);
  int checks_open_ ABSL_GUARDED_BY(mu_) = 0;
  bool checking_ ABSL_GUARDED_BY(mu_) = false;
  bool check_failed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time check_again_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  absl::Mutex join_mu_;  // Stop() from two threads joins once
  std::thread reader_;
  std::thread writer_;
  std::thread drainer_;  // started and joined by the reader (and by Stop once it is joined)
  std::thread node_thread_;
};

}  // namespace tlscache::client

#endif  // TLSCACHE_CLIENT_SESSION_FOLLOWER_H_
