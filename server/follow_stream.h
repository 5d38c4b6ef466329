// FollowStream: one tlscache.v1.SessionCache/Follow stream, the long-lived link of one TLS
// server process to its namespace (see the .proto for the contract).
//
// Up: each request's Puts and Deletes go to the feed, for the namespace's other followers,
// and to the store, at once (validated as the unary calls are; one that is refused counts as
// failed in the batch's acknowledgement); once the store has answered for all of them the
// batch is acknowledged. Reading goes on meanwhile: batches pipeline.
// Down: changes from the feed and acknowledgements accumulate while a write is out and leave
// together as the next response, up to `max_pending_bytes` (past that, changes are dropped
// and counted; acknowledgements never are).
// Moving: HandOver() (the replica shuts down, or the stream is old) sends `reconnect`; the
// stream goes on as before until the process ends it (or the feed does, a grace later). A
// replica that is handing its followers over refuses new streams (UNAVAILABLE), so that
// they go to another.
//
// Session bytes are wiped from every request and response once gRPC is done with it.
//
// Thread-safety: gRPC's reactions, the store's callbacks and the feed call in on their own
// threads; all state is under one mutex (taken after the feed's).
#ifndef TLSCACHE_SERVER_FOLLOW_STREAM_H_
#define TLSCACHE_SERVER_FOLLOW_STREAM_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/session_cache_service.h"
#include "server/session_feed.h"
#include "server/store/store.h"
#include "tlscache/v1/session_cache.pb.h"

namespace tlscache::server {

// The largest Follow request the service reads (a batch of stores); a process keeps its
// batches well under it.
inline constexpr int kMaxFollowRequestBytes = 4 << 20;

class FollowStream final : public grpc::ServerBidiReactor<v1::FollowRequest, v1::FollowResponse>,
                           public SessionFeed::Follower {
 public:
  static constexpr size_t kMaxPendingBytes = 4 << 20;

  // Starts reading; deletes itself when gRPC is done with the stream.
  FollowStream(grpc::CallbackServerContext* context, Store* store, SessionFeed* feed,
               const SessionCacheService* service);

  void Deliver(const v1::SessionChange& change) override;
  void Stop() override;
  void HandOver() override;
  v1::NearCacheReport Report() const override;

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  struct Batch;

  // The first request: the namespace, checked as every namespaced call is.
  absl::Status Admit(const v1::FollowRequest& request);
  // Sends the request's Puts and Deletes to the store.
  void Process(v1::FollowRequest& request);
  void OpDone(Batch* batch, bool ok);
  void WriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Finishes once ended and nothing is out (store calls, a write, unsent acknowledgements).
  void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  grpc::CallbackServerContext* const context_;
  Store* const store_;
  SessionFeed* const feed_;
  const SessionCacheService* const service_;
  std::string ns_;  // set by the first request, before joining the feed

  v1::FollowRequest request_;  // owned by gRPC while a read is out

  mutable absl::Mutex mu_;
  bool joined_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;  // no more writes: cancelled or a write failed
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool reconnect_due_ ABSL_GUARDED_BY(mu_) = false;  // HandOver: the next response says so
  int store_ops_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::Status end_status_ ABSL_GUARDED_BY(mu_);
  v1::FollowResponse pending_ ABSL_GUARDED_BY(mu_);
  size_t pending_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;     // since the last response
  v1::FollowResponse sent_ ABSL_GUARDED_BY(mu_);  // owned by gRPC while a write is out
  v1::NearCacheReport report_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_FOLLOW_STREAM_H_
