#include "client/near_cache.h"

#include <utility>

namespace tlscache::client {
namespace {

// Expired entries dropped from the cold end on each insert: enough to keep up with any
// insert rate (each insert adds one), few enough to keep an insert cheap.
constexpr int kExpiredPerInsert = 2;

}  // namespace

void NearCache::EraseLocked(List::iterator it) {
  bytes_ -= Cost(*it);
  index_.erase(it->key);
  lru_.erase(it);  // the entry's destructor wipes the session
}

void NearCache::Insert(absl::string_view key, SecretBytes session, absl::Duration ttl) {
  if (ttl <= absl::ZeroDuration()) return;
  const absl::Time now = clock_->Now();
  Entry entry{std::string(key), std::move(session), now + ttl};
  const size_t cost = Cost(entry);
  absl::MutexLock lock(&mu_);
  if (auto found = index_.find(key); found != index_.end()) EraseLocked(found->second);
  for (int i = 0; i < kExpiredPerInsert && !lru_.empty() && lru_.back().expiry <= now; ++i) {
    EraseLocked(std::prev(lru_.end()));
  }
  if (cost > max_bytes_) return;
  while (bytes_ + cost > max_bytes_) {
    EraseLocked(std::prev(lru_.end()));
    ++evictions_;
  }
  lru_.push_front(std::move(entry));
  index_.emplace(lru_.front().key, lru_.begin());
  bytes_ += cost;
}

std::optional<SecretBytes> NearCache::Lookup(absl::string_view key) {
  absl::MutexLock lock(&mu_);
  auto found = index_.find(key);
  if (found == index_.end()) {
    ++misses_;
    return std::nullopt;
  }
  List::iterator it = found->second;
  if (it->expiry <= clock_->Now()) {
    EraseLocked(it);
    ++misses_;
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it);
  ++hits_;
  return it->session.Clone();
}

void NearCache::Remove(absl::string_view key) {
  absl::MutexLock lock(&mu_);
  if (auto found = index_.find(key); found != index_.end()) EraseLocked(found->second);
}

void NearCache::Clear() {
  absl::MutexLock lock(&mu_);
  index_.clear();
  lru_.clear();
  bytes_ = 0;
}

std::vector<std::string> NearCache::Keys() const {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  std::vector<std::string> keys;
  keys.reserve(lru_.size());
  for (const Entry& entry : lru_) {
    if (entry.expiry > now) keys.push_back(entry.key);
  }
  return keys;
}

NearCacheStats NearCache::stats() const {
  absl::MutexLock lock(&mu_);
  NearCacheStats stats;
  stats.hits = hits_;
  stats.misses = misses_;
  stats.entries = lru_.size();
  stats.bytes = bytes_;
  stats.evictions = evictions_;
  return stats;
}

}  // namespace tlscache::client
