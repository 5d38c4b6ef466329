// MemoryStore: the embedded store, for a single cache replica (and for tests).
//
// Sharded by key hash; each shard is an LRU list under its own mutex, bounded in bytes (an
// entry costs its key, its session and a fixed overhead). A Put that would exceed a shard's
// budget evicts that shard's least recently used entries. Expiry is exact: an entry is gone
// the instant the clock reaches its expiry, whether or not it was evicted yet. Session bytes
// are wiped when an entry is replaced, deleted, consumed, expired or evicted. A deletion is an
// entry without a session (a tombstone), charged its key and the overhead. The change logs are
// kept in the process (LocalLog), as are notices.
//
// Thread-safety: all methods are thread-safe; operations complete before they return.
#ifndef TLSCACHE_SERVER_STORE_MEMORY_STORE_H_
#define TLSCACHE_SERVER_STORE_MEMORY_STORE_H_

#include <cstddef>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "server/store/local_log.h"
#include "server/store/store.h"

namespace tlscache::server {

struct MemoryStoreOptions {
  // Bound on the bytes of all entries, overhead included, split evenly across shards.
  size_t max_bytes = size_t{256} << 20;
  int num_shards = 16;
  // The largest session the store must be able to hold; Create fails if a shard could not.
  size_t max_session_bytes = 16 << 10;
  Clock* clock = Clock::Real();
};

class MemoryStore final : public Store {
 public:
  // Bookkeeping bytes charged per entry on top of its key and session.
  static constexpr size_t kEntryOverhead = 128;

  static absl::StatusOr<std::unique_ptr<MemoryStore>> Create(const MemoryStoreOptions& options);

  void Put(const StoreKey& key, absl::string_view session, absl::Duration ttl, absl::Time deadline,
           PutDone done) override;
  void Get(const StoreKey& key, bool consume, absl::Time deadline, GetDone done) override;
  void Delete(const StoreKey& key, absl::Duration hold, absl::Time deadline,
              DeleteDone done) override;
  void Live(const StoreKey& key, absl::Time deadline, LiveDone done) override;
  void GetRing(absl::string_view ns, absl::Time deadline, GetRingDone done) override;
  void SwapRing(absl::string_view ns, uint64_t expected, uint64_t version, absl::string_view ring,
                absl::Time deadline, SwapRingDone done) override;
  void ReportFollower(absl::string_view ns, const FollowerReport& report, absl::Time deadline,
                      StatusDone done) override;
  void ForgetFollower(absl::string_view ns, const FollowerReport& stale, absl::Time deadline,
                      StatusDone done) override;
  void ListFollowers(absl::string_view ns, absl::Time deadline, FollowersDone done) override;
  void AppendChanges(absl::string_view ns, std::vector<LogChange> changes, absl::Time deadline,
                     StatusDone done) override;
  std::unique_ptr<Subscription> FollowLog(absl::string_view ns, LogHandler handler) override;
  void PublishNotice(absl::string_view channel, absl::string_view payload, absl::Time deadline,
                     StatusDone done) override;
  std::unique_ptr<Subscription> SubscribeNotices(absl::string_view channel,
                                                 NoticeHandler handler) override;
  absl::Status Health() override { return absl::OkStatus(); }
  std::string Describe() const override;
  void AddStats(StoreStats* stats) const override;

  // Live entries and their charged bytes (expired entries not yet reclaimed count too).
  size_t entries() const;
  size_t bytes() const;

 private:
  struct Entry {
    std::string key;
    SecretBytes session;  // empty: a tombstone
    absl::Time expiry;
    size_t cost;
  };
  using LruList = std::list<Entry>;  // front: most recently used

  struct Shard {
    mutable absl::Mutex mu;
    LruList lru ABSL_GUARDED_BY(mu);
    // Keys point into the Entry they index; list nodes never move.
    absl::flat_hash_map<absl::string_view, LruList::iterator> index ABSL_GUARDED_BY(mu);
    size_t bytes ABSL_GUARDED_BY(mu) = 0;
  };

  explicit MemoryStore(const MemoryStoreOptions& options);

  static std::string FlatKey(const StoreKey& key);
  Shard& ShardFor(absl::string_view flat_key);
  static void EraseLocked(Shard& shard, LruList::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  // Makes room for `cost` more bytes and inserts the entry as the most recently used.
  void InsertLocked(Shard& shard, Entry entry, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  const MemoryStoreOptions options_;
  const size_t shard_budget_;
  std::vector<std::unique_ptr<Shard>> shards_;
  absl::Mutex rings_mu_;
  absl::flat_hash_map<std::string, StoredRing> rings_ ABSL_GUARDED_BY(rings_mu_);
  // Namespace -> follower -> its report.
  absl::flat_hash_map<std::string, std::map<std::string, FollowerReport>> followers_
      ABSL_GUARDED_BY(rings_mu_);
  LocalLog log_;
};

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_STORE_MEMORY_STORE_H_
