// Node: what the processes of one node share, in memory mapped before a pre-fork server forks
// them (client/shared_memory.h): the node's near cache (client/node_cache.h), and for each
// namespace a NodeFeed.
//
// NodeFeed: one namespace's state on the node.
//   - The lease: one process of the node at a time follows the namespace (holds its push
//     stream and writes what arrives into the near cache). The lease is a robust lock held
//     by that process for as long as it follows; when it exits or is killed, another process
//     takes the lease (TryLead) and goes on from the position the node reached.
//   - Whether the near cache may answer (Vouches): the follower says when the service was last
//     heard from, and whether a check after a gap is going on.
//   - The position in the namespace's log the node's near cache reflects.
//   - The withdrawals: every session the node dropped because the farm withdrew it, numbered,
//     the most recent kRemovals kept, so that every process can drop its own copies (its TLS
//     library's session cache), and a lookup can tell whether the session it found was
//     withdrawn meanwhile (RemovalMark, WithdrawnSince).
//
// Node::Prepare, called in a pre-fork server's master before it forks, makes the node that
// the processes it forks share; without it each client makes its own (a threaded server is one
// node: one process).
//
// Thread-safety: all methods are for any thread of any process that maps the node.
#ifndef TLSCACHE_CLIENT_NODE_H_
#define TLSCACHE_CLIENT_NODE_H_

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/node_cache.h"
#include "client/shared_memory.h"
#include "common/log_point.h"
#include "common/secret_bytes.h"

namespace tlscache::client {

class NodeFeed {
 public:
  static constexpr size_t kRemovals = 1024;
  static constexpr size_t kMaxLogIdBytes = 256;  // the service's are under 100
  static constexpr size_t kMaxNameBytes = 64;

  struct Withdrawal {
    std::string key;             // the session's cache key (without the namespace prefix)
    std::string tls_session_id;  // when the deleting process gave it
  };

  // Made by Node in zeroed shared memory; `index` is the namespace's key prefix.
  NodeFeed(absl::string_view ns, uint8_t index);

  absl::string_view name() const { return absl::string_view(name_, name_len_); }
  // The near-cache key of `session_id` in this namespace.
  std::string Key(absl::string_view session_id) const;
  absl::string_view prefix() const { return absl::string_view(&prefix_, 1); }

  // Whether the near cache answers at `now`: the node's follower heard from the service
  // within `without_word`, and no check after a gap is going on.
  bool Vouches(absl::Time now, absl::Duration without_word) const;
  // The follower heard from the service, following the log (`now`), or it did not (nullopt:
  // its stream is down, or the service paused).
  void Heard(std::optional<absl::Time> now);
  void SetChecking(bool checking);
  bool checking() const { return checking_.load(std::memory_order_acquire) != 0; }

  // Where the node stands in the log, if anywhere.
  std::optional<LogPoint> Position();
  void SetPosition(const LogPoint& at);

  // The lease (see above), tried by a thread that keeps it for as long as the process follows
  // and releases it (Unlead) from that same thread. kOwnerDied: the last follower died
  // holding it: the near cache answers nothing until the new one vouches.
  RobustMutex::Locked TryLead();
  void Unlead();
  pid_t leader() const { return leader_.load(std::memory_order_acquire); }

  // Drops `session_id` from the near cache and numbers its withdrawal. `origin`: the process
  // that withdrew it from its own copies already (0: none did).
  void Withdraw(NodeCache& cache, absl::string_view session_id, absl::string_view tls_session_id,
                pid_t origin);
  // Keeps `session` in the near cache unless `session_id` was withdrawn since `mark`.
  void KeepUnlessWithdrawn(NodeCache& cache, absl::string_view session_id,
                           absl::string_view session, absl::Duration ttl, uint64_t mark);
  uint64_t RemovalMark();
  // True too when the node no longer recalls that far back.
  bool WithdrawnSince(absl::string_view session_id, uint64_t mark);
  // The withdrawals after `*cursor` not made by `self`, and the cursor moved past them; false
  // when some were no longer recalled (the caller drops every copy it holds).
  bool WithdrawalsSince(uint64_t* cursor, pid_t self, std::vector<Withdrawal>* out);
  // Waits until a withdrawal after `cursor` is numbered, at most `timeout`.
  void AwaitWithdrawal(uint64_t cursor, absl::Duration timeout);

 private:
  struct Removal {
    uint64_t seq;
    pid_t origin;
    uint8_t key_len;
    uint8_t id_len;
    char key[NodeCache::kMaxKeyBytes];
    char tls_id[32];
  };
  bool WithdrawnSinceLocked(absl::string_view session_id, uint64_t mark) const;
  // Locks mu_; a holder that died may have left a withdrawal half-written: the position is
  // forgotten and every earlier withdrawal counts as no longer recalled.
  void Lock();

  char name_[kMaxNameBytes];
  uint32_t name_len_;
  char prefix_;
  RobustMutex lease_;
  std::atomic<pid_t> leader_;
  std::atomic<int64_t> heard_micros_;  // 0: not heard (the near cache answers nothing)
  std::atomic<uint32_t> checking_;
  RobustMutex mu_;  // what follows
  bool positioned_;
  uint32_t log_id_len_;
  char log_id_[kMaxLogIdBytes];
  uint64_t seq_;
  uint64_t removals_;
  uint64_t forgotten_before_;  // marks before this no longer tell
  std::atomic<uint32_t> removal_word_;  // the low bits of removals_, for AwaitWithdrawal
  Removal ring_[kRemovals];
};

class Node {
 public:
  static constexpr int kMaxNamespaces = 32;

  // A node of its own for this process (and none other), with a near cache of `cache_bytes`.
  static absl::StatusOr<std::shared_ptr<Node>> Create(size_t cache_bytes);
  // Makes the node every process this one forks afterwards shares (a pre-fork server's
  // master, before it forks). Idempotent: the first call's size stays.
  static absl::Status Prepare(size_t cache_bytes);
  // The node Prepare made (in this process or one it was forked from), or null.
  static std::shared_ptr<Node> Prepared();

  NodeCache& cache() { return *cache_; }
  // The namespace's state, made on first use; null once kMaxNamespaces are in use.
  NodeFeed* Feed(absl::string_view ns);

 private:
  struct Table;
  Node(std::unique_ptr<NodeCache> cache, SharedMapping feeds);

  std::unique_ptr<NodeCache> cache_;
  SharedMapping feeds_;
};

}  // namespace tlscache::client

#endif  // TLSCACHE_CLIENT_NODE_H_
