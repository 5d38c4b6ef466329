#include "common/absl_runtime.h"

#include "absl/synchronization/mutex.h"

namespace tlscache {

void DisableMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace tlscache
