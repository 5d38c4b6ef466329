#include "server/sessions/follow_stream.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/secret_bytes.h"
#include "common/status_util.h"
#include "common/validation.h"

namespace tlscache::server {
namespace {

// Stores and deletions up a stream get this long (a deletion waits for the log too).
constexpr absl::Duration kOpTimeout = absl::Seconds(2);

void WipePuts(v1::FollowRequest* request) {
  for (v1::PutRequest& put : *request->mutable_puts()) CleanseString(put.mutable_session());
}

}  // namespace

// One request's Puts and deletions, until the store has answered for all of them.
struct FollowStream::Batch {
  uint64_t id = 0;
  int remaining = 0;
  uint32_t failed = 0;
  uint32_t refused = 0;
};

// One check of the process's copies, until the store has answered for each session.
struct FollowStream::Check {
  v1::SessionCheckResult result;
  int remaining = 0;
};

FollowStream::FollowStream(grpc::CallbackServerContext* context, SessionWrites* writes,
                           SessionFeed* feed, const Authorizer* authz)
    : context_(context), writes_(writes), feed_(feed), authz_(authz) {
  StartRead(&request_);
}

absl::Status FollowStream::Admit(const v1::FollowRequest& request) {
  return AdmitNamespace(authz_, *context_, request.namespace_());
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
      WipePuts(&request_);
      absl::MutexLock lock(&mu_);
      broken_ = true;  // nothing to tell it but why
      EndLocked(ToGrpcStatus(s));
      return;
    }
    ns_ = request_.namespace_();
    if (context_->auth_context() != nullptr) identity_ = PeerIdentity(*context_->auth_context());
    std::optional<LogPoint> resume_after;
    if (request_.has_resume_after()) {
      resume_after = LogPoint{request_.resume_after().log_id(), request_.resume_after().seq()};
    }
    {
      absl::MutexLock lock(&mu_);
      joined_ = true;
    }
    feed_->Join(ns_, this, std::move(resume_after), /*push=*/!request_.upload_only());
  } else if (!request_.namespace_().empty() && request_.namespace_() != ns_) {
    WipePuts(&request_);
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
  const int ops = request.puts_size() + request.removals_size() + request.deletes_size();
  const bool acked = request.batch() != 0;
  {
    absl::MutexLock lock(&mu_);
    if (request.has_near_cache()) report_ = request.near_cache();
    // A read that completed after the stream ended (a shutdown): gRPC calls OnDone once the
    // reactions return, so nothing may start that calls back later.
    if (ended_ || finished_) {
      WipePuts(&request);
      return;
    }
    if (acked && open_batches_ >= kMaxOpenBatches) {
      WipePuts(&request);
      broken_ = true;
      feed_->CountEnded("unread");
      EndLocked(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                             absl::StrCat("this Follow stream has ", open_batches_,
                                          " batches not yet acknowledged: its process does not "
                                          "read the stream")));
      return;
    }
    if (request.has_check() && (request.check().session_ids_size() > kMaxCheckIds ||
                                open_checks_ >= kMaxOpenChecks)) {
      WipePuts(&request);
      broken_ = true;
      feed_->CountEnded("checks");
      EndLocked(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("check: at most ", kMaxCheckIds, " session IDs a check and ",
                       kMaxOpenChecks, " checks not yet answered")));
      return;
    }
    if (request.has_check()) {
      ++open_checks_;
      ++store_ops_;
    }
    if (ops == 0 && !acked) {
      // Only a check, or only a report.
    } else {
      if (acked) ++open_batches_;
      ++store_ops_;  // held until the batch is done: no Finish before
    }
  }
  if (request.has_check()) StartCheck(request.check());
  if (ops == 0 && !acked) return;
  auto* batch = new Batch();
  batch->id = request.batch();
  batch->remaining = ops + 1;  // +1: held until every op was sent
  const absl::Time deadline = absl::Now() + kOpTimeout;
  // Stores first, then deletions: a session stored and deleted in one batch stays deleted.
  for (v1::PutRequest& put : *request.mutable_puts()) {
    writes_->Put(ns_, put.session_id(), put.session(), put.ttl_seconds(),
                 request.sent_unix_micros(), deadline,
                 [this, batch](absl::StatusOr<bool> stored) {
                   OpDone(batch, stored.ok(), stored.ok() && !*stored);
                 });
    CleanseString(put.mutable_session());  // the store and the log copied what they keep
  }
  for (const v1::DeleteRequest& removal : request.removals()) {
    writes_->Delete(ns_, removal.session_id(), removal.hold_seconds(), removal.tls_session_id(),
                    deadline,
                    [this, batch](absl::StatusOr<bool> existed) { OpDone(batch, existed.ok(), false); });
  }
  for (const std::string& id : request.deletes()) {
    writes_->Delete(ns_, id, 0, "", deadline, [this, batch](absl::StatusOr<bool> existed) {
      OpDone(batch, existed.ok(), false);
    });
  }
  OpDone(batch, true, false);  // the +1
}

void FollowStream::StartCheck(const v1::SessionCheck& request) {
  auto* check = new Check();
  check->result.set_id(request.id());
  check->remaining = request.session_ids_size() + 1;  // +1: held until every one was sent
  const absl::Time deadline = absl::Now() + kOpTimeout;
  for (const std::string& id : request.session_ids()) {
    writes_->Live(ns_, id, deadline, [this, check, id](absl::StatusOr<bool> live) {
      CheckDone(check, id, std::move(live));
    });
  }
  CheckDone(check, "", true);
}

void FollowStream::CheckDone(Check* check, const std::string& session_id,
                             absl::StatusOr<bool> live) {
  absl::MutexLock lock(&mu_);
  if (absl::IsInvalidArgument(live.status()) || (live.ok() && !*live)) {
    check->result.add_dead(session_id);  // malformed IDs are never live either
  } else if (!live.ok()) {
    check->result.set_failed(true);
  }
  if (--check->remaining > 0) return;
  checked_.push_back(std::move(check->result));
  delete check;
  --store_ops_;
  WriteLocked();
  MaybeFinishLocked();
}

void FollowStream::OpDone(Batch* batch, bool ok, bool refused) {
  absl::MutexLock lock(&mu_);
  if (!ok) ++batch->failed;
  if (refused) ++batch->refused;
  if (--batch->remaining > 0) return;
  if (batch->id != 0) {
    v1::FollowResponse::Ack ack;
    ack.set_batch(batch->id);
    ack.set_failed(batch->failed);
    ack.set_refused(batch->refused);
    acks_.push_back(ack);
  }
  delete batch;
  --store_ops_;
  WriteLocked();
  MaybeFinishLocked();
}

void FollowStream::Begin(const LogPoint& at, std::vector<FeedChangePtr> replay, bool gap) {
  absl::MutexLock lock(&mu_);
  if (ended_ || broken_) return;
  begun_ = true;
  position_due_ = true;
  at_ = at;
  for (FeedChangePtr& change : replay) {
    queued_bytes_ += change->bytes();
    queued_.push_back(std::move(change));
  }
  if (gap) GapLocked();
  WriteLocked();
}

void FollowStream::GapLocked() {
  queued_.clear();
  queued_bytes_ = 0;
  gap_due_ = true;
  feed_->CountGap();
}

void FollowStream::Deliver(absl::string_view log_id, uint64_t first,
                           const std::vector<FeedChangePtr>& changes, bool over_budget) {
  absl::MutexLock lock(&mu_);
  if (!begun_ || ended_ || broken_) return;
  const uint64_t last = changes.empty() ? first - 1 : changes.back()->seq();
  if (!changes.empty() && at_.log_id == log_id && last <= at_.seq) return;  // had them all
  // A subscription that started again goes on only from exactly where it was.
  const bool goes_on = changes.empty() ? at_.log_id == log_id && at_.seq == last
                                       : ContinuesFrom(at_, log_id, first);
  if (!goes_on) {
    GapLocked();
    at_ = LogPoint{std::string(log_id), first - 1};
  }
  at_.log_id = std::string(log_id);
  for (const FeedChangePtr& change : changes) {
    if (change->seq() <= at_.seq) continue;
    queued_.push_back(change);
    queued_bytes_ += change->bytes();
    at_.seq = change->seq();
  }
  // Too far behind, or behind while the feed holds too much: cut loose rather than hold more.
  if (queued_bytes_ > feed_->options().max_follower_bytes ||
      (over_budget && writing_ && !queued_.empty())) {
    GapLocked();
  }
  WriteLocked();
}

void FollowStream::HandOver() {
  absl::MutexLock lock(&mu_);
  if (ended_ || broken_) return;
  reconnect_due_ = true;
  WriteLocked();
}

void FollowStream::Reauthorize() {
  absl::MutexLock lock(&mu_);
  if (authz_ == nullptr || ended_ || ns_.empty()) return;
  absl::Status allowed = authz_->CheckIdentity(identity_, ns_);
  if (allowed.ok()) return;
  queued_.clear();
  queued_bytes_ = 0;
  broken_ = true;  // nothing more of the namespace reaches it
  feed_->CountEnded("denied");
  EndLocked(ToGrpcStatus(allowed));
}

void FollowStream::Pause(bool paused) {
  absl::MutexLock lock(&mu_);
  if (ended_ || broken_ || paused_ == paused) return;
  paused_ = paused;
  position_due_ = true;  // said at once
  WriteLocked();
}

void FollowStream::Tick(absl::Time now) {
  {
    absl::MutexLock lock(&mu_);
    if (!writing_ || cancelled_ || now - write_started_ < (ended_ ? kEndedWriteGrace : kStuckWrite)) {
      return;
    }
    cancelled_ = true;
  }
  feed_->CountEnded("stuck");
  context_->TryCancel();
}

void FollowStream::WriteLocked() {
  if (writing_ || broken_ || finished_ || !begun_) return;
  if (queued_.empty() && acks_.empty() && checked_.empty() && !gap_due_ && !reconnect_due_ &&
      !position_due_) {
    return;
  }
  sent_.Clear();
  size_t bytes = 0;
  uint64_t last = at_.seq;
  while (!queued_.empty() &&
         (sent_.changes_size() == 0 || bytes + queued_.front()->bytes() <= kMaxResponseBytes)) {
    const FeedChangePtr& change = queued_.front();
    *sent_.add_changes() = change->change();
    bytes += change->bytes();
    queued_bytes_ -= change->bytes();
    last = change->seq();
    queued_.pop_front();
  }
  sent_.mutable_position()->set_log_id(at_.log_id);
  sent_.mutable_position()->set_seq(last);
  for (const v1::FollowResponse::Ack& ack : acks_) *sent_.add_acks() = ack;
  acks_.clear();
  if (!checked_.empty()) {
    *sent_.mutable_checked() = std::move(checked_.front());
    checked_.pop_front();
  }
  sent_.set_gap(gap_due_);
  sent_.set_paused(paused_);
  sent_.set_reconnect(reconnect_due_);
  gap_due_ = false;
  reconnect_due_ = false;
  position_due_ = false;
  writing_ = true;
  write_started_ = absl::Now();
  feed_->CountSent(sent_.ByteSizeLong());
  StartWrite(&sent_);
}

void FollowStream::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  writing_ = false;
  open_batches_ -= sent_.acks_size();
  if (sent_.has_checked()) --open_checks_;
  for (v1::SessionChange& change : *sent_.mutable_changes()) {
    CleanseString(change.mutable_session());
  }
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
  // The last answers first (a stream placed in the log: one that never was has no position
  // to send them with).
  if (!broken_ && begun_ && (!acks_.empty() || !checked_.empty())) return WriteLocked();
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
    queued_.clear();
    for (v1::SessionChange& change : *sent_.mutable_changes()) {
      CleanseString(change.mutable_session());
    }
  }
  delete this;
}

}  // namespace tlscache::server
