#include "client/node_cache.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <utility>

#include "absl/strings/match.h"

namespace tlscache::client {
namespace {

constexpr size_t kMinBytes = size_t{64} << 10;
constexpr size_t kShardTarget = size_t{256} << 10;
constexpr size_t kMaxShards = 64;
// One index slot for every this many bytes of ring: more than a typical session's entry
// (about 150 to 250 bytes), so that the ring, not the index, is what fills first.
constexpr size_t kRingBytesPerSlot = 160;

constexpr size_t Align8(size_t n) { return (n + 7) & ~size_t{7}; }
constexpr size_t Align64(size_t n) { return (n + 63) & ~size_t{63}; }

// FNV-1a: the same in every process (a seeded hash is not), and keys are short.
uint64_t Hash(absl::string_view key) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

struct NodeCache::Slot {
  uint64_t pos_plus_one;  // 0: empty
  uint64_t hash;
};

// An entry in a shard's ring: this header, the key, the session; or a filler up to the end
// of the ring, where the next entry did not fit.
struct NodeCache::Record {
  uint64_t pos;  // where it was written (a position grows; the ring offset is pos % ring)
  int64_t expiry_micros;
  uint64_t hash;
  uint32_t length;  // of the whole record, a multiple of 8
  uint32_t session_len;
  uint16_t key_len;
  uint8_t live;
  uint8_t filler;
  uint32_t unused;

  char* key() { return reinterpret_cast<char*>(this + 1); }
  char* session() { return key() + key_len; }
};

// A shard: this header (its lock and its ring's state), then its index, then its ring.
struct NodeCache::Shard {
  RobustMutex mu;
  uint64_t buckets;
  uint64_t ring_bytes;
  uint64_t head;  // where the next record goes
  uint64_t tail;  // the oldest record not yet passed over
  uint64_t entries, bytes, hits, misses, evictions, repairs;

  Slot* slots() {
    return reinterpret_cast<Slot*>(reinterpret_cast<uint8_t*>(this) + Align64(sizeof(Shard)));
  }
  uint8_t* ring() { return reinterpret_cast<uint8_t*>(slots() + buckets * kWays); }
  Record* At(uint64_t pos) { return reinterpret_cast<Record*>(ring() + pos % ring_bytes); }

  // Empties the shard, wiping every session in it.
  void Reset() {
    OPENSSL_cleanse(ring(), ring_bytes);
    std::memset(slots(), 0, buckets * kWays * sizeof(Slot));
    head = tail = 0;
    entries = bytes = 0;
  }

  // The slot of the live record under `key`, or null.
  Slot* Find(uint64_t hash, absl::string_view key) {
    Slot* bucket = slots() + (hash % buckets) * kWays;
    for (int i = 0; i < kWays; ++i) {
      Slot& slot = bucket[i];
      if (slot.pos_plus_one == 0 || slot.hash != hash) continue;
      Record* record = At(slot.pos_plus_one - 1);
      if (record->live && record->key_len == key.size() &&
          std::memcmp(record->key(), key.data(), key.size()) == 0) {
        return &slot;
      }
    }
    return nullptr;
  }

  // Drops the record `slot` names: its bytes wiped, its slot emptied.
  void Drop(Slot& slot) {
    Record* record = At(slot.pos_plus_one - 1);
    OPENSSL_cleanse(record->key(), record->key_len + record->session_len);
    record->live = 0;
    --entries;
    bytes -= record->length;
    slot = Slot{0, 0};
  }

  // Passes over the oldest records until `need` bytes from `head` are free; false when the
  // ring is not what this code wrote (then the caller resets the shard).
  bool MakeRoom(uint64_t need) {
    while (head + need - tail > ring_bytes) {
      const uint64_t offset = tail % ring_bytes;
      if (ring_bytes - offset < sizeof(Record)) {
        tail += ring_bytes - offset;  // no header fits there: nothing was written
        continue;
      }
      Record* record = At(tail);
      if (record->pos != tail || record->length == 0 || record->length > ring_bytes - offset) {
        return false;
      }
      if (record->live) {
        Slot* bucket = slots() + (record->hash % buckets) * kWays;
        for (int i = 0; i < kWays; ++i) {
          if (bucket[i].pos_plus_one == tail + 1) {
            Drop(bucket[i]);
            ++evictions;
            break;
          }
        }
      }
      tail += record->length;
    }
    return true;
  }
};

absl::StatusOr<std::unique_ptr<NodeCache>> NodeCache::Create(size_t bytes, Clock* clock) {
  bytes = std::max(bytes, kMinBytes);
  absl::StatusOr<SharedMapping> mapping = SharedMapping::Create(bytes);
  if (!mapping.ok()) return mapping.status();
  return std::unique_ptr<NodeCache>(new NodeCache(*std::move(mapping), clock));
}

NodeCache::NodeCache(SharedMapping mapping, Clock* clock)
    : mapping_(std::move(mapping)), clock_(clock) {
  static_assert(sizeof(Record) == kEntryOverheadBytes);
  shards_ = std::clamp<size_t>(mapping_.size() / kShardTarget, 1, kMaxShards);
  shard_bytes_ = (mapping_.size() / shards_) & ~size_t{63};
  const size_t rest = shard_bytes_ - Align64(sizeof(Shard));
  const uint64_t buckets = std::max<uint64_t>(1, rest / (kRingBytesPerSlot + sizeof(Slot)) / kWays);
  const uint64_t ring = (rest - buckets * kWays * sizeof(Slot)) & ~uint64_t{7};
  for (size_t i = 0; i < shards_; ++i) {
    auto* shard = new (mapping_.data() + i * shard_bytes_) Shard();
    shard->mu.Init();
    shard->buckets = buckets;
    shard->ring_bytes = ring;
  }
}

NodeCache::Shard& NodeCache::ShardOf(uint64_t hash) const {
  // The high bits: the low ones pick the bucket within the shard.
  return *reinterpret_cast<Shard*>(mapping_.data() + ((hash >> 40) % shards_) * shard_bytes_);
}

void NodeCache::Lock(Shard& shard) const {
  if (shard.mu.Lock() == RobustMutex::Locked::kOwnerDied) {
    shard.Reset();  // what the dead process was doing may be half done
    ++shard.repairs;
  }
}

void NodeCache::Insert(absl::string_view key, absl::string_view session, absl::Duration ttl) {
  if (key.empty() || key.size() > kMaxKeyBytes) return;
  const uint64_t hash = Hash(key);
  Shard& shard = ShardOf(hash);
  const uint64_t length = Align8(sizeof(Record) + key.size() + session.size());
  const int64_t expiry = absl::ToUnixMicros(clock_->Now() + ttl);
  Lock(shard);
  UnlockOnExit unlock(shard.mu);
  if (Slot* old = shard.Find(hash, key)) shard.Drop(*old);
  if (ttl <= absl::ZeroDuration() || length > shard.ring_bytes / 2) return;
  const uint64_t to_end = shard.ring_bytes - shard.head % shard.ring_bytes;
  const bool wraps = to_end < length;
  if (!shard.MakeRoom(wraps ? to_end + length : length)) {
    shard.Reset();
    ++shard.repairs;
  }
  if (wraps) {
    if (to_end >= sizeof(Record)) {
      Record* filler = shard.At(shard.head);
      *filler = Record{};
      filler->pos = shard.head;
      filler->length = static_cast<uint32_t>(to_end);
      filler->filler = 1;
    }
    shard.head += to_end;
  }
  Slot* bucket = shard.slots() + (hash % shard.buckets) * kWays;
  Slot* free_slot = nullptr;
  for (int i = 0; i < kWays && free_slot == nullptr; ++i) {
    if (bucket[i].pos_plus_one == 0) free_slot = &bucket[i];
  }
  if (free_slot == nullptr) {  // the bucket is full: its oldest entry goes
    free_slot = &bucket[0];
    for (int i = 1; i < kWays; ++i) {
      if (bucket[i].pos_plus_one < free_slot->pos_plus_one) free_slot = &bucket[i];
    }
    shard.Drop(*free_slot);
    ++shard.evictions;
  }
  Record* record = shard.At(shard.head);
  *record = Record{};
  record->pos = shard.head;
  record->expiry_micros = expiry;
  record->hash = hash;
  record->length = static_cast<uint32_t>(length);
  record->session_len = static_cast<uint32_t>(session.size());
  record->key_len = static_cast<uint16_t>(key.size());
  std::memcpy(record->key(), key.data(), key.size());
  std::memcpy(record->session(), session.data(), session.size());
  record->live = 1;
  *free_slot = Slot{shard.head + 1, hash};
  shard.head += length;
  ++shard.entries;
  shard.bytes += length;
}

std::optional<SecretBytes> NodeCache::Lookup(absl::string_view key) {
  if (key.empty() || key.size() > kMaxKeyBytes) return std::nullopt;
  const uint64_t hash = Hash(key);
  Shard& shard = ShardOf(hash);
  const int64_t now = absl::ToUnixMicros(clock_->Now());
  Lock(shard);
  UnlockOnExit unlock(shard.mu);
  Slot* slot = shard.Find(hash, key);
  std::optional<SecretBytes> found;
  if (slot != nullptr) {
    Record* record = shard.At(slot->pos_plus_one - 1);
    if (record->expiry_micros <= now) {
      shard.Drop(*slot);
    } else {
      found.emplace(reinterpret_cast<const uint8_t*>(record->session()), record->session_len);
    }
  }
  ++(found ? shard.hits : shard.misses);
  return found;
}

void NodeCache::Remove(absl::string_view key) {
  if (key.empty() || key.size() > kMaxKeyBytes) return;
  const uint64_t hash = Hash(key);
  Shard& shard = ShardOf(hash);
  Lock(shard);
  UnlockOnExit unlock(shard.mu);
  if (Slot* slot = shard.Find(hash, key)) shard.Drop(*slot);
}

std::vector<std::string> NodeCache::Keys(absl::string_view prefix) const {
  const int64_t now = absl::ToUnixMicros(clock_->Now());
  std::vector<std::string> keys;
  for (size_t i = 0; i < shards_; ++i) {
    Shard& shard = *reinterpret_cast<Shard*>(mapping_.data() + i * shard_bytes_);
    Lock(shard);
    UnlockOnExit unlock(shard.mu);
    Slot* slots = shard.slots();
    for (uint64_t s = 0; s < shard.buckets * kWays; ++s) {
      if (slots[s].pos_plus_one == 0) continue;
      Record* record = shard.At(slots[s].pos_plus_one - 1);
      const absl::string_view key(record->key(), record->key_len);
      if (record->live && record->expiry_micros > now && absl::StartsWith(key, prefix)) {
        keys.emplace_back(key.substr(prefix.size()));
      }
    }
  }
  return keys;
}

NearCacheStats NodeCache::stats() const {
  NearCacheStats stats;
  for (size_t i = 0; i < shards_; ++i) {
    Shard& shard = *reinterpret_cast<Shard*>(mapping_.data() + i * shard_bytes_);
    Lock(shard);
    UnlockOnExit unlock(shard.mu);
    stats.hits += shard.hits;
    stats.misses += shard.misses;
    stats.entries += shard.entries;
    stats.bytes += shard.bytes;
    stats.evictions += shard.evictions;
    stats.repairs += shard.repairs;
  }
  return stats;
}

}  // namespace tlscache::client
