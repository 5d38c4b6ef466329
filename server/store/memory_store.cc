#include "server/store/memory_store.h"

#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tlscache::server {

absl::StatusOr<std::unique_ptr<MemoryStore>> MemoryStore::Create(
    const MemoryStoreOptions& options) {
  if (options.num_shards < 1) {
    return absl::InvalidArgumentError("memory store: num_shards must be at least 1");
  }
  if (options.clock == nullptr) {
    return absl::InvalidArgumentError("memory store: no clock");
  }
  // The largest entry: a 64-byte namespace, a separator, a 32-byte session ID, the session.
  const size_t largest_entry = 64 + 1 + 32 + options.max_session_bytes + kEntryOverhead;
  if (options.max_bytes / options.num_shards < largest_entry) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "memory store: max bytes %d is too small: each of its %d shards must hold at least "
        "one entry of %d bytes (a session of the maximum size)",
        options.max_bytes, options.num_shards, largest_entry));
  }
  return std::unique_ptr<MemoryStore>(new MemoryStore(options));
}

MemoryStore::MemoryStore(const MemoryStoreOptions& options)
    : options_(options),
      shard_budget_(options.max_bytes / options.num_shards),
      log_(options.clock) {
  shards_.reserve(options.num_shards);
  for (int i = 0; i < options.num_shards; ++i) shards_.push_back(std::make_unique<Shard>());
}

std::string MemoryStore::FlatKey(const StoreKey& key) {
  // Namespaces cannot contain ':', so the split is unambiguous.
  return absl::StrCat(key.ns, ":", key.session_id);
}

MemoryStore::Shard& MemoryStore::ShardFor(absl::string_view flat_key) {
  return *shards_[absl::HashOf(flat_key) % shards_.size()];
}

void MemoryStore::EraseLocked(Shard& shard, LruList::iterator it) {
  shard.index.erase(absl::string_view(it->key));
  shard.bytes -= it->cost;
  shard.lru.erase(it);  // ~SecretBytes wipes the session
}

void MemoryStore::InsertLocked(Shard& shard, Entry entry, absl::Time now) {
  // Evict least recently used entries until the new one fits; then reclaim a few expired
  // ones from the tail, so that idle expired entries do not hold memory until evicted.
  while (!shard.lru.empty() && shard.bytes + entry.cost > shard_budget_) {
    EraseLocked(shard, std::prev(shard.lru.end()));
  }
  for (int i = 0; i < 2 && !shard.lru.empty() && shard.lru.back().expiry <= now; ++i) {
    EraseLocked(shard, std::prev(shard.lru.end()));
  }
  shard.bytes += entry.cost;
  shard.lru.push_front(std::move(entry));
  shard.index.emplace(absl::string_view(shard.lru.front().key), shard.lru.begin());
}

void MemoryStore::Put(const StoreKey& key, absl::string_view session, absl::Duration ttl,
                      absl::Time /*deadline*/, PutDone done) {
  std::string flat = FlatKey(key);
  const size_t cost = flat.size() + session.size() + kEntryOverhead;
  Shard& shard = ShardFor(flat);
  const absl::Time now = options_.clock->Now();
  bool stored = true;
  {
    absl::MutexLock lock(&shard.mu);
    auto found = shard.index.find(absl::string_view(flat));
    if (found != shard.index.end() && found->second->session.empty() &&
        found->second->expiry > now) {
      stored = false;  // deleted: not stored again
    } else {
      if (found != shard.index.end()) EraseLocked(shard, found->second);
      InsertLocked(shard, Entry{std::move(flat), SecretBytes(session), now + ttl, cost}, now);
    }
  }
  std::move(done)(stored);
}

void MemoryStore::Get(const StoreKey& key, bool consume, absl::Time /*deadline*/, GetDone done) {
  const std::string flat = FlatKey(key);
  Shard& shard = ShardFor(flat);
  const absl::Time now = options_.clock->Now();
  absl::StatusOr<StoreEntry> result = absl::NotFoundError("no such session");
  {
    absl::MutexLock lock(&shard.mu);
    auto found = shard.index.find(absl::string_view(flat));
    if (found != shard.index.end()) {
      LruList::iterator it = found->second;
      if (it->expiry <= now) {
        EraseLocked(shard, it);
      } else if (it->session.empty()) {
        // a tombstone: deleted
      } else if (consume) {
        // The session goes; a tombstone stands for the rest of its lifetime.
        result = StoreEntry{std::move(it->session), it->expiry - now};
        it->session = SecretBytes();
        shard.bytes -= it->cost;
        it->cost = it->key.size() + kEntryOverhead;
        shard.bytes += it->cost;
      } else {
        result = StoreEntry{it->session.Clone(), it->expiry - now};
        shard.lru.splice(shard.lru.begin(), shard.lru, it);
      }
    }
  }
  std::move(done)(std::move(result));
}

void MemoryStore::Delete(const StoreKey& key, absl::Duration hold, absl::Time /*deadline*/,
                         DeleteDone done) {
  std::string flat = FlatKey(key);
  Shard& shard = ShardFor(flat);
  const absl::Time now = options_.clock->Now();
  Deletion deletion;
  absl::Time until = now + hold;
  {
    absl::MutexLock lock(&shard.mu);
    if (auto found = shard.index.find(absl::string_view(flat)); found != shard.index.end()) {
      if (found->second->expiry > now) {
        deletion.existed = !found->second->session.empty();
        until = std::max(until, found->second->expiry);
      }
      EraseLocked(shard, found->second);
    }
    const size_t cost = flat.size() + kEntryOverhead;
    InsertLocked(shard, Entry{std::move(flat), SecretBytes(), until, cost}, now);
  }
  deletion.hold = until - now;
  std::move(done)(deletion);
}

void MemoryStore::Live(const StoreKey& key, absl::Time /*deadline*/, LiveDone done) {
  const std::string flat = FlatKey(key);
  Shard& shard = ShardFor(flat);
  const absl::Time now = options_.clock->Now();
  bool live = false;
  {
    absl::MutexLock lock(&shard.mu);
    if (auto found = shard.index.find(absl::string_view(flat)); found != shard.index.end()) {
      live = !found->second->session.empty() && found->second->expiry > now;
    }
  }
  std::move(done)(live);
}

void MemoryStore::AppendChanges(absl::string_view ns, std::vector<LogChange> changes,
                                absl::Time /*deadline*/, StatusDone done) {
  log_.Append(ns, std::move(changes));
  std::move(done)(absl::OkStatus());
}

std::unique_ptr<Subscription> MemoryStore::FollowLog(absl::string_view ns, LogHandler handler) {
  return log_.Follow(ns, std::move(handler));
}

void MemoryStore::PublishNotice(absl::string_view channel, absl::string_view payload,
                                absl::Time /*deadline*/, StatusDone done) {
  log_.Notify(channel, payload);
  std::move(done)(absl::OkStatus());
}

std::unique_ptr<Subscription> MemoryStore::SubscribeNotices(absl::string_view channel,
                                                            NoticeHandler handler) {
  return log_.SubscribeNotices(channel, std::move(handler));
}

void MemoryStore::GetRing(absl::string_view ns, absl::Time /*deadline*/, GetRingDone done) {
  absl::StatusOr<StoredRing> result = absl::NotFoundError("no ticket key ring");
  {
    absl::MutexLock lock(&rings_mu_);
    if (auto found = rings_.find(ns); found != rings_.end()) {
      result = StoredRing{found->second.ring.Clone(), found->second.version};
    }
  }
  std::move(done)(std::move(result));
}

void MemoryStore::SwapRing(absl::string_view ns, uint64_t expected, uint64_t version,
                           absl::string_view ring, absl::Time /*deadline*/, SwapRingDone done) {
  bool swapped = false;
  {
    absl::MutexLock lock(&rings_mu_);
    auto found = rings_.find(ns);
    const uint64_t stored = found == rings_.end() ? 0 : found->second.version;
    if (stored == expected) {
      rings_[ns] = StoredRing{SecretBytes(ring), version};
      swapped = true;
    }
  }
  std::move(done)(swapped);
}

std::string MemoryStore::Describe() const {
  return absl::StrFormat("memory (%d bytes in %d shards)", options_.max_bytes, options_.num_shards);
}

size_t MemoryStore::entries() const {
  size_t n = 0;
  for (const auto& shard : shards_) {
    absl::MutexLock lock(&shard->mu);
    n += shard->lru.size();
  }
  return n;
}

size_t MemoryStore::bytes() const {
  size_t n = 0;
  for (const auto& shard : shards_) {
    absl::MutexLock lock(&shard->mu);
    n += shard->bytes;
  }
  return n;
}

void MemoryStore::AddStats(StoreStats* stats) const {
  stats->entries = entries();
  stats->bytes = bytes();
}

void MemoryStore::ReportFollower(absl::string_view ns, const FollowerReport& report,
                                 absl::Time /*deadline*/, StatusDone done) {
  absl::Status status;
  {
    absl::MutexLock lock(&rings_mu_);
    std::map<std::string, FollowerReport>& followers = followers_[ns];
    if (report.lease_ends_unix_ms == 0) {
      followers.erase(report.follower);
      if (followers.empty()) followers_.erase(std::string(ns));
    } else if (followers.size() >= kMaxFollowers && followers.find(report.follower) == followers.end()) {
      status = absl::ResourceExhaustedError(
          absl::StrCat("namespace ", ns, " has ", kMaxFollowers, " ticket key followers"));
    } else {
      followers[report.follower] = report;
    }
  }
  std::move(done)(status);
}

void MemoryStore::ForgetFollower(absl::string_view ns, const FollowerReport& stale,
                                 absl::Time /*deadline*/, StatusDone done) {
  {
    absl::MutexLock lock(&rings_mu_);
    if (auto found = followers_.find(ns); found != followers_.end()) {
      auto report = found->second.find(stale.follower);
      if (report != found->second.end() && report->second.version == stale.version &&
          report->second.lease_ends_unix_ms == stale.lease_ends_unix_ms) {
        found->second.erase(report);
        if (found->second.empty()) followers_.erase(found);
      }
    }
  }
  std::move(done)(absl::OkStatus());
}

void MemoryStore::ListFollowers(absl::string_view ns, absl::Time /*deadline*/,
                                FollowersDone done) {
  std::vector<FollowerReport> reports;
  {
    absl::MutexLock lock(&rings_mu_);
    if (auto found = followers_.find(ns); found != followers_.end()) {
      for (const auto& [name, report] : found->second) reports.push_back(report);
    }
  }
  std::move(done)(std::move(reports));
}

}  // namespace tlscache::server
