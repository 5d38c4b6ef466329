// NodeCache: the near cache of one node, in memory shared by every process of a pre-fork
// server (nginx workers, Apache children), the way nginx's own `ssl_session_cache shared:`
// zone is: made before the server forks, so that a session one worker stores is found by its
// siblings at once, and a session the farm pushes to the node is written there once.
//
//   - Bounded in bytes: the whole cache, index included, is one mapping of the size asked for
//     (client/shared_memory.h: no name, out of core dumps). It is split in shards; each keeps
//     its sessions in a ring, and a store that needs room drops the oldest sessions stored
//     first. A session larger than half a shard's ring is not kept.
//   - Exact TTLs: an entry is never returned after the expiry it was given.
//   - Session bytes are wiped when an entry is dropped, replaced, overwritten or cleared.
//   - A process may die at any instruction, holding a shard's lock: the next process to take
//     that lock finds its holder dead and empties the shard (what it guarded may be
//     half-written); the other shards, and every process, go on.
//   - Keys are at most kMaxKeyBytes; a namespace's keys start with its one-byte prefix
//     (client/node.h: NodeFeed), which Keys() filters on.
//
// Thread-safety: all methods are for any thread of any process that maps the cache; each
// operation takes one shard's lock for a copy's time (O(1): a bucket of kWays slots).
#ifndef TLSCACHE_CLIENT_NODE_CACHE_H_
#define TLSCACHE_CLIENT_NODE_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/shared_memory.h"
#include "common/clock.h"
#include "common/secret_bytes.h"

namespace tlscache::client {

struct NearCacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t entries = 0;
  uint64_t bytes = 0;      // of the entries, as stored in the rings
  uint64_t evictions = 0;  // dropped to make room (not expiry, not withdrawal)
  uint64_t repairs = 0;    // shards emptied because a process died holding their lock
};

class NodeCache {
 public:
  static constexpr size_t kMaxKeyBytes = 40;
  // What an entry costs beyond its key and session (its header in the ring), before rounding
  // up to 8 bytes.
  static constexpr size_t kEntryOverheadBytes = 40;
  static constexpr int kWays = 8;

  // A cache of `bytes` in all (at least 64 KiB), in a new shared mapping.
  static absl::StatusOr<std::unique_ptr<NodeCache>> Create(size_t bytes,
                                                           Clock* clock = Clock::Real());

  NodeCache(const NodeCache&) = delete;
  NodeCache& operator=(const NodeCache&) = delete;

  // Keeps `session` under `key` until `ttl` from now, replacing an entry with that key.
  void Insert(absl::string_view key, absl::string_view session, absl::Duration ttl);
  // A copy of the session under `key`, or nothing.
  std::optional<SecretBytes> Lookup(absl::string_view key);
  // Drops the entry under `key`, if any.
  void Remove(absl::string_view key);
  // The keys (prefix taken off) of every entry under `prefix` that has not expired.
  std::vector<std::string> Keys(absl::string_view prefix) const;

  NearCacheStats stats() const;
  size_t max_bytes() const { return mapping_.size(); }

 private:
  struct Shard;
  struct Record;
  struct Slot;

  friend class NodeCacheTestPeer;
  NodeCache(SharedMapping mapping, Clock* clock);
  Shard& ShardOf(uint64_t hash) const;
  // Locks `shard`, emptying it first when a process died holding it.
  void Lock(Shard& shard) const;

  SharedMapping mapping_;
  Clock* const clock_;
  size_t shards_ = 0;
  size_t shard_bytes_ = 0;
};

}  // namespace tlscache::client

#endif  // TLSCACHE_CLIENT_NODE_CACHE_H_
