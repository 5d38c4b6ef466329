// TicketKeyService: tlscache.v1.TicketKeys, the farm's session-ticket key rings.
//
// Rings live in the store (server/tickets/ticket_ring.h has their lifecycle). A ring is created
// on the first request for its namespace. The service's rotation thread keeps the rings of the
// namespaces this replica serves: at most `max_namespaces` of them, and with an authorizer only
// namespaces its policy grants by name; the least recently used one without a watch makes room.
// When a kept ring's rotation is due the thread computes the next ring and swaps it in by
// compare-and-set on the version, so of all the replicas due at the same moment exactly one
// rotation lands (the version is the fencing token) and no namespace ever has two rings.
//
// Other replicas learn of a new ring at once: the one that swapped it publishes a notice through
// the store's pub/sub (where replicas share the store), and each replica that keeps the namespace
// re-reads it and pushes it to its watchers. Every kept ring is also re-read, asynchronously,
// every `resync_interval`, in case a notice was lost.
//
// RotateTicketKeys is an operator's act (Authorizer::CheckOperator) and runs on the rotation
// thread too. It never promotes a PENDING key published less than `min_distribution` ago, which
// nodes may not have yet: it waits until the key is that old, or, when the call's deadline comes
// first, answers FAILED_PRECONDITION saying when to retry.
//
// Thread-safety: all public methods are thread-safe; `store` and `clock` outlive the service.
#ifndef TLSCACHE_SERVER_TICKETS_TICKET_KEY_SERVICE_H_
#define TLSCACHE_SERVER_TICKETS_TICKET_KEY_SERVICE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/log.h"
#include "server/security/authorizer.h"
#include "server/store/store.h"
#include "server/tickets/rotation_barrier.h"
#include "server/tickets/ticket_ring.h"
#include "tlscache/v1/ticket_keys.grpc.pb.h"

namespace tlscache::server {

struct TicketKeyOptions {
  RingPolicy policy;
  // How often the rotation thread looks for rings due (from the rings it holds, no store call).
  absl::Duration check_interval = absl::Seconds(1);
  // How often each kept ring is re-read from the store besides the notices of other replicas.
  absl::Duration resync_interval = absl::Seconds(30);
  // The followers' leases, and how long a rotation waits for followers that lag.
  BarrierPolicy barrier;
  // How old a PENDING key must be before a forced rotation promotes it.
  absl::Duration min_distribution = absl::Seconds(3);
  // The namespaces a replica keeps rings for.
  size_t max_namespaces = 1024;
  absl::Duration store_timeout = absl::Seconds(2);
  Clock* clock = Clock::Real();
  // Who may use which namespace; null: every caller may use every namespace.
  const Authorizer* authz = nullptr;
};

class TicketKeyService final : public v1::TicketKeys::CallbackService {
 public:
  TicketKeyService(Store* store, const TicketKeyOptions& options);
  ~TicketKeyService() override;  // stops the thread; calls must be finished before

  grpc::ServerUnaryReactor* GetTicketKeys(grpc::CallbackServerContext* context,
                                          const v1::TicketKeysRequest* request,
                                          v1::TicketKeySet* response) override;
  grpc::ServerWriteReactor<v1::TicketKeySet>* WatchTicketKeys(
      grpc::CallbackServerContext* context, const v1::TicketKeysRequest* request) override;
  grpc::ServerUnaryReactor* RotateTicketKeys(grpc::CallbackServerContext* context,
                                             const v1::TicketKeysRequest* request,
                                             v1::TicketKeySet* response) override;
  grpc::ServerUnaryReactor* ReportTicketKeys(grpc::CallbackServerContext* context,
                                             const v1::TicketKeysReport* request,
                                             v1::TicketKeysReportResponse* response) override;
  grpc::ServerUnaryReactor* ListTicketKeyFollowers(grpc::CallbackServerContext* context,
                                                   const v1::TicketKeysRequest* request,
                                                   v1::TicketKeyFollowers* response) override;

  // Ends, with PERMISSION_DENIED, every watch stream whose identity the authorization in force
  // (just reloaded) no longer grants its namespace.
  void ReauthorizeWatches();

  // Before a server shuts down: ends every watch stream, refuses new ones, and answers the
  // forced rotations still waiting UNAVAILABLE, so that none holds the shutdown.
  void StopWatches();

  // The ring this replica last served or saw for each kept namespace, for metrics.
  struct ServedRing {
    std::string ns;
    uint64_t version = 0;
    int64_t active_since_unix_ms = 0;  // when the ACTIVE key started encrypting
  };
  std::vector<ServedRing> ServedRings() const;

  // The namespaces this replica keeps rings for.
  size_t kept_namespaces() const;

  // What the rotations of the kept rings wait for, for metrics.
  const RotationBarrier& barrier() const { return barrier_; }

 private:
  class Watch;
  using RingDone = absl::AnyInvocable<void(absl::StatusOr<v1::TicketKeySet>) &&>;

  // A namespace whose ring this replica keeps.
  struct Kept {
    absl::Time last_used;
    int watchers = 0;
    absl::Time next_read;                       // the next re-read from the store
    bool reading = false;                       // a re-read is out
    bool recheck = false;                       // a notice came, or a re-read found the ring due
    int64_t next_rotation_unix_ms = INT64_MAX;  // of the ring last seen
    ServedRing served;                          // version 0: no ring seen yet
  };
  // A forced rotation waiting for the rotation thread.
  struct Rotation {
    std::string ns;
    absl::Time not_before;  // when its PENDING key is old enough
    absl::Time deadline;    // the caller's, on options_.clock
    RingDone done;
  };

  // Reads the namespace's ring and rotates it if `force` or due, by compare-and-set; then
  // publishes it to this replica's watchers. Blocking: for the rotation thread only. A forced
  // rotation that finds the PENDING key too young sets `*not_before` and fails.
  absl::StatusOr<v1::TicketKeySet> Refresh(const std::string& ns, bool force,
                                           absl::Time* not_before);
  void ForceRotation(Rotation rotation);
  // Whether the ring may rotate now (RotationBarrier); the error says whom it waits for.
  absl::StatusOr<BarrierVerdict> Judge(const std::string& ns, const v1::TicketKeySet& ring,
                                       absl::Time now);
  // Forgets the followers whose lease ended.
  void ForgetLapsed(const std::string& ns, const BarrierVerdict& verdict);
  // A follower of `ns` reported: a rotation held for it is judged again now.
  void Reconsider(const std::string& ns);
  // Re-reads a kept ring without blocking; publishes it if it changed.
  void Resync(const std::string& ns);
  // Tells the other replicas that `ns` has a new ring.
  void Announce(const std::string& ns);
  // Whether `ns` is kept, making room (or not) for it.
  bool KeepLocked(const std::string& ns) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The namespace's ring, created on first use. Asynchronous; `done` may run on a store thread.
  void FetchRing(const std::string& ns, RingDone done);
  // Stores a new ring in place of version `replaces` (0: none yet, else one that cannot be
  // read back) by compare-and-set, then serves whichever ring won.
  void CreateRing(const std::string& ns, uint64_t replaces, RingDone done);
  // Pushes `ring` to the namespace's watch streams (each skips what it already has).
  void Publish(const std::string& ns, const v1::TicketKeySet& ring);
  void Forget(Watch* watch);
  void Loop();

  Store* const store_;
  const TicketKeyOptions options_;
  RotationBarrier barrier_;
  mutable absl::Mutex mu_;
  std::map<std::string, Kept> kept_ ABSL_GUARDED_BY(mu_);
  std::multimap<std::string, Watch*> watches_ ABSL_GUARDED_BY(mu_);
  std::deque<Rotation> rotations_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;  // StopWatches was called
  bool stop_ ABSL_GUARDED_BY(mu_) = false;      // the rotation thread ends
  absl::CondVar wake_;                          // the rotation thread has work
  LogLimiter not_kept_report_{absl::Minutes(1)};
  std::unique_ptr<Subscription> notices_;
  std::thread loop_;
};

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_TICKETS_TICKET_KEY_SERVICE_H_
