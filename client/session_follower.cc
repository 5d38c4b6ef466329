#include "client/session_follower.h"

#include <grpcpp/support/sync_stream.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/time/clock.h"
#include "common/log.h"
#include "common/threads.h"
#include "tlscache/v1/session_cache.grpc.pb.h"

namespace tlscache::client {
namespace {

// Stores queued up the stream past this go the unary path instead; it also bounds a batch,
// well under the service's limit on a request (kMaxFollowRequestBytes).
constexpr size_t kMaxPendingBytes = 1 << 20;
// How often the stream carries the near cache's counters, for the service's /metrics.
constexpr absl::Duration kReportInterval = absl::Seconds(1);
// Batches written and not yet acknowledged. One: what arrives meanwhile waits for the
// acknowledgement and leaves as one batch. Under load that sends one message per round trip
// in place of one per store; measured with 64 stores awaited at once (bench/notes.md, part
// 6) it raised stores/s by about a third, and a store into an idle stream still leaves at once.
constexpr size_t kMaxBatchesOut = 1;
constexpr absl::Duration kMinBackoff = absl::Milliseconds(100);
constexpr absl::Duration kMaxBackoff = absl::Seconds(2);
// A deletion whose batch failed is sent again this much later.
constexpr absl::Duration kDeleteRetry = absl::Milliseconds(250);
// A check the service could not answer (its store down) starts again this much later.
constexpr absl::Duration kCheckRetry = absl::Seconds(1);

void WipePuts(v1::FollowRequest* request) {
  for (v1::PutRequest& put : *request->mutable_puts()) CleanseString(put.mutable_session());
}

}  // namespace

SessionFollower::SessionFollower(std::shared_ptr<grpc::Channel> channel, std::string ns,
                                 std::shared_ptr<Node> node, Resend resend,
                                 ResendDelete resend_delete, Withdrawn withdrawn,
                                 absl::Duration heartbeat)
    : channel_(std::move(channel)),
      ns_(std::move(ns)),
      node_(std::move(node)),
      feed_(node_ == nullptr ? nullptr : node_->Feed(ns_)),
      resend_(std::move(resend)),
      resend_delete_(std::move(resend_delete)),
      withdrawn_(std::move(withdrawn)),
      heartbeat_(heartbeat) {
  if (node_ != nullptr && feed_ == nullptr) {
    LogWarning("tlscache: this node follows %d namespaces already: namespace %s has no near "
               "cache here (its lookups go to the service)",
               Node::kMaxNamespaces, ns_);
  }
  reader_ = std::thread([this] { ReadLoop(); });
  writer_ = std::thread([this] { WriteLoop(); });
  if (sharing()) node_thread_ = std::thread([this] { NodeLoop(); });
}

SessionFollower::~SessionFollower() { Stop(); }

void SessionFollower::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
    if (retiring_ != nullptr) retiring_->context->TryCancel();
    cv_.SignalAll();
  }
  absl::MutexLock lock(&join_mu_);
  if (writer_.joinable()) writer_.join();
  if (reader_.joinable()) reader_.join();
  if (drainer_.joinable()) drainer_.join();
  if (node_thread_.joinable()) node_thread_.join();  // it gives the lease up
}

void SessionFollower::NodeLoop() {
  NameThisThread("tlscache-node");
  const pid_t self = getpid();
  uint64_t cursor = feed_->RemovalMark();
  std::vector<NodeFeed::Withdrawal> withdrawn;
  while (!stopping()) {
    if (!leading_.load(std::memory_order_acquire)) {
      const RobustMutex::Locked locked = feed_->TryLead();
      if (locked != RobustMutex::Locked::kNo) {
        absl::MutexLock lock(&mu_);
        leading_.store(true, std::memory_order_release);
        // A check its last holder left unfinished (or may have) is this process's to make.
        check_when_up_ = feed_->checking() || locked == RobustMutex::Locked::kOwnerDied;
        // The upload-only stream ends; the next one follows the log for the node.
        if (context_ != nullptr && !follows_) context_->TryCancel();
      }
      if (!lease_tried_.HasBeenNotified()) lease_tried_.Notify();
    }
    feed_->AwaitWithdrawal(cursor, kLeaseRetry);
    withdrawn.clear();
    const bool complete = feed_->WithdrawalsSince(&cursor, self, &withdrawn);
    if (!withdrawn_) continue;
    if (!complete) withdrawn_("", "");
    for (const NodeFeed::Withdrawal& w : withdrawn) withdrawn_(w.key, w.tls_session_id);
  }
  if (!lease_tried_.HasBeenNotified()) lease_tried_.Notify();
  if (leading_.load(std::memory_order_acquire)) feed_->Unlead();
}

std::optional<SecretBytes> SessionFollower::Lookup(absl::string_view session_id) {
  // Not while the node's follower is down, or silent: deletions may be waiting for it.
  if (!sharing() || !feed_->Vouches(absl::Now(), kVouchWithoutWord)) return std::nullopt;
  return node_->cache().Lookup(feed_->Key(session_id));
}

uint64_t SessionFollower::RemovalMark() const {
  return sharing() ? feed_->RemovalMark() : 0;
}

void SessionFollower::Keep(absl::string_view session_id, const SecretBytes& session,
                           absl::Duration ttl, uint64_t mark) {
  // Only while the node's follower is placed in the log and vouches: a session kept before
  // could end before its place, and no deletion would reach it.
  if (!sharing() || !feed_->Vouches(absl::Now(), kVouchWithoutWord)) return;
  // Not if withdrawn while the answer was on its way, or too long ago to tell.
  feed_->KeepUnlessWithdrawn(node_->cache(), session_id, session.view(), ttl, mark);
}

bool SessionFollower::WithdrawnSince(absl::string_view session_id, uint64_t mark) const {
  return sharing() && feed_->WithdrawnSince(session_id, mark);
}

bool SessionFollower::Put(absl::string_view session_id, SecretBytes& session, uint32_t ttl_seconds,
                          std::shared_ptr<Acknowledgement> ack) {
  {
    absl::MutexLock lock(&mu_);
    if (!up_ || pending_bytes_ + session.size() > kMaxPendingBytes) return false;
    v1::PutRequest* put = pending_.add_puts();
    put->set_session_id(std::string(session_id));
    put->set_session(session.data(), session.size());
    put->set_ttl_seconds(ttl_seconds);
    pending_bytes_ += session.size() + session_id.size();
    if (ack != nullptr) pending_acks_.push_back(std::move(ack));
    cv_.SignalAll();
  }
  if (sharing()) {
    node_->cache().Insert(feed_->Key(session_id), session.view(), absl::Seconds(ttl_seconds));
  }
  session.Clear();
  return true;
}

bool SessionFollower::Delete(const v1::DeleteRequest& removal) {
  // This process dropped its own copies already.
  if (sharing()) {
    feed_->Withdraw(node_->cache(), removal.session_id(), removal.tls_session_id(), getpid());
  }
  absl::MutexLock lock(&mu_);
  if (!up_) return false;
  v1::DeleteRequest* queued = pending_.add_removals();
  *queued = removal;
  queued->clear_namespace_();  // the stream's
  pending_bytes_ += removal.session_id().size() + removal.tls_session_id().size();
  cv_.SignalAll();
  return true;
}

bool SessionFollower::Flush(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const absl::Time deadline = absl::Now() + timeout;
  while (up_ && (!unacked_.empty() || !retries_.empty() ||
                 pending_.puts_size() + pending_.removals_size() > 0)) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) return false;
  }
  return true;
}

void SessionFollower::Watch(absl::Time now) {
  absl::MutexLock lock(&mu_);
  for (const auto& [batch, sent] : unacked_) {
    if (sent.stream != stream_id_) continue;  // a replaced stream's: it ends by itself
    if (context_ != nullptr && now - sent.sent_at > 4 * heartbeat_) {
      context_->TryCancel();  // the service stopped answering: the reader ends the stream
    }
    break;  // the oldest
  }
  if (retiring_ != nullptr && now >= retire_at_) {
    retire_at_ = absl::InfiniteFuture();
    retiring_->context->TryCancel();  // its successor is up: the drainer ends it
  }
}

FollowerStats SessionFollower::stats() const {
  FollowerStats stats;
  {
    absl::MutexLock lock(&mu_);
    stats.up = up_;
  }
  stats.leading = leading_.load();
  stats.vouching = sharing() && !feed_->checking();
  stats.streams = streams_.load();
  stats.received = received_.load();
  stats.gaps = gaps_.load();
  stats.withdrawn = withdrawn_count_.load();
  stats.resent = resent_.load();
  stats.stored = stored_.load();
  stats.batches = batches_.load();
  stats.store_failures = store_failures_.load();
  absl::MutexLock lock(&lag_mu_);
  stats.lag_count = lag_.count();
  stats.lag_p50 = lag_.Percentile(50);
  stats.lag_p99 = lag_.Percentile(99);
  return stats;
}

void SessionFollower::UpdateVouchingLocked() {
  if (sharing()) feed_->SetChecking(checking_);
}

void SessionFollower::StartCheckLocked(absl::Time now) {
  ++check_id_;
  checking_ = true;
  check_failed_ = false;
  check_again_at_ = absl::InfiniteFuture();
  checks_due_.clear();
  const std::vector<std::string> keys =
      sharing() ? node_->cache().Keys(feed_->prefix()) : std::vector<std::string>();
  for (size_t i = 0; i < keys.size(); i += kCheckChunk) {
    v1::SessionCheck check;
    check.set_id(check_id_);
    for (size_t j = i; j < std::min(keys.size(), i + kCheckChunk); ++j) {
      check.add_session_ids(keys[j]);
    }
    checks_due_.push_back(std::move(check));
  }
  checks_open_ = static_cast<int>(checks_due_.size());
  if (checks_open_ == 0) checking_ = false;  // nothing to vouch for
  UpdateVouchingLocked();
  cv_.SignalAll();
}

void SessionFollower::ApplyChecked(const v1::SessionCheckResult& result) {
  // Dead whatever check found them: a session the store has no live entry for stays so.
  for (const std::string& id : result.dead()) {
    if (sharing()) feed_->Withdraw(node_->cache(), id, "", 0);
    withdrawn_count_.fetch_add(1, std::memory_order_relaxed);
  }
  absl::MutexLock lock(&mu_);
  if (!checking_ || result.id() != check_id_) return;  // an earlier check's
  --checks_open_;
  check_failed_ |= result.failed();
  if (checks_open_ > 0 || !checks_due_.empty()) return;
  if (check_failed_) {
    check_again_at_ = absl::Now() + kCheckRetry;
  } else {
    checking_ = false;
    UpdateVouchingLocked();
  }
}

void SessionFollower::Apply(v1::FollowResponse& response, bool current, bool follows) {
  const absl::Time now = absl::Now();
  // Counted before they are applied: whoever sees a pushed session in the near cache sees it
  // counted.
  received_.fetch_add(response.changes_size(), std::memory_order_relaxed);
  bool gap = false;
  if (follows && sharing() && response.has_position()) {
    absl::MutexLock apply_lock(&apply_mu_);
    const v1::LogPosition& at = response.position();
    const uint64_t n = static_cast<uint64_t>(response.changes_size());
    const bool malformed = at.seq() + 1 < n;
    const uint64_t first = malformed ? 0 : at.seq() + 1 - n;
    // Where the node stands: this process's earlier streams, or the follower before it.
    const std::optional<LogPoint> node_at = feed_->Position();
    LogPoint applied = node_at.value_or(LogPoint());
    bool apply = true;
    if (!node_at || response.gap() || malformed || !ContinuesFrom(applied, at.log_id(), first)) {
      if (!current) {
        apply = false;  // a replaced stream out of step with this one: its successor has it
      } else {
        gap = node_at.has_value() || response.gap();  // a first place in the log is no gap
        applied = LogPoint{at.log_id(), malformed ? at.seq() : first - 1};
        apply = !malformed;
        if (!apply) feed_->SetPosition(applied);
      }
    }
    if (apply) {
      for (int i = 0; i < response.changes_size(); ++i) {
        const uint64_t seq = first + static_cast<uint64_t>(i);
        if (seq <= applied.seq) continue;  // applied already (from the stream it replaces)
        v1::SessionChange& change = *response.mutable_changes(i);
        if (change.session().empty()) {
          feed_->Withdraw(node_->cache(), change.session_id(), change.tls_session_id(), 0);
        } else {
          node_->cache().Insert(feed_->Key(change.session_id()), change.session(),
                                absl::Milliseconds(static_cast<int64_t>(
                                    std::min<uint64_t>(change.ttl_ms(), uint64_t{1} << 62))));
          if (change.origin_unix_micros() > 0) {
            absl::MutexLock lock(&lag_mu_);
            lag_.Record(now - absl::FromUnixMicros(change.origin_unix_micros()));
          }
        }
        applied.seq = seq;
      }
      applied.log_id = at.log_id();
      // After the changes: a follower killed in between leaves a position the next one goes
      // on from, applying some changes twice (in order: the same result).
      feed_->SetPosition(applied);
    }
  }
  for (v1::SessionChange& change : *response.mutable_changes()) {
    CleanseString(change.mutable_session());
  }
  if (gap) {
    absl::MutexLock lock(&mu_);
    gaps_.fetch_add(1, std::memory_order_relaxed);
    StartCheckLocked(now);
  }
  if (response.has_checked()) ApplyChecked(response.checked());
  if (response.acks().empty()) return;
  std::vector<std::pair<std::shared_ptr<Acknowledgement>, bool>> complete;
  {
    absl::MutexLock lock(&mu_);
    for (const v1::FollowResponse::Ack& ack : response.acks()) {
      if (ack.batch() == hello_batch_ && hello_batch_ != 0) {
        hello_batch_ = 0;
        up_ = true;
        streams_.fetch_add(1, std::memory_order_relaxed);
        if (follows_ && check_when_up_) {
          check_when_up_ = false;
          StartCheckLocked(now);
        }
        // A stream replacing another is up: the old one overlaps it a moment, then ends.
        if (retiring_ != nullptr) retire_at_ = absl::Now() + kOverlap;
      }
      auto it = unacked_.find(ack.batch());
      if (it == unacked_.end()) continue;
      const uint64_t ops = it->second.ops;
      const uint64_t failed = std::min<uint64_t>(ack.failed(), ops);
      stored_.fetch_add(ops - failed, std::memory_order_relaxed);
      store_failures_.fetch_add(failed, std::memory_order_relaxed);
      // Which failed is not said: every deletion of the batch goes again (they are idempotent).
      if (failed > 0) {
        for (const v1::DeleteRequest& removal : it->second.request.removals()) {
          retries_.push_back(Retry{removal, now + kDeleteRetry,
                                   now + std::max(absl::Seconds(removal.hold_seconds()),
                                                  absl::Seconds(1))});
        }
      }
      for (auto& waiter : it->second.acks) complete.emplace_back(std::move(waiter), failed == 0);
      WipePuts(&it->second.request);
      unacked_.erase(it);
    }
    cv_.SignalAll();
  }
  for (auto& [waiter, ok] : complete) waiter->Complete(ok);
}

bool SessionFollower::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

void SessionFollower::Down(uint64_t id, bool current) {
  std::map<uint64_t, Sent> unacked;
  v1::FollowRequest pending;
  std::vector<std::shared_ptr<Acknowledgement>> pending_acks;
  std::deque<Retry> retries;
  bool stopping;
  {
    absl::MutexLock lock(&mu_);
    stopping = stopping_;
    for (auto it = unacked_.begin(); it != unacked_.end();) {
      if (it->second.stream == id) {
        unacked.insert(unacked_.extract(it++));
      } else {
        ++it;
      }
    }
    if (current) {
      up_ = false;
      // The node's near cache answers nothing until its follower is heard again.
      if (follows_ && sharing()) feed_->Heard(std::nullopt);
      hello_batch_ = 0;
      pending.Swap(&pending_);
      pending_bytes_ = 0;
      pending_acks.swap(pending_acks_);
      retries.swap(retries_);
      // A check in progress starts again on the next stream.
      checks_due_.clear();
      if (checking_) {
        checks_open_ = 0;
        check_again_at_ = absl::InfinitePast();
      }
    }
    cv_.SignalAll();
  }
  auto hand_back = [this, stopping](v1::FollowRequest& request,
                                    std::vector<std::shared_ptr<Acknowledgement>>& acks) {
    for (auto& ack : acks) ack->Complete(false);
    if (!stopping) {
      for (v1::PutRequest& put : *request.mutable_puts()) {
        resent_.fetch_add(1, std::memory_order_relaxed);
        resend_(std::move(put));
      }
      for (v1::DeleteRequest& removal : *request.mutable_removals()) {
        resend_delete_(std::move(removal));
      }
    }
    WipePuts(&request);
  };
  for (auto& [batch, sent] : unacked) hand_back(sent.request, sent.acks);
  hand_back(pending, pending_acks);
  if (!stopping) {
    for (Retry& retry : retries) resend_delete_(std::move(retry.removal));
  }
}

void SessionFollower::ReadLoop() {
  NameThisThread("tlscache-read");
  std::unique_ptr<v1::SessionCache::Stub> stub = v1::SessionCache::NewStub(channel_);
  absl::Duration backoff = kMinBackoff;
  // A moment at most: the lease is tried at once, without waiting on anything.
  if (sharing()) lease_tried_.WaitForNotificationWithTimeout(absl::Seconds(1));
  while (true) {
    // No deadline: the stream lasts until the replica asks the process to move, or goes.
    auto context = std::make_unique<grpc::ClientContext>();
    std::unique_ptr<Stream> stream = stub->Follow(context.get());
    uint64_t id;
    bool follows;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      context_ = context.get();
      stream_ = stream.get();
      id = ++stream_id_;
      // Decided under mu_, as NodeLoop takes the lease: a stream opened before it ends.
      follows_ = follows = sharing() && leading_.load(std::memory_order_acquire);
      hello_due_ = true;
      cv_.SignalAll();
    }
    // Which process of a node follows for it, as an operator sees it (top -H).
    NameThisThread(follows ? "tlscache-follow" : "tlscache-read");
    v1::FollowResponse response;
    bool answered = false;
    bool replaced = false;
    while (stream->Read(&response)) {
      const bool reconnect = response.reconnect();
      const bool paused = response.paused();
      Apply(response, /*current=*/true, follows);
      response.Clear();
      answered = true;
      if (follows) {
        // Heard from, the replica following the log: the node's near cache may answer
        // (unless this stream began with a gap: then the check decides).
        absl::MutexLock lock(&mu_);
        feed_->Heard(up_ && !paused ? std::optional<absl::Time>(absl::Now()) : std::nullopt);
      }
      if (reconnect && Replace(context, stream, id)) {
        replaced = true;
        break;
      }
    }
    if (replaced) {  // the next stream at once, the old one still open meanwhile
      backoff = kMinBackoff;
      continue;
    }
    {
      absl::MutexLock lock(&mu_);
      context->TryCancel();  // a Write in progress returns
      stream_ = nullptr;
      context_ = nullptr;
      AwaitNotWritingLocked(id);
    }
    const grpc::Status status = stream->Finish();
    // A replica going away (shutting down, restarting) is routine; a refusal is not.
    const grpc::StatusCode code = status.error_code();
    if (code != grpc::StatusCode::OK && code != grpc::StatusCode::UNAVAILABLE &&
        code != grpc::StatusCode::CANCELLED && !stopping() && report_.Allow()) {
      LogWarning(
          "tlscache: the Follow stream of namespace %s ended: %s (stores go as unary "
          "calls until it is back)",
          ns_, status.error_message());
    }
    Down(id, /*current=*/true);
    if (answered) backoff = kMinBackoff;
    absl::MutexLock lock(&mu_);
    const absl::Time until = absl::Now() + backoff;
    while (!stopping_ && !cv_.WaitWithDeadline(&mu_, until)) {
    }
    if (stopping_) return;
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

void SessionFollower::AwaitNotWritingLocked(uint64_t id) {
  struct Writing {
    const uint64_t* writing;
    uint64_t id;
  } writing{&writing_, id};
  mu_.Await(absl::Condition(+[](Writing* w) { return *w->writing != w->id; }, &writing));
}

bool SessionFollower::Replace(std::unique_ptr<grpc::ClientContext>& context,
                              std::unique_ptr<Stream>& stream, uint64_t id) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || retiring_ != nullptr) return false;
  }
  if (drainer_.joinable()) drainer_.join();  // the last one has ended (retiring_ is null)
  absl::MutexLock lock(&mu_);
  if (stopping_) return false;
  retiring_ = std::make_unique<Retiring>(
      Retiring{std::move(context), std::move(stream), id, follows_});
  retire_at_ = absl::InfiniteFuture();
  // The writer leaves it: stores go up the next stream once it is opened.
  stream_ = nullptr;
  context_ = nullptr;
  drainer_ = std::thread([this] { DrainLoop(); });
  return true;
}

void SessionFollower::DrainLoop() {
  NameThisThread("tlscache-drain");
  Retiring* retiring;
  {
    absl::MutexLock lock(&mu_);
    retiring = retiring_.get();
  }
  v1::FollowResponse response;
  while (retiring->stream->Read(&response)) {  // until Watch ends it, or the replica
    Apply(response, /*current=*/false, retiring->follows);
    response.Clear();
  }
  {
    absl::MutexLock lock(&mu_);
    retiring->context->TryCancel();
    AwaitNotWritingLocked(retiring->id);
  }
  retiring->stream->Finish();
  Down(retiring->id, /*current=*/false);
  absl::MutexLock lock(&mu_);
  retiring_.reset();
  retire_at_ = absl::InfiniteFuture();
  cv_.SignalAll();
}

void SessionFollower::WriteLoop() {
  NameThisThread("tlscache-write");
  absl::MutexLock lock(&mu_);
  absl::Time last_report = absl::InfinitePast();
  while (!stopping_) {
    const absl::Time now = absl::Now();
    if (up_) {
      // Deletions due again join the next batch.
      while (!retries_.empty() && retries_.front().not_before <= now) {
        Retry retry = std::move(retries_.front());
        retries_.pop_front();
        if (now < retry.give_up) *pending_.add_removals() = std::move(retry.removal);
      }
      if (checking_ && checks_open_ == 0 && checks_due_.empty() && now >= check_again_at_) {
        StartCheckLocked(now);
      }
    }
    const bool stores = pending_.puts_size() + pending_.removals_size() > 0;
    const bool check = up_ && !checks_due_.empty();
    const bool work =
        stream_ != nullptr &&
        (hello_due_ || check ||
         (up_ && ((stores && unacked_.size() < kMaxBatchesOut) || now - last_sent_ >= heartbeat_)));
    if (!work) {
      absl::Duration wait = heartbeat_;
      if (!retries_.empty()) wait = std::min(wait, retries_.front().not_before - now);
      if (checking_ && check_again_at_ != absl::InfiniteFuture()) {
        wait = std::min(wait, check_again_at_ - now);
      }
      cv_.WaitWithTimeout(&mu_, std::max(absl::Milliseconds(1), wait));
      continue;
    }
    v1::FollowRequest request;
    std::vector<std::shared_ptr<Acknowledgement>> acks;
    bool batch = true;
    if (hello_due_) {
      hello_due_ = false;
      request.set_namespace_(ns_);
      if (!follows_) {
        request.set_upload_only(true);  // the node's follower receives the log for it
      } else if (std::optional<LogPoint> at = feed_->Position()) {
        request.mutable_resume_after()->set_log_id(at->log_id);
        request.mutable_resume_after()->set_seq(at->seq);
      }
      hello_batch_ = next_batch_;
    } else if (check) {
      // A check goes alone, unacknowledged: its answer is FollowResponse.checked.
      *request.mutable_check() = std::move(checks_due_.front());
      checks_due_.pop_front();
      batch = false;
    } else {
      request.Swap(&pending_);
      pending_bytes_ = 0;
      acks.swap(pending_acks_);
    }
    if (batch) request.set_batch(next_batch_++);
    request.set_sent_unix_micros(absl::ToUnixMicros(now));
    // The node's near cache, reported by its follower alone (once per node).
    if (follows_ && now - last_report >= kReportInterval) {
      last_report = now;
      const NearCacheStats near = node_->cache().stats();
      v1::NearCacheReport* report = request.mutable_near_cache();
      report->set_hits(near.hits);
      report->set_misses(near.misses);
      report->set_entries(near.entries);
      report->set_bytes(near.bytes);
    }
    if (batch) {
      Sent& sent = unacked_[request.batch()];
      sent.acks = std::move(acks);
      sent.ops = request.puts_size() + request.removals_size();
      sent.stream = stream_id_;
      sent.sent_at = now;
      // The deletions now: the acknowledgement may come before the write returns, and a
      // failed one sends them again.
      *sent.request.mutable_removals() = request.removals();
    }
    Stream* stream = stream_;
    grpc::ClientContext* context = context_;
    last_sent_ = now;
    batches_.fetch_add(1, std::memory_order_relaxed);
    writing_ = stream_id_;
    mu_.Unlock();
    const bool ok = stream->Write(request);
    mu_.Lock();
    writing_ = 0;
    // The sessions kept until acknowledged: handed back if the stream ends first.
    if (auto it = batch ? unacked_.find(request.batch()) : unacked_.end(); it != unacked_.end()) {
      it->second.request.mutable_puts()->Swap(request.mutable_puts());
    }
    WipePuts(&request);  // unless kept (or acknowledged while the write was returning)
    if (!ok && context_ == context && context != nullptr) context->TryCancel();
  }
}

}  // namespace tlscache::client
