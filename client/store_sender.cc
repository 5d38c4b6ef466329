#include "client/store_sender.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"
#include "common/secret_bytes.h"
#include "common/threads.h"

namespace tlscache::client {
namespace {

// A Delete that failed is sent again after this (doubling up to the most), until its hold has
// passed.
constexpr absl::Duration kDeleteRetryMin = absl::Milliseconds(100);
constexpr absl::Duration kDeleteRetryMax = absl::Seconds(5);
// Bound on a background Put or Delete; they are off the handshake path, so this only keeps
// the in-flight window moving when the cache is slow.
constexpr absl::Duration kStoreTimeout = absl::Seconds(1);
// How long the completion thread stays once no call is in flight.
constexpr absl::Duration kCompleterIdle = absl::Seconds(1);

}  // namespace

// One unary store: its call, and what becomes of it once answered.
class StoreSender::Call {
 public:
  virtual ~Call() = default;
  // The most that may wait in the queue, of calls of this kind.
  virtual size_t Room(size_t capacity) const = 0;
  virtual void Start(v1::SessionCache::Stub& stub, grpc::CompletionQueue* cq) = 0;
  // Once answered (`status` set): completes what waits on it, and returns the same store to
  // send again `backoff` later, or null.
  virtual std::unique_ptr<Call> Answered(absl::Duration* backoff) = 0;

  grpc::ClientContext context;
  grpc::Status status;
};

class StoreSender::PutCall final : public Call {
 public:
  PutCall(v1::PutRequest request, std::shared_ptr<Acknowledgement> ack)
      : request_(std::move(request)), ack_(std::move(ack)) {}
  ~PutCall() override {
    CleanseString(request_.mutable_session());
    if (ack_ != nullptr) ack_->Complete(false);  // dropped unanswered (the first call decides)
  }

  size_t Room(size_t capacity) const override { return capacity; }
  void Start(v1::SessionCache::Stub& stub, grpc::CompletionQueue* cq) override {
    call_ = stub.AsyncPut(&context, request_, cq);
    call_->Finish(&response_, &status, this);
  }
  std::unique_ptr<Call> Answered(absl::Duration*) override {
    if (ack_ != nullptr) ack_->Complete(status.ok());
    return nullptr;  // a session lost on the way costs its next resumption, nothing more
  }

 private:
  v1::PutRequest request_;
  std::shared_ptr<Acknowledgement> ack_;  // null unless awaited
  v1::PutResponse response_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::PutResponse>> call_;
};

class StoreSender::DeleteCall final : public Call {
 public:
  DeleteCall(v1::DeleteRequest request, absl::Time give_up, absl::Duration backoff)
      : request_(std::move(request)), give_up_(give_up), backoff_(backoff) {}

  // Deletions get twice the room: a session a node dropped must not stay in the farm.
  size_t Room(size_t capacity) const override { return 2 * capacity; }
  void Start(v1::SessionCache::Stub& stub, grpc::CompletionQueue* cq) override {
    call_ = stub.AsyncDelete(&context, request_, cq);
    call_->Finish(&response_, &status, this);
  }
  // A deletion that failed for a reason that may pass goes again (a fresh call: a context
  // serves one call), unless it no longer needs to.
  std::unique_ptr<Call> Answered(absl::Duration* backoff) override {
    const grpc::StatusCode code = status.error_code();
    if (status.ok() || code == grpc::StatusCode::INVALID_ARGUMENT ||
        code == grpc::StatusCode::PERMISSION_DENIED || absl::Now() >= give_up_) {
      return nullptr;
    }
    *backoff = backoff_;
    return std::make_unique<DeleteCall>(std::move(request_), give_up_,
                                        std::min(backoff_ * 2, kDeleteRetryMax));
  }

 private:
  v1::DeleteRequest request_;
  const absl::Time give_up_;
  const absl::Duration backoff_;
  v1::DeleteResponse response_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::DeleteResponse>> call_;
};

StoreSender::StoreSender(v1::SessionCache::Stub* stub, StoreSenderOptions options,
                         ClientCounters* counters)
    : stub_(stub), options_(std::move(options)), counters_(counters) {
  sender_ = std::thread([this] { SendLoop(); });
}

StoreSender::~StoreSender() {
  Stop();
  void* tag = nullptr;
  bool ok = false;
  while (cq_.Next(&tag, &ok)) {
  }
}

void StoreSender::Put(v1::PutRequest put, std::shared_ptr<Acknowledgement> ack) {
  Enqueue(std::make_unique<PutCall>(std::move(put), std::move(ack)));
}

void StoreSender::Delete(v1::DeleteRequest removal) {
  const absl::Time give_up =
      absl::Now() + std::max(absl::Seconds(removal.hold_seconds()), kStoreTimeout);
  Enqueue(std::make_unique<DeleteCall>(std::move(removal), give_up, kDeleteRetryMin));
}

void StoreSender::Enqueue(std::unique_ptr<Call> call) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || queue_.size() >= call->Room(options_.queue_capacity)) {
      counters_->queue_drops++;
      return;
    }
    if (!queue_.empty() || in_flight_ >= options_.max_in_flight) {
      queue_.push_back(std::move(call));
      return;
    }
    StartingCall();
  }
  Start(call.release());
}

bool StoreSender::Flush(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return queue_.empty() && in_flight_ == 0 && retries_.empty();
  };
  return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

bool StoreSender::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

void StoreSender::Stop() {
  absl::MutexLock join(&join_mu_);
  std::thread completer;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;  // stopped before
    stopping_ = true;
    counters_->queue_drops += queue_.size() + retries_.size();
    queue_.clear();
    retries_.clear();
  }
  sender_.join();
  {
    absl::MutexLock lock(&mu_);
    // Calls in flight end by their deadline; their completions touch this object.
    mu_.Await(absl::Condition(
        +[](int* in_flight) { return *in_flight == 0; }, &in_flight_));
    completer = std::move(completer_);
  }
  cq_.Shutdown();  // an idle completion thread sees it at once
  if (completer.joinable()) completer.join();
}

void StoreSender::SendLoop() {
  NameThisThread("tlscache-send");
  if (options_.start) options_.start(*this);
  absl::MutexLock lock(&mu_);
  absl::Time next_tick = absl::Now();
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || (!queue_.empty() && in_flight_ < options_.max_in_flight);
  };
  while (true) {
    absl::Time wake = next_tick;
    if (!retries_.empty()) wake = std::min(wake, retries_.begin()->first);
    mu_.AwaitWithDeadline(absl::Condition(&ready), wake);
    if (stopping_) return;
    const absl::Time now = absl::Now();
    while (!retries_.empty() && retries_.begin()->first <= now) {
      queue_.push_back(std::move(retries_.begin()->second));
      retries_.erase(retries_.begin());
    }
    if (now >= next_tick) {
      next_tick = now + options_.tick_interval;
      if (options_.tick) {
        mu_.Unlock();
        options_.tick(now);
        mu_.Lock();
      }
      if (stopping_) return;
    }
    if (queue_.empty() || in_flight_ >= options_.max_in_flight) continue;
    Call* call = queue_.front().release();
    queue_.pop_front();
    StartingCall();
    mu_.Unlock();
    Start(call);
    mu_.Lock();
  }
}

// The completion thread runs only while stores are in flight (the stream down, or the near
// cache off): a thread waiting in gRPC polls the channel, and one always there would take the
// stream's messages from its reader, a thread hand-off and a wake-up each.
void StoreSender::StartingCall() {
  ++in_flight_;
  if (completing_) return;
  if (completer_.joinable()) completer_.join();  // the last one has left its loop
  completing_ = true;
  completer_ = std::thread([this] { CompleteLoop(); });
}

void StoreSender::Start(Call* call) {
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + kStoreTimeout));
  call->Start(*stub_, &cq_);
}

void StoreSender::CompleteLoop() {
  NameThisThread("tlscache-done");
  while (true) {
    void* tag = nullptr;
    bool ok = false;
    switch (cq_.AsyncNext(&tag, &ok, absl::ToChronoTime(absl::Now() + kCompleterIdle))) {
      case grpc::CompletionQueue::SHUTDOWN:
        return;
      case grpc::CompletionQueue::GOT_EVENT:
        Finished(static_cast<Call*>(tag));
        break;
      case grpc::CompletionQueue::TIMEOUT: {
        absl::MutexLock lock(&mu_);
        if (in_flight_ == 0) {
          completing_ = false;
          return;
        }
        break;
      }
    }
  }
}

void StoreSender::Finished(Call* call) {
  (call->status.ok() ? counters_->stores : counters_->store_failures)++;
  absl::Duration backoff;
  std::unique_ptr<Call> again = call->Answered(&backoff);
  delete call;
  absl::MutexLock lock(&mu_);
  --in_flight_;
  if (again != nullptr && !stopping_) retries_.emplace(absl::Now() + backoff, std::move(again));
}

}  // namespace tlscache::client
