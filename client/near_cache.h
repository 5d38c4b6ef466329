// NearCache: a TLS server process's own copy of the sessions its farm pushed to it, so that a
// session made on another node resumes here at local speed (client/session_follower.h fills
// it).
//
//   - Bounded in bytes: each entry costs its key, its session and a fixed overhead
//     (kEntryOverheadBytes, the index and list nodes); an insert that would pass the bound
//     drops the least recently used entries first. An entry larger than the whole bound is
//     not kept.
//   - Exact TTLs: an entry is never returned after the expiry it was given; expired entries
//     are dropped when met and, a few at a time, on every insert.
//   - Session bytes are wiped when an entry is dropped, replaced or cleared.
//
// Thread-safety: all methods are thread-safe (one mutex; every operation is O(1) amortized).
#ifndef TLSCACHE_CLIENT_NEAR_CACHE_H_
#define TLSCACHE_CLIENT_NEAR_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/secret_bytes.h"

namespace tlscache::client {

struct NearCacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t entries = 0;
  uint64_t bytes = 0;      // as accounted against the bound
  uint64_t evictions = 0;  // dropped to make room (not expiry, not withdrawal)
};

class NearCache {
 public:
  // What an entry costs beyond its key and session: the index slot, the list node and the
  // bookkeeping of one entry, rounded up.
  static constexpr size_t kEntryOverheadBytes = 128;

  explicit NearCache(size_t max_bytes, Clock* clock = Clock::Real())
      : max_bytes_(max_bytes), clock_(clock) {}
  ~NearCache() { Clear(); }

  NearCache(const NearCache&) = delete;
  NearCache& operator=(const NearCache&) = delete;

  // Keeps `session` under `key` until `ttl` from now, replacing an entry with that key.
  void Insert(absl::string_view key, SecretBytes session, absl::Duration ttl);
  // A copy of the session under `key` (it becomes the most recently used), or nothing.
  std::optional<SecretBytes> Lookup(absl::string_view key);
  // Drops the entry under `key`, if any.
  void Remove(absl::string_view key);
  // Drops everything.
  void Clear();
  // The keys of every entry that has not expired.
  std::vector<std::string> Keys() const;

  NearCacheStats stats() const;
  size_t max_bytes() const { return max_bytes_; }

 private:
  struct Entry {
    std::string key;
    SecretBytes session;
    absl::Time expiry;
  };
  using List = std::list<Entry>;  // most recently used first

  static size_t Cost(const Entry& entry) {
    return entry.key.size() + entry.session.size() + kEntryOverheadBytes;
  }
  void EraseLocked(List::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_bytes_;
  Clock* const clock_;
  mutable absl::Mutex mu_;
  List lru_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<absl::string_view, List::iterator> index_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t evictions_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tlscache::client

#endif  // TLSCACHE_CLIENT_NEAR_CACHE_H_
