// Store: where the cache service keeps sessions, ticket key rings and each namespace's change
// log. Two implementations with identical semantics: MemoryStore (embedded, one process) and
// RedisStore (shared by every replica).
//
// Contract, for every implementation:
//   - Put stores `session` under `key` for `ttl`, replacing any entry with the same key,
//     unless the key holds a deletion (a tombstone): then nothing is stored and Put answers
//     false. A deleted or consumed session is never stored again while its deletion stands.
//   - Get returns the bytes and the time left, or NotFound once the entry was deleted or has
//     expired. With consume=true the entry is returned and replaced by a tombstone (for the
//     rest of its lifetime) in one atomic step: of any number of concurrent consuming Gets
//     (from any replica), at most one receives it.
//   - Delete replaces the entry by a tombstone that stands for `hold`, or for as long as the
//     entry would have lived if that is longer, and says whether a live entry was there.
//   - Live says whether a live entry (not a tombstone) is under `key`.
//   - Entries of different namespaces never see each other.
//   - A store that cannot answer fails with Unavailable or DeadlineExceeded, never hangs.
//   A store may drop entries and tombstones under memory pressure (least recently used
//   first); a tombstone dropped early lets a late store of that session in again.
//
// The change log (server/sessions/session_feed.h builds the Follow streams on it): each namespace has
// one, shared by every replica on the store.
//   - AppendChanges adds changes to the namespace's log in one atomic step, in their order: a
//     deletion is recorded for its hold, and a put of a session whose deletion the log holds
//     (within that hold) is left out, so the log never shows a session stored again after its
//     deletion, whatever order the writes of different replicas took. The changes kept are
//     numbered consecutively (per log) and sent to every subscriber, in the log's order.
//   - FollowLog delivers the log from now on: first where the log stands (kStart), then every
//     change appended after (kChanges), in order. When the subscription breaks, kLost at
//     once (a store that cannot lose it never says so), and when it comes back, kStart
//     again: what was appended meanwhile was not delivered, which the numbers show. A log the store lost (restarted empty, failed over to a replica without it) has
//     another log ID: its numbers are not comparable with the old one's.
//
// Notices (the ticket key service's "a ring changed") are best effort: PublishNotice sends a
// payload to every SubscribeNotices of the channel on the store (every replica), or loses it.
//
// Every operation completes by running `done` exactly once, either before it returns or later
// on a store thread; `done` must not block. `key` and `session` need to live only until the
// call returns: the store copies what it keeps. Callers validate keys and bounds first
// (common/validation.h); a store checks only what its own limits require.
//
// Thread-safety: every method may be called from any thread at any time.
#ifndef TLSCACHE_SERVER_STORE_STORE_H_
#define TLSCACHE_SERVER_STORE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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

// What Delete did: whether a live entry was there, and how long the tombstone stands.
struct Deletion {
  bool existed = false;
  absl::Duration hold;
};

// A namespace's serialized ticket key ring and the version it was stored as.
struct StoredRing {
  SecretBytes ring;
  uint64_t version = 0;
};

// What a follower of a namespace's ring last reported: the version it holds, and when that
// report stops counting. Not secret.
struct FollowerReport {
  std::string follower;
  uint64_t version = 0;
  int64_t lease_ends_unix_ms = 0;
};

// One change for a namespace's log. `payload` is what subscribers receive (a serialized
// v1.SessionChange, with the session's bytes: secret); the store reads only the other fields.
struct LogChange {
  std::string session_id;
  bool deletion = false;
  absl::Duration hold;  // a deletion: how long later puts of the session are left out
  SecretBytes payload;
};

// One change as a subscriber receives it.
struct LogEntry {
  std::string session_id;
  SecretBytes payload;
};

struct LogEvent {
  enum class Kind {
    // The subscription follows the log, which stands at `seq` of `log_id` (an empty log_id:
    // the store could not say); nothing from before is delivered.
    kStart,
    // `entries` are the changes numbered seq, seq+1, ... of `log_id`.
    kChanges,
    // The subscription broke (the connection failed or went silent): nothing is delivered
    // until the next kStart.
    kLost,
  };
  Kind kind = Kind::kStart;
  std::string log_id;
  uint64_t seq = 0;
  std::vector<LogEntry> entries;
};

// What a store can tell about itself, for metrics; what a store does not have stays unset.
struct StoreStats {
  std::optional<uint64_t> entries;  // memory store
  std::optional<uint64_t> bytes;
  std::optional<uint64_t> redis_connects;   // Redis store: connections opened, reconnects included
  std::optional<uint64_t> redis_errors;     // failed connects; connections dropped after an error
  std::optional<uint64_t> redis_redirects;  // Redis Cluster: MOVED and ASK replies followed
  // Redis with replicas: deletions and consuming lookups failed because no replica confirmed
  // them in time (WAIT)
  std::optional<uint64_t> redis_unreplicated;
  std::optional<uint64_t> open_failures;  // sealed store: values that did not open
  // Redis (standalone, Sentinel): what the master said at its last check (INFO).
  std::optional<uint64_t> redis_master_replicas;       // connected
  std::optional<uint64_t> redis_master_good_replicas;  // within min-replicas-max-lag
  std::optional<uint64_t> redis_evicted_keys;          // since the master started
  std::optional<uint64_t> redis_aof_ok;                // 1: the last AOF write and rewrite ok
  std::optional<uint64_t> redis_used_memory;
  std::optional<uint64_t> redis_maxmemory;
  // Sentinel: configured, naming the majority's master, and the master's changes seen.
  std::optional<uint64_t> redis_sentinels;
  std::optional<uint64_t> redis_sentinels_agreeing;
  std::optional<uint64_t> redis_master_changes;
};

using PutDone = absl::AnyInvocable<void(absl::StatusOr<bool>) &&>;  // stored
using GetDone = absl::AnyInvocable<void(absl::StatusOr<StoreEntry>) &&>;
using DeleteDone = absl::AnyInvocable<void(absl::StatusOr<Deletion>) &&>;
using LiveDone = absl::AnyInvocable<void(absl::StatusOr<bool>) &&>;
using GetRingDone = absl::AnyInvocable<void(absl::StatusOr<StoredRing>) &&>;
using SwapRingDone = absl::AnyInvocable<void(absl::StatusOr<bool>) &&>;
using StatusDone = absl::AnyInvocable<void(absl::Status) &&>;
using FollowersDone = absl::AnyInvocable<void(absl::StatusOr<std::vector<FollowerReport>>) &&>;
// Called in the log's order, one event at a time, on a store thread; must not block long.
using LogHandler = std::function<void(LogEvent event)>;
using NoticeHandler = std::function<void(absl::string_view payload)>;

// Ends a subscription when destroyed; the handler is not called after that returns.
class Subscription {
 public:
  virtual ~Subscription() = default;
};

class Store {
 public:
  virtual ~Store() = default;

  // `deadline` is the caller's: an operation not answered by then fails with
  // DeadlineExceeded (a store may fail it sooner, at its own timeout).
  virtual void Put(const StoreKey& key, absl::string_view session, absl::Duration ttl,
                   absl::Time deadline, PutDone done) = 0;
  virtual void Get(const StoreKey& key, bool consume, absl::Time deadline, GetDone done) = 0;
  virtual void Delete(const StoreKey& key, absl::Duration hold, absl::Time deadline,
                      DeleteDone done) = 0;
  virtual void Live(const StoreKey& key, absl::Time deadline, LiveDone done) = 0;

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

  // The followers of a namespace's ring (server/tickets/ticket_key_service.h), shared by every
  // replica. ReportFollower replaces the follower's report; `lease_ends_unix_ms` 0 removes it.
  // ForgetFollower removes it only if it is still `stale` (a report that came meanwhile
  // stays). ListFollowers returns every report, those whose lease ended included, at most
  // kMaxFollowers of them.
  static constexpr size_t kMaxFollowers = 4096;
  virtual void ReportFollower(absl::string_view ns, const FollowerReport& report,
                              absl::Time deadline, StatusDone done) = 0;
  virtual void ForgetFollower(absl::string_view ns, const FollowerReport& stale,
                              absl::Time deadline, StatusDone done) = 0;
  virtual void ListFollowers(absl::string_view ns, absl::Time deadline, FollowersDone done) = 0;

  // The change log (see above).
  virtual void AppendChanges(absl::string_view ns, std::vector<LogChange> changes,
                             absl::Time deadline, StatusDone done) = 0;
  virtual std::unique_ptr<Subscription> FollowLog(absl::string_view ns, LogHandler handler) = 0;

  // Notices (see above); `channel` is [A-Za-z0-9._@-]+.
  virtual void PublishNotice(absl::string_view channel, absl::string_view payload,
                             absl::Time deadline, StatusDone done) = 0;
  virtual std::unique_ptr<Subscription> SubscribeNotices(absl::string_view channel,
                                                         NoticeHandler handler) = 0;

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
