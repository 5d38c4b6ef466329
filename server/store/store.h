// Store: where the cache service keeps sessions. Two implementations with identical
// semantics: MemoryStore (embedded, one process) and RedisStore (shared by every replica).
//
// Contract, for every implementation:
//   - Put stores `session` under `key` for `ttl`, replacing any entry with the same key.
//   - Get returns the bytes and the time left, or NotFound once the entry was deleted or has
//     expired. With consume=true the entry is returned and deleted in one atomic step: of any
//     number of concurrent consuming Gets (from any replica), at most one receives it.
//   - Delete reports whether the entry existed.
//   - Entries of different namespaces never see each other.
//   - A store that cannot answer fails with Unavailable or DeadlineExceeded, never hangs.
//
// Every operation completes by running `done` exactly once, either before it returns or later
// on a store thread; `done` must not block. `key` and `session` need to live only until the
// call returns: the store copies what it keeps. Callers validate keys and bounds first
// (server/request_validation.h); a store checks only what its own limits require.
//
// Thread-safety: every method may be called from any thread at any time.
#ifndef TLSCACHE_SERVER_STORE_STORE_H_
#define TLSCACHE_SERVER_STORE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/secret_bytes.h"

namespace tlscache::server {

struct StoreKey {
  absl::string_view ns;
  absl::string_view session_id;
};

struct StoreEntry {
  SecretBytes session;
  absl::Duration ttl_remaining;
};

// A namespace's serialized ticket key ring and the version it was stored as.
struct StoredRing {
  SecretBytes ring;
  uint64_t version = 0;
};

// What a store can tell about itself, for metrics; what a store does not have stays unset.
struct StoreStats {
  std::optional<uint64_t> entries;  // memory store
  std::optional<uint64_t> bytes;
  std::optional<uint64_t> redis_connects;   // Redis store: connections opened, reconnects included
  std::optional<uint64_t> redis_errors;     // failed connects; connections dropped after an error
  std::optional<uint64_t> redis_redirects;  // Redis Cluster: MOVED and ASK replies followed
  std::optional<uint64_t> open_failures;    // sealed store: values that did not open
};

using PutDone = absl::AnyInvocable<void(absl::Status) &&>;
using GetDone = absl::AnyInvocable<void(absl::StatusOr<StoreEntry>) &&>;
using DeleteDone = absl::AnyInvocable<void(absl::StatusOr<bool>) &&>;
using GetRingDone = absl::AnyInvocable<void(absl::StatusOr<StoredRing>) &&>;
using SwapRingDone = absl::AnyInvocable<void(absl::StatusOr<bool>) &&>;
// Receives each batch of changes published for a namespace (a serialized v1.FeedBatch).
using ChangesHandler = std::function<void(absl::string_view ns, SecretBytes batch)>;

// Ends a subscription when destroyed; the handler is not called after that returns.
class ChangesSubscription {
 public:
  virtual ~ChangesSubscription() = default;
};

class Store {
 public:
  virtual ~Store() = default;

  // `deadline` is the caller's: an operation not answered by then fails with
  // DeadlineExceeded (a store may fail it sooner, at its own timeout).
  virtual void Put(const StoreKey& key, absl::string_view session, absl::Duration ttl,
                   absl::Time deadline, PutDone done) = 0;
  virtual void Get(const StoreKey& key, bool consume, absl::Time deadline, GetDone done) = 0;
  virtual void Delete(const StoreKey& key, absl::Time deadline, DeleteDone done) = 0;

  // Ticket key rings, one per namespace, apart from sessions and without expiry. A ring is
  // only ever replaced by compare-and-set on its version, so replicas that rotate at the same
  // moment cannot leave two rings: exactly one swap succeeds.
  //
  // GetRing: the stored ring, or NotFound when the namespace has none yet.
  virtual void GetRing(absl::string_view ns, absl::Time deadline, GetRingDone done) = 0;
  // Stores `ring` as `version` if the stored version is `expected` (0: no ring yet); reports
  // whether it did.
  virtual void SwapRing(absl::string_view ns, uint64_t expected, uint64_t version,
                        absl::string_view ring, absl::Time deadline, SwapRingDone done) = 0;

  // Changes across the replicas that share this store (server/session_feed.h). A store that
  // no other replica can share (memory) shares nothing: SharesChanges() is false and the
  // rest is never called. Otherwise PublishChanges sends one replica's `batch` of `ns` to
  // every replica subscribed to `ns` (itself included) and completes `done` once sent, and
  // SubscribeChanges delivers every batch published for `ns` until the subscription is
  // dropped, resubscribing after a failure. Best effort both ways: a batch may be lost (its
  // followers look the sessions up instead), never altered. `batch` holds session bytes.
  virtual bool SharesChanges() const { return false; }
  virtual void PublishChanges(absl::string_view ns, absl::string_view batch, absl::Time deadline,
                              PutDone done) {
    std::move(done)(absl::UnimplementedError("this store shares no changes"));
  }
  virtual std::unique_ptr<ChangesSubscription> SubscribeChanges(absl::string_view ns,
                                                                ChangesHandler handler) {
    return nullptr;
  }

  // Ok when the store is answering now; otherwise why not. Cheap and non-blocking: it reports
  // the store's current view and sends nothing.
  virtual absl::Status Health() = 0;

  // For logs, e.g. "memory (256 MiB)" or "redis 127.0.0.1:6379/0". Never holds credentials.
  virtual std::string Describe() const = 0;

  // Fills in what this store (and any store beneath it) counts. Cheap; any thread.
  virtual void AddStats(StoreStats* stats) const {}
};

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_STORE_STORE_H_
