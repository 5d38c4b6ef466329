// Acknowledgement: a Put's acknowledgement, for the caller that awaits it (CacheClient::Put
// with await_ack), completed once by whichever path carried the Put (the Follow stream or a
// unary call), answered or not.
//
// Thread-safety: thread-safe.
#ifndef TLSCACHE_CLIENT_ACKNOWLEDGEMENT_H_
#define TLSCACHE_CLIENT_ACKNOWLEDGEMENT_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tlscache::client {

class Acknowledgement {
 public:
  // The first call decides; later ones change nothing.
  void Complete(bool ok) {
    absl::MutexLock lock(&mu_);
    if (done_) return;
    done_ = true;
    ok_ = ok;
  }
  // True when the cache acknowledged the call by `deadline`.
  bool Await(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithDeadline(absl::Condition(&done_), deadline);
    return done_ && ok_;
  }

 private:
  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool ok_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tlscache::client

#endif  // TLSCACHE_CLIENT_ACKNOWLEDGEMENT_H_
