// StoreSender: a process's unary Puts and Deletes (the near cache off, or a namespace's
// stream down), sent in the background so that a handshake never waits for one.
//
//   - A store starts as an asynchronous call at once while fewer than `max_in_flight` are
//     unanswered (starting one does not wait for the network: the session is on its way
//     before the handshake goes on); otherwise it waits in a bounded queue that the sender's
//     thread drains. When the queue is full the store is dropped and counted; deletions get
//     twice the room.
//   - A Delete is sent again while it fails (with a back-off, doubling up to 5 s) until its
//     hold has passed: the farm must not keep a session a node dropped.
//   - The completions are read by a thread that runs only while calls are in flight: one
//     waiting in gRPC always would poll the channel and take the Follow streams' messages
//     from their readers.
//   - The sender's thread also runs the process's periodic chores (`tick`, every
//     `tick_interval`) after `start`: they need a thread that is never blocked in a write.
//
// Thread-safety: thread-safe. `stub` and `counters` outlive it.
#ifndef TLSCACHE_CLIENT_STORE_SENDER_H_
#define TLSCACHE_CLIENT_STORE_SENDER_H_

#include <grpcpp/completion_queue.h>

#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/acknowledgement.h"
#include "client/client_stats.h"
#include "tlscache/v1/session_cache.grpc.pb.h"

namespace tlscache::client {

class StoreSender;

struct StoreSenderOptions {
  size_t queue_capacity = 4096;
  int max_in_flight = 64;
  // Run on the sender's thread: `start` once, first (it may ask the sender whether it is
  // stopping, to give up); `tick` every `tick_interval` after it.
  absl::AnyInvocable<void(const StoreSender& sender)> start;
  absl::AnyInvocable<void(absl::Time now)> tick;
  absl::Duration tick_interval = absl::Milliseconds(250);
};

class StoreSender {
 public:
  StoreSender(v1::SessionCache::Stub* stub, StoreSenderOptions options, ClientCounters* counters);
  // Stops (see Stop).
  ~StoreSender();

  StoreSender(const StoreSender&) = delete;
  StoreSender& operator=(const StoreSender&) = delete;

  // `ack` (may be null) completes with whether the cache stored it; the session is wiped
  // once sent.
  void Put(v1::PutRequest put, std::shared_ptr<Acknowledgement> ack);
  // Sent, and sent again while it fails, until acknowledged or its hold passed.
  void Delete(v1::DeleteRequest removal);

  // Waits until everything queued so far was answered (or given up); false at `deadline`.
  bool Flush(absl::Time deadline);
  // Whether Stop began: the chores of `start` give up.
  bool stopping() const;
  // Drops (and counts) what is queued, joins the sender's thread, waits for the calls in
  // flight (each ends by its 1 s deadline) and joins the completion thread. Idempotent.
  void Stop();

 private:
  class Call;
  class PutCall;
  class DeleteCall;

  void Enqueue(std::unique_ptr<Call> call);
  void SendLoop();
  void CompleteLoop();
  void Finished(Call* call);
  // One more call in flight, and a thread to complete it.
  void StartingCall() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Start(Call* call);

  v1::SessionCache::Stub* const stub_;
  StoreSenderOptions options_;
  ClientCounters* const counters_;
  grpc::CompletionQueue cq_;

  mutable absl::Mutex mu_;
  std::deque<std::unique_ptr<Call>> queue_ ABSL_GUARDED_BY(mu_);
  // Deletions due again, by when.
  std::multimap<absl::Time, std::unique_ptr<Call>> retries_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool completing_ ABSL_GUARDED_BY(mu_) = false;  // completer_ is in its loop
  std::thread completer_ ABSL_GUARDED_BY(mu_);
  std::thread sender_;
  absl::Mutex join_mu_;  // Stop() from two threads joins once
};

}  // namespace tlscache::client

#endif  // TLSCACHE_CLIENT_STORE_SENDER_H_
