// TicketKeyFollower: a TLS server process's copy of its namespace's farm ticket key ring.
//
// A background thread follows the ring through WatchTicketKeys, and while the stream is down
// asks GetTicketKeys every `poll_interval`, so a node keeps up with rotations even when the
// stream breaks. Handshakes read the current snapshot without blocking; until the first ring
// arrives there is none (and the plugin issues no ticket rather than one under a local key).
// Key bytes are wiped when a snapshot is dropped. Given a name to report as, it reports each
// ring it takes to the service (client/ticket_key_reporter.h), so that no rotation makes a key
// ACTIVE before this process can decrypt with it.
//
// Thread-safety: Current() may be called from any thread.
#ifndef TLSCACHE_CLIENT_TICKET_KEY_FOLLOWER_H_
#define TLSCACHE_CLIENT_TICKET_KEY_FOLLOWER_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "client/ticket_key_reporter.h"
#include "common/ticket_key.h"

namespace tlscache::client {

// One version of a ring, as ValidateRing (common/ticket_key.h) accepted it. Immutable once
// published; wiped when the last holder drops it.
struct TicketKeySnapshot {
  ~TicketKeySnapshot();
  uint64_t version = 0;
  std::vector<TicketKeyRecord> keys;
  // Per key: after this it no longer decrypts (Unix ms; 0: not set, PENDING or ACTIVE).
  std::vector<int64_t> not_after_unix_ms;
  size_t active = 0;  // the index of the key that encrypts; the others only decrypt

  const TicketKeyRecord* Active() const { return &keys[active]; }
  // The key called `name`, compared in constant time, if it still decrypts at `now`; null if
  // the ring has none, or its validity ended (a process cut off from the service keeps an old
  // ring, and must not keep its retired keys working past their end).
  const TicketKeyRecord* Find(const uint8_t name[kTicketKeyNameBytes], absl::Time now) const;
};

class TicketKeyFollower {
 public:
  // `report_as`: the follower's name in its reports; empty: it does not report.
  TicketKeyFollower(std::shared_ptr<grpc::Channel> channel, std::string ns,
                    std::string report_as = "", absl::Duration poll_interval = absl::Seconds(1));
  ~TicketKeyFollower();  // Stop()

  // Ends the watch and joins the thread; Current() keeps answering with the last ring. A
  // reporting follower tells the service it leaves. Idempotent; at exit, with handshakes still
  // running.
  void Stop();

  std::shared_ptr<const TicketKeySnapshot> Current() const;
  // Current(), waiting up to `timeout` for a first ring if there is none yet.
  std::shared_ptr<const TicketKeySnapshot> AwaitFirst(absl::Duration timeout) const;
  // A ring newer than `version`, waiting up to `timeout` for one; null if none came.
  std::shared_ptr<const TicketKeySnapshot> AwaitNewer(uint64_t version,
                                                      absl::Duration timeout) const;

 private:
  void Run();
  void Accept(std::shared_ptr<const TicketKeySnapshot> snapshot);

  const std::shared_ptr<grpc::Channel> channel_;
  const std::string ns_;
  const absl::Duration poll_interval_;
  std::unique_ptr<TicketKeyReporter> reporter_;  // null: not reporting
  mutable absl::Mutex mu_;
  std::shared_ptr<const TicketKeySnapshot> current_ ABSL_GUARDED_BY(mu_);
  grpc::ClientContext* watch_ ABSL_GUARDED_BY(mu_) = nullptr;  // to cancel on stop
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::CondVar stop_cv_;
  mutable absl::CondVar ring_cv_;  // a newer ring arrived
  absl::Mutex join_mu_;             // Stop() from two threads joins once
  std::thread thread_;
};

}  // namespace tlscache::client

#endif  // TLSCACHE_CLIENT_TICKET_KEY_FOLLOWER_H_
