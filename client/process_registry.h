// ProcessRegistry: the process-wide state behind every CacheClient, and its fork and exit
// handling.
//
//   - Each client has one part per process (ProcessPart: its channel and threads), made on
//     the client's first use in that process. A part is never shared across fork(): a child
//     makes its own and leaves the parent's untouched (its threads do not exist there).
//   - gRPC cannot be used in a process forked from one that used it (its threads and pollers
//     stay behind in the parent), so such a child gets no part: it runs without the cache
//     (with one warning) rather than risk a hang in a handshake.
//   - At exit, the parts of the exiting process stop their threads (while the server's own
//     threads may still be in a handshake), before gRPC's own teardown.
//
// Thread-safety: thread-safe; the registry's lock is held across fork() so that a child never
// inherits it locked by a thread it does not have.
#ifndef TLSCACHE_CLIENT_PROCESS_REGISTRY_H_
#define TLSCACHE_CLIENT_PROCESS_REGISTRY_H_

#include <sys/types.h>
#include <unistd.h>

#include <atomic>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace tlscache::client {

// What a client owns in one process.
class ProcessPart {
 public:
  virtual ~ProcessPart() = default;
  // Ends the part's threads; idempotent. What handshakes call afterwards answers as with the
  // cache down.
  virtual void Stop() = 0;
  pid_t pid() const { return pid_; }

 private:
  const pid_t pid_ = getpid();
};

class ProcessRegistry {
 public:
  // The part in `slot` if it is this process's; otherwise, on the first use in this process,
  // the one `make` builds (stored in `slot`); null in a process forked from one that used
  // gRPC. A part inherited from a parent is left, deliberately leaked: destroying it would
  // join threads this process does not have.
  static ProcessPart* Join(std::atomic<ProcessPart*>& slot,
                           absl::FunctionRef<ProcessPart*()> make);
  // Before the owner deletes `part`, in the process that made it.
  static void Leave(ProcessPart* part);
  // Why a forked process cannot use the cache.
  static absl::Status ForkedAfterUse();
};

}  // namespace tlscache::client

#endif  // TLSCACHE_CLIENT_PROCESS_REGISTRY_H_
