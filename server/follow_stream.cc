#include "server/follow_stream.h"

#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "common/secret_bytes.h"
#include "common/status_util.h"
#include "common/validation.h"

namespace tlscache::server {

// One request's Puts and Deletes, until the store has answered for all of them.
struct FollowStream::Batch {
  uint64_t id = 0;
  int remaining = 0;
  uint32_t failed = 0;
};

FollowStream::FollowStream(grpc::CallbackServerContext* context, Store* store, SessionFeed* feed,
                           const SessionCacheService* service)
    : context_(context), store_(store), feed_(feed), service_(service) {
  StartRead(&request_);
}

absl::Status FollowStream::Admit(const v1::FollowRequest& request) {
  return AdmitNamespace(service_->options().authz, *context_, request.namespace_());
}

void FollowStream::OnReadDone(bool ok) {
  if (!ok) {  // the process closed its side, or the stream broke
    absl::MutexLock lock(&mu_);
    EndLocked(grpc::Status::OK);
    return;
  }
  if (ns_.empty()) {
    absl::Status s = Admit(request_);
    if (s.ok() && feed_->handing_over()) {
      s = absl::UnavailableError("this replica is shutting down: follow another");
    }
    if (!s.ok()) {
      for (v1::PutRequest& put : *request_.mutable_puts()) CleanseString(put.mutable_session());
      absl::MutexLock lock(&mu_);
      broken_ = true;  // nothing to tell it but why
      EndLocked(ToGrpcStatus(s));
      return;
    }
    ns_ = request_.namespace_();
    feed_->Join(ns_, this);
    absl::MutexLock lock(&mu_);
    joined_ = true;
  } else if (!request_.namespace_().empty() && request_.namespace_() != ns_) {
    for (v1::PutRequest& put : *request_.mutable_puts()) CleanseString(put.mutable_session());
    absl::MutexLock lock(&mu_);
    EndLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                           "namespace: a Follow stream follows the namespace of its first request"));
    return;
  }
  Process(request_);
  request_.Clear();
  absl::MutexLock lock(&mu_);
  if (!ended_) StartRead(&request_);
}

void FollowStream::Process(v1::FollowRequest& request) {
  const int ops = request.puts_size() + request.deletes_size();
  {
    absl::MutexLock lock(&mu_);
    if (request.has_near_cache()) report_ = request.near_cache();
    // A read that completed after the stream finished (a shutdown): gRPC calls OnDone once
    // the reactions return, so nothing may start that calls back later.
    if (finished_ || (ops == 0 && request.batch() == 0)) {
      for (v1::PutRequest& put : *request.mutable_puts()) CleanseString(put.mutable_session());
      return;
    }
    ++store_ops_;  // held until the batch is done: no Finish before
  }
  auto* batch = new Batch();
  batch->id = request.batch();
  batch->remaining = ops + 1;  // +1: held until every op was sent
  const absl::Time deadline = absl::Now() + absl::Seconds(1);
  const size_t max_bytes = service_->options().max_session_bytes;
  for (v1::PutRequest& put : *request.mutable_puts()) {
    std::string* session = put.mutable_session();
    if (!ValidateSessionId(put.session_id()).ok() || !ValidateSession(*session, max_bytes).ok()) {
      CleanseString(session);
      OpDone(batch, false);
      continue;
    }
    const absl::Duration ttl = service_->EffectiveTtl(put.ttl_seconds());
    // To the other followers at once, while the store takes it: a follower that has the
    // session sooner resumes it sooner, and one the store then failed to keep is still a
    // good session. (The feed wipes its copy.)
    v1::SessionChange change;
    change.set_session_id(put.session_id());
    change.set_ttl_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(ttl)));
    change.set_origin_unix_micros(request.sent_unix_micros());
    change.set_session(*session);
    feed_->Changed(ns_, &change, this);
    store_->Put({ns_, put.session_id()}, *session, ttl, deadline,
                [this, batch](absl::Status status) { OpDone(batch, status.ok()); });
    CleanseString(session);  // the store copied what it keeps
  }
  for (const std::string& id : request.deletes()) {
    if (!ValidateSessionId(id).ok()) {
      OpDone(batch, false);
      continue;
    }
    v1::SessionChange change;  // withdrawn everywhere, whether the store still has it
    change.set_session_id(id);
    feed_->Changed(ns_, &change, this);
    store_->Delete({ns_, id}, deadline,
                   [this, batch](absl::StatusOr<bool> existed) { OpDone(batch, existed.ok()); });
  }
  OpDone(batch, true);  // the +1
}

void FollowStream::OpDone(Batch* batch, bool ok) {
  absl::MutexLock lock(&mu_);
  if (!ok) ++batch->failed;
  if (--batch->remaining > 0) return;
  if (batch->id != 0) {
    v1::FollowResponse::Ack* ack = pending_.add_acks();
    ack->set_batch(batch->id);
    ack->set_failed(batch->failed);
  }
  delete batch;
  --store_ops_;
  WriteLocked();
  MaybeFinishLocked();
}

void FollowStream::Deliver(const v1::SessionChange& change) {
  absl::MutexLock lock(&mu_);
  if (ended_ || broken_) return;
  const size_t size = change.ByteSizeLong();
  if (pending_bytes_ + size > kMaxPendingBytes) {
    ++dropped_;
    feed_->CountDropped(1);
    return;
  }
  *pending_.add_changes() = change;
  pending_bytes_ += size;
  WriteLocked();
}

void FollowStream::HandOver() {
  absl::MutexLock lock(&mu_);
  if (ended_ || broken_) return;
  reconnect_due_ = true;
  WriteLocked();
}

void FollowStream::WriteLocked() {
  if (writing_ || broken_ || finished_) return;
  if (pending_.changes().empty() && pending_.acks().empty() && dropped_ == 0 && !reconnect_due_) {
    return;
  }
  sent_ = std::move(pending_);
  pending_.Clear();
  pending_bytes_ = 0;
  sent_.set_dropped(dropped_);
  dropped_ = 0;
  sent_.set_reconnect(reconnect_due_);
  reconnect_due_ = false;
  writing_ = true;
  feed_->CountSent(sent_.ByteSizeLong());
  StartWrite(&sent_);
}

void FollowStream::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  writing_ = false;
  WipeChanges(sent_.mutable_changes());
  sent_.Clear();
  if (!ok) {
    broken_ = true;
    EndLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "follow stream broke"));
  }
  WriteLocked();
  MaybeFinishLocked();
}

void FollowStream::Stop() {
  absl::MutexLock lock(&mu_);
  EndLocked(grpc::Status::OK);
}

void FollowStream::OnCancel() {
  absl::MutexLock lock(&mu_);
  broken_ = true;
  EndLocked(grpc::Status::CANCELLED);
}

void FollowStream::EndLocked(const grpc::Status& status) {
  if (!ended_) {
    ended_ = true;
    end_status_ = status;
  }
  MaybeFinishLocked();
}

void FollowStream::MaybeFinishLocked() {
  if (!ended_ || finished_ || store_ops_ > 0 || writing_) return;
  if (!broken_ && !pending_.acks().empty()) return WriteLocked();  // the last answers first
  finished_ = true;
  Finish(end_status_);
}

v1::NearCacheReport FollowStream::Report() const {
  absl::MutexLock lock(&mu_);
  return report_;
}

void FollowStream::OnDone() {
  bool joined;
  {
    absl::MutexLock lock(&mu_);
    joined = joined_;
  }
  if (joined) feed_->Leave(ns_, this);  // then the feed calls no more
  {
    absl::MutexLock lock(&mu_);
    WipeChanges(pending_.mutable_changes());
    WipeChanges(sent_.mutable_changes());
  }
  delete this;
}

}  // namespace tlscache::server
