// TicketKeyService: tlscache.v1.TicketKeys, the farm's session-ticket key rings.
//
// Rings live in the store (server/ticket_ring.h has their lifecycle). A ring is created on
// the first request for its namespace. A background loop re-reads the ring of every
// namespace this replica has served, every `check_interval`: when a rotation is due it
// computes the next ring and swaps it in by compare-and-set on the version, so of all the
// replicas due at the same moment exactly one rotation lands (the version is the fencing
// token) and no namespace ever has two rings. Whoever rotated, every replica pushes the new
// ring to its watchers on its next check.
//
// Thread-safety: all public methods are thread-safe; `store` and `clock` outlive the service.
#ifndef TLSCACHE_SERVER_TICKET_KEY_SERVICE_H_
#define TLSCACHE_SERVER_TICKET_KEY_SERVICE_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "server/authorizer.h"
#include "server/store.h"
#include "server/ticket_ring.h"
#include "tlscache/v1/ticket_keys.grpc.pb.h"

namespace tlscache::server {

struct TicketKeyOptions {
  RingPolicy policy;
  // How often each served namespace's ring is re-read (for rotations, and for changes made by
  // other replicas).
  absl::Duration check_interval = absl::Seconds(1);
  absl::Duration store_timeout = absl::Seconds(2);
  Clock* clock = Clock::Real();
  // Who may use which namespace; null: every caller may use every namespace.
  const Authorizer* authz = nullptr;
};

class TicketKeyService final : public v1::TicketKeys::CallbackService {
 public:
  TicketKeyService(Store* store, const TicketKeyOptions& options);
  ~TicketKeyService() override;  // stops the loop; watch streams must be finished before

  grpc::ServerUnaryReactor* GetTicketKeys(grpc::CallbackServerContext* context,
                                          const v1::TicketKeysRequest* request,
                                          v1::TicketKeySet* response) override;
  grpc::ServerWriteReactor<v1::TicketKeySet>* WatchTicketKeys(
      grpc::CallbackServerContext* context, const v1::TicketKeysRequest* request) override;
  grpc::ServerUnaryReactor* RotateTicketKeys(grpc::CallbackServerContext* context,
                                             const v1::TicketKeysRequest* request,
                                             v1::TicketKeySet* response) override;

  // Ends every watch stream (before a server shuts down).
  void StopWatches();

  // Re-reads every served ring now and rotates what is due. The loop calls it; tests too.
  void CheckRings();

  // The ring this replica last served or saw for each namespace, for metrics.
  struct ServedRing {
    std::string ns;
    uint64_t version = 0;
    int64_t active_since_unix_ms = 0;  // when the ACTIVE key started encrypting
  };
  std::vector<ServedRing> ServedRings() const;

  // Reads the namespace's ring and rotates it if `force` or due, by compare-and-set; then
  // publishes it to this replica's watchers. Blocking: for the loop and an operator's rotation.
  absl::StatusOr<v1::TicketKeySet> Refresh(const std::string& ns, bool force);

 private:
  class Watch;
  using RingDone = absl::AnyInvocable<void(absl::StatusOr<v1::TicketKeySet>) &&>;

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
  mutable absl::Mutex mu_;
  std::set<std::string> namespaces_ ABSL_GUARDED_BY(mu_);
  std::multimap<std::string, Watch*> watches_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, ServedRing> served_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::thread loop_;
};

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_TICKET_KEY_SERVICE_H_
