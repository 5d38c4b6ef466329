// FollowStream: one tlscache.v1.SessionCache/Follow stream, the long-lived link of one TLS
// server process to its namespace (see the .proto for the contract).
//
// Up: each request's Puts and deletions go through SessionWrites (validated as the unary calls
// are; one refused counts as failed in the batch's acknowledgement); once the store (and, for
// deletions, the log) has answered for all of them, the batch is acknowledged. A check (the
// process's copies after a gap) asks the store about each session. Reading goes on meanwhile:
// batches pipeline, up to kMaxOpenBatches not yet acknowledged; a process past that does not
// read its stream, and the stream ends with RESOURCE_EXHAUSTED.
// Down: the namespace's log from the feed, numbered, with acknowledgements and check results,
// each response at most kMaxResponseBytes of changes. A process that falls behind by more than
// the feed lets one follower hold is told `gap` and goes on from the log's end.
// Moving: HandOver() (the replica shuts down, or the stream is old) sends `reconnect`; the
// stream goes on as before until the process ends it (or the feed does, a grace later). A
// replica that is handing its followers over refuses new streams (UNAVAILABLE), so that
// they go to another.
// Authorization: checked on the first request, and again whenever the policy is reloaded
// (Reauthorize): a stream whose identity lost the namespace ends with PERMISSION_DENIED.
//
// Session bytes are wiped from every request and response once gRPC is done with it.
//
// Thread-safety: gRPC's reactions, the store's callbacks and the feed call in on their own
// threads; all state is under one mutex (taken after the feed's).
#ifndef TLSCACHE_SERVER_SESSIONS_FOLLOW_STREAM_H_
#define TLSCACHE_SERVER_SESSIONS_FOLLOW_STREAM_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/security/authorizer.h"
#include "server/sessions/session_feed.h"
#include "server/sessions/session_writes.h"
#include "tlscache/v1/session_cache.pb.h"

namespace tlscache::server {

// The largest Follow request the service reads (a batch of stores); a process keeps its
// batches well under it.
inline constexpr int kMaxFollowRequestBytes = 4 << 20;

class FollowStream final : public grpc::ServerBidiReactor<v1::FollowRequest, v1::FollowResponse>,
                           public SessionFeed::Follower {
 public:
  // Changes in one response: far under what a process accepts (client/session_follower.h).
  static constexpr size_t kMaxResponseBytes = 1 << 20;
  static constexpr int kMaxOpenBatches = 64;
  static constexpr int kMaxCheckIds = 4096;
  static constexpr int kMaxOpenChecks = 4;
  static constexpr absl::Duration kStuckWrite = absl::Seconds(60);
  static constexpr absl::Duration kEndedWriteGrace = absl::Seconds(5);

  // Starts reading; deletes itself when gRPC is done with the stream. `authz` may be null.
  FollowStream(grpc::CallbackServerContext* context, SessionWrites* writes, SessionFeed* feed,
               const Authorizer* authz);

  void Begin(const LogPoint& at, std::vector<FeedChangePtr> replay, bool gap) override;
  void Deliver(absl::string_view log_id, uint64_t first, const std::vector<FeedChangePtr>& changes,
               bool over_budget) override;
  void Stop() override;
  void HandOver() override;
  void Reauthorize() override;
  // A write out for longer than kStuckWrite (kEndedWriteGrace once the stream has ended, its
  // last answers waiting) means the process reads nothing: the stream is cancelled, so that
  // it holds neither its call nor its last response. (Its status cannot reach a process that
  // does not read: it comes after the response the process left unread.)
  void Tick(absl::Time now) override;
  void Pause(bool paused) override;
  v1::NearCacheReport Report() const override;

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  struct Batch;
  struct Check;

  // The first request: the namespace, checked as every namespaced call is.
  absl::Status Admit(const v1::FollowRequest& request);
  // Sends the request's Puts and deletions to the store, and its check.
  void Process(v1::FollowRequest& request);
  void StartCheck(const v1::SessionCheck& check);
  void OpDone(Batch* batch, bool ok, bool refused);
  void CheckDone(Check* check, const std::string& session_id, absl::StatusOr<bool> live);
  // The process is cut off from what it had queued: it checks its copies.
  void GapLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Finishes once ended and nothing is out (store calls, a write, unsent acknowledgements).
  void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  grpc::CallbackServerContext* const context_;
  SessionWrites* const writes_;
  SessionFeed* const feed_;
  const Authorizer* const authz_;
  std::string ns_;        // set by the first request, before joining the feed
  std::string identity_;  // the caller's, for Reauthorize

  v1::FollowRequest request_;  // owned by gRPC while a read is out

  mutable absl::Mutex mu_;
  bool joined_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;  // no more writes: cancelled, refused, a write failed
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time write_started_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;  // by Tick
  bool reconnect_due_ ABSL_GUARDED_BY(mu_) = false;  // HandOver: the next response says so
  bool begun_ ABSL_GUARDED_BY(mu_) = false;          // the feed placed it in the log
  bool position_due_ ABSL_GUARDED_BY(mu_) = false;   // the first response, even if empty
  bool gap_due_ ABSL_GUARDED_BY(mu_) = false;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;  // said on every response while it lasts
  int store_ops_ ABSL_GUARDED_BY(mu_) = 0;     // batches and checks the store is working on
  int open_batches_ ABSL_GUARDED_BY(mu_) = 0;  // read and not yet acknowledged to the process
  int open_checks_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::Status end_status_ ABSL_GUARDED_BY(mu_);
  // Where the process stands once it has what is queued.
  LogPoint at_ ABSL_GUARDED_BY(mu_);
  std::deque<FeedChangePtr> queued_ ABSL_GUARDED_BY(mu_);
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<v1::FollowResponse::Ack> acks_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::SessionCheckResult> checked_ ABSL_GUARDED_BY(mu_);
  v1::FollowResponse sent_ ABSL_GUARDED_BY(mu_);  // owned by gRPC while a write is out
  v1::NearCacheReport report_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_SESSIONS_FOLLOW_STREAM_H_
