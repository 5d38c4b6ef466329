// What the processes of one node share: a mapping made before a pre-fork server forks its
// workers, locks that a process killed while holding them cannot wedge, and a wake-up
// across processes.
//
//   - SharedMapping: MAP_SHARED | MAP_ANONYMOUS, so that it has no name any other process
//     could open (only the process that made it, and those it forks, map it); MADV_DONTDUMP,
//     so that the secrets in it stay out of core dumps. Zero-filled; unmapped by its owner.
//   - RobustMutex: a pthread mutex in shared memory, PTHREAD_PROCESS_SHARED and
//     PTHREAD_MUTEX_ROBUST. When its holder dies (SIGKILL, OOM, at any instruction) the next
//     locker is told so (kOwnerDied): the data it guards may be half-written, and the
//     locker repairs it before it unlocks.
//   - WaitForChange / WakeAll: a futex on a word of shared memory (FUTEX_WAIT without
//     FUTEX_PRIVATE_FLAG, so that it works across processes).
//
// Thread-safety: RobustMutex and the futex calls are for any thread of any process that maps
// the memory; SharedMapping itself is not shared between threads while it is made or unmapped.
#ifndef TLSCACHE_CLIENT_SHARED_MEMORY_H_
#define TLSCACHE_CLIENT_SHARED_MEMORY_H_

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tlscache::client {

class SharedMapping {
 public:
  static absl::StatusOr<SharedMapping> Create(size_t bytes);
  SharedMapping() = default;
  SharedMapping(SharedMapping&& other) noexcept;
  SharedMapping& operator=(SharedMapping&& other) noexcept;
  ~SharedMapping();

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

class RobustMutex {
 public:
  enum class Locked {
    kYes,
    kOwnerDied,  // locked; its last holder died: repair what it guards
    kNo,         // TryLock only: held by another
  };
  // Called once, in zeroed shared memory, before any process uses it.
  void Init();
  Locked Lock();
  Locked TryLock();
  void Unlock();

 private:
  Locked Took(int rc);
  pthread_mutex_t mu_;
};

// Unlocks a RobustMutex the caller locked when the scope ends, however it ends: a process that
// lives on (an allocation that threw under the lock) must never leave it held, since only a
// dead holder's lock is recovered.
class UnlockOnExit {
 public:
  explicit UnlockOnExit(RobustMutex& mu) : mu_(mu) {}
  ~UnlockOnExit() { mu_.Unlock(); }
  UnlockOnExit(const UnlockOnExit&) = delete;
  UnlockOnExit& operator=(const UnlockOnExit&) = delete;

 private:
  RobustMutex& mu_;
};

// Waits while `*word` equals `expected`, at most `timeout` (or until WakeAll on it).
void WaitForChange(std::atomic<uint32_t>* word, uint32_t expected, absl::Duration timeout);
void WakeAll(std::atomic<uint32_t>* word);

}  // namespace tlscache::client

#endif  // TLSCACHE_CLIENT_SHARED_MEMORY_H_
