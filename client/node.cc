#include "client/node.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace tlscache::client {

NodeFeed::NodeFeed(absl::string_view ns, uint8_t index)
    : name_len_(static_cast<uint32_t>(std::min(ns.size(), kMaxNameBytes))),
      prefix_(static_cast<char>(index)),
      leader_(0),
      heard_micros_(0),
      checking_(0),
      positioned_(false),
      log_id_len_(0),
      seq_(0),
      removals_(0),
      forgotten_before_(0),
      removal_word_(0) {
  std::memcpy(name_, ns.data(), name_len_);
  lease_.Init();
  mu_.Init();
}

std::string NodeFeed::Key(absl::string_view session_id) const {
  return absl::StrCat(prefix(), session_id);
}

bool NodeFeed::Vouches(absl::Time now, absl::Duration without_word) const {
  if (checking()) return false;
  const int64_t heard = heard_micros_.load(std::memory_order_acquire);
  return heard != 0 && absl::ToUnixMicros(now) - heard <= absl::ToInt64Microseconds(without_word);
}

void NodeFeed::Heard(std::optional<absl::Time> now) {
  heard_micros_.store(now ? absl::ToUnixMicros(*now) : 0, std::memory_order_release);
}

void NodeFeed::SetChecking(bool checking) {
  checking_.store(checking ? 1 : 0, std::memory_order_release);
}

void NodeFeed::Lock() {
  if (mu_.Lock() != RobustMutex::Locked::kOwnerDied) return;
  // A position that cannot go on (a new stream starts with a gap, and a check), and a
  // withdrawal that may be half-written skipped: every mark before it no longer tells.
  positioned_ = true;
  log_id_len_ = 0;
  seq_ = std::numeric_limits<uint64_t>::max() - 1;
  ++removals_;
  forgotten_before_ = removals_;
  removal_word_.store(static_cast<uint32_t>(removals_), std::memory_order_release);
}

std::optional<LogPoint> NodeFeed::Position() {
  Lock();
  UnlockOnExit unlock(mu_);
  std::optional<LogPoint> at;
  if (positioned_) at = LogPoint{std::string(log_id_, log_id_len_), seq_};
  return at;
}

void NodeFeed::SetPosition(const LogPoint& at) {
  Lock();
  UnlockOnExit unlock(mu_);
  positioned_ = true;
  if (at.log_id.size() <= kMaxLogIdBytes) {
    log_id_len_ = static_cast<uint32_t>(at.log_id.size());
    std::memcpy(log_id_, at.log_id.data(), at.log_id.size());
    seq_ = at.seq;
  } else {  // kept as a place no stream goes on from: the next one checks
    log_id_len_ = 0;
    seq_ = std::numeric_limits<uint64_t>::max() - 1;
  }
}

RobustMutex::Locked NodeFeed::TryLead() {
  const RobustMutex::Locked locked = lease_.TryLock();
  if (locked == RobustMutex::Locked::kNo) return locked;
  if (locked == RobustMutex::Locked::kOwnerDied) Heard(std::nullopt);
  leader_.store(getpid(), std::memory_order_release);
  return locked;
}

void NodeFeed::Unlead() {
  Heard(std::nullopt);  // nobody follows until the next leader is heard
  leader_.store(0, std::memory_order_release);
  lease_.Unlock();
}

void NodeFeed::Withdraw(NodeCache& cache, absl::string_view session_id,
                        absl::string_view tls_session_id, pid_t origin) {
  const std::string key = Key(session_id);  // allocated before the lock
  {
    Lock();
    UnlockOnExit unlock(mu_);
    cache.Remove(key);
    ++removals_;
    Removal& removal = ring_[(removals_ - 1) % kRemovals];
    removal.seq = removals_;
    removal.origin = origin;
    removal.key_len = static_cast<uint8_t>(std::min(session_id.size(), sizeof(removal.key)));
    std::memcpy(removal.key, session_id.data(), removal.key_len);
    removal.id_len = static_cast<uint8_t>(std::min(tls_session_id.size(), sizeof(removal.tls_id)));
    std::memcpy(removal.tls_id, tls_session_id.data(), removal.id_len);
    removal_word_.store(static_cast<uint32_t>(removals_), std::memory_order_release);
  }
  WakeAll(&removal_word_);
}

void NodeFeed::KeepUnlessWithdrawn(NodeCache& cache, absl::string_view session_id,
                                   absl::string_view session, absl::Duration ttl, uint64_t mark) {
  const std::string key = Key(session_id);
  Lock();
  UnlockOnExit unlock(mu_);
  if (!WithdrawnSinceLocked(session_id, mark)) cache.Insert(key, session, ttl);
}

uint64_t NodeFeed::RemovalMark() {
  Lock();
  UnlockOnExit unlock(mu_);
  return removals_;
}

bool NodeFeed::WithdrawnSince(absl::string_view session_id, uint64_t mark) {
  Lock();
  UnlockOnExit unlock(mu_);
  return WithdrawnSinceLocked(session_id, mark);
}

bool NodeFeed::WithdrawnSinceLocked(absl::string_view session_id, uint64_t mark) const {
  if (mark < forgotten_before_ || removals_ - mark > kRemovals) return true;
  for (uint64_t seq = removals_; seq > mark; --seq) {
    const Removal& removal = ring_[(seq - 1) % kRemovals];
    if (absl::string_view(removal.key, removal.key_len) == session_id) return true;
  }
  return false;
}

bool NodeFeed::WithdrawalsSince(uint64_t* cursor, pid_t self, std::vector<Withdrawal>* out) {
  Lock();
  UnlockOnExit unlock(mu_);
  bool complete = true;
  const uint64_t oldest =
      std::max<uint64_t>(forgotten_before_, removals_ > kRemovals ? removals_ - kRemovals : 0);
  if (*cursor < oldest) {
    complete = false;
    *cursor = oldest;
  }
  for (uint64_t seq = *cursor + 1; seq <= removals_; ++seq) {
    const Removal& removal = ring_[(seq - 1) % kRemovals];
    if (removal.origin == self) continue;
    out->push_back(Withdrawal{std::string(removal.key, removal.key_len),
                              std::string(removal.tls_id, removal.id_len)});
  }
  *cursor = std::max(*cursor, removals_);
  return complete;
}

void NodeFeed::AwaitWithdrawal(uint64_t cursor, absl::Duration timeout) {
  const auto expected = static_cast<uint32_t>(cursor);
  if (removal_word_.load(std::memory_order_acquire) != expected) return;
  WaitForChange(&removal_word_, expected, timeout);
}

// The namespaces' table, at the start of the feeds' mapping; the feeds follow it.
struct Node::Table {
  RobustMutex mu;  // claiming a slot
  uint32_t claimed;
  std::atomic<uint32_t> ready[kMaxNamespaces];
};

namespace {

constexpr size_t kTableBytes = 1024;

size_t FeedOffset(int i) {
  return kTableBytes + static_cast<size_t>(i) * ((sizeof(NodeFeed) + 63) & ~size_t{63});
}

}  // namespace

absl::StatusOr<std::shared_ptr<Node>> Node::Create(size_t cache_bytes) {
  static_assert(sizeof(Table) <= kTableBytes);
  absl::StatusOr<std::unique_ptr<NodeCache>> cache = NodeCache::Create(cache_bytes);
  if (!cache.ok()) return cache.status();
  absl::StatusOr<SharedMapping> feeds = SharedMapping::Create(FeedOffset(kMaxNamespaces));
  if (!feeds.ok()) return feeds.status();
  auto* table = new (feeds->data()) Table();
  table->mu.Init();
  return std::shared_ptr<Node>(new Node(*std::move(cache), *std::move(feeds)));
}

Node::Node(std::unique_ptr<NodeCache> cache, SharedMapping feeds)
    : cache_(std::move(cache)), feeds_(std::move(feeds)) {}

NodeFeed* Node::Feed(absl::string_view ns) {
  if (ns.size() > NodeFeed::kMaxNameBytes) return nullptr;
  auto* table = reinterpret_cast<Table*>(feeds_.data());
  auto find = [&]() -> NodeFeed* {
    for (int i = 0; i < kMaxNamespaces; ++i) {
      if (table->ready[i].load(std::memory_order_acquire) == 0) continue;
      auto* feed = reinterpret_cast<NodeFeed*>(feeds_.data() + FeedOffset(i));
      if (feed->name() == ns) return feed;
    }
    return nullptr;
  };
  if (NodeFeed* found = find()) return found;
  // A holder that died while claiming leaves its slot unused.
  table->mu.Lock();
  UnlockOnExit unlock(table->mu);
  NodeFeed* feed = find();
  if (feed == nullptr && table->claimed < kMaxNamespaces) {
    const int i = static_cast<int>(table->claimed++);
    feed = new (feeds_.data() + FeedOffset(i)) NodeFeed(ns, static_cast<uint8_t>(i + 1));
    table->ready[i].store(1, std::memory_order_release);
  }
  return feed;
}

namespace {

ABSL_CONST_INIT absl::Mutex prepared_mu(absl::kConstInit);
// Never freed: forked children inherit it.
std::shared_ptr<Node>* prepared ABSL_GUARDED_BY(prepared_mu) = nullptr;

}  // namespace

absl::Status Node::Prepare(size_t cache_bytes) {
  absl::MutexLock lock(&prepared_mu);
  if (prepared != nullptr) return absl::OkStatus();
  absl::StatusOr<std::shared_ptr<Node>> node = Create(cache_bytes);
  if (!node.ok()) return node.status();
  prepared = new std::shared_ptr<Node>(*std::move(node));
  return absl::OkStatus();
}

std::shared_ptr<Node> Node::Prepared() {
  absl::MutexLock lock(&prepared_mu);
  return prepared == nullptr ? nullptr : *prepared;
}

}  // namespace tlscache::client
