#include "client/shared_memory.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <utility>

#include "absl/strings/str_cat.h"

namespace tlscache::client {

absl::StatusOr<SharedMapping> SharedMapping::Create(size_t bytes) {
  if (bytes == 0) return absl::InvalidArgumentError("a shared mapping of 0 bytes");
  void* data = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (data == MAP_FAILED) {
    return absl::ResourceExhaustedError(
        absl::StrCat("mmap of ", bytes, " shared bytes: ", std::strerror(errno)));
  }
  madvise(data, bytes, MADV_DONTDUMP);  // best effort: a kernel without it still maps
  SharedMapping mapping;
  mapping.data_ = static_cast<uint8_t*>(data);
  mapping.size_ = bytes;
  return mapping;
}

SharedMapping::SharedMapping(SharedMapping&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SharedMapping& SharedMapping::operator=(SharedMapping&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) munmap(data_, size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SharedMapping::~SharedMapping() {
  if (data_ != nullptr) munmap(data_, size_);
}

void RobustMutex::Init() {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&mu_, &attr);
  pthread_mutexattr_destroy(&attr);
}

RobustMutex::Locked RobustMutex::Took(int rc) {
  if (rc == 0) return Locked::kYes;
  if (rc == EOWNERDEAD) {
    pthread_mutex_consistent(&mu_);  // the caller repairs before it unlocks
    return Locked::kOwnerDied;
  }
  return Locked::kNo;  // EBUSY; ENOTRECOVERABLE cannot happen (every owner-died is repaired)
}

RobustMutex::Locked RobustMutex::Lock() {
  while (true) {
    const Locked locked = Took(pthread_mutex_lock(&mu_));
    if (locked != Locked::kNo) return locked;
  }
}

RobustMutex::Locked RobustMutex::TryLock() { return Took(pthread_mutex_trylock(&mu_)); }

void RobustMutex::Unlock() { pthread_mutex_unlock(&mu_); }

void WaitForChange(std::atomic<uint32_t>* word, uint32_t expected, absl::Duration timeout) {
  const timespec ts = absl::ToTimespec(timeout);
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}

void WakeAll(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

}  // namespace tlscache::client
