#include "client/process_registry.h"

#include <pthread.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/log.h"

namespace tlscache::client {
namespace {

// Guards the making of every part. Held across fork() by the handlers below.
absl::Mutex& RegistryMutex() {
  static absl::Mutex* const mu = [] {
    auto* m = new absl::Mutex();
    pthread_atfork([]() ABSL_NO_THREAD_SAFETY_ANALYSIS { RegistryMutex().Lock(); },
                   []() ABSL_NO_THREAD_SAFETY_ANALYSIS { RegistryMutex().Unlock(); },
                   []() ABSL_NO_THREAD_SAFETY_ANALYSIS { RegistryMutex().Unlock(); });
    return m;
  }();
  return *mu;
}

// Every part of this process image (a child inherits its parent's: their pids tell them
// apart).
std::vector<ProcessPart*>& Parts() {  // under RegistryMutex()
  static auto* parts = new std::vector<ProcessPart*>();
  return *parts;
}

// The process in which this library first created gRPC state (0: none yet).
std::atomic<pid_t> grpc_user{0};

void StopPartsAtExit() {
  absl::MutexLock lock(&RegistryMutex());
  for (ProcessPart* part : Parts()) {
    if (part->pid() == getpid()) part->Stop();  // a parent's, inherited, has no threads here
  }
}

}  // namespace

ProcessPart* ProcessRegistry::Join(std::atomic<ProcessPart*>& slot,
                                   absl::FunctionRef<ProcessPart*()> make) {
  const pid_t pid = getpid();
  ProcessPart* part = slot.load(std::memory_order_acquire);
  if (part != nullptr && part->pid() == pid) return part;
  absl::MutexLock lock(&RegistryMutex());
  part = slot.load(std::memory_order_acquire);
  if (part != nullptr && part->pid() == pid) return part;
  const pid_t user = grpc_user.load();
  if (user != 0 && user != pid) {
    static std::atomic<pid_t> warned{0};
    if (warned.exchange(pid) != pid) LogWarning("tlscache: %s", ForkedAfterUse().message());
    return nullptr;
  }
  grpc_user.store(pid);
  part = make();
  slot.store(part, std::memory_order_release);
  Parts().push_back(part);
  // After gRPC's own start-up, so that at exit this runs before gRPC's teardown. Once per
  // process image: a forked child inherits the registration, and its pid picks its parts.
  static const bool registered = std::atexit(StopPartsAtExit) == 0;
  (void)registered;
  return part;
}

void ProcessRegistry::Leave(ProcessPart* part) {
  absl::MutexLock lock(&RegistryMutex());
  std::vector<ProcessPart*>& parts = Parts();
  parts.erase(std::remove(parts.begin(), parts.end(), part), parts.end());
}

absl::Status ProcessRegistry::ForkedAfterUse() {
  return absl::UnavailableError(absl::StrCat(
      "the cache was used in process ", grpc_user.load(),
      " before it forked this one; a forked process can only use the cache if its parent "
      "never did"));
}

}  // namespace tlscache::client
