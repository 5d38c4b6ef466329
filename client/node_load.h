// The judgement of whose fault a late answer was: the cache's, or this node's own saturated
// CPU. A call that ran out of time while the calling thread spent a tenth of the wait or more
// runnable but without a core is the node's doing, and leaves the circuit breaker as it was;
// on an idle node that wait is microseconds, and a timeout (a slow or black-holed cache)
// counts against the cache. See docs/benchmarks.md, part 4.
//
// Thread-safety: thread-safe; each thread reads its own counter.
#ifndef TLSCACHE_CLIENT_NODE_LOAD_H_
#define TLSCACHE_CLIENT_NODE_LOAD_H_

#include <functional>
#include <optional>

#include "absl/time/time.h"

namespace tlscache::client {

// How long the calling thread has waited, runnable, for a CPU since it started (the second
// field of /proc/thread-self/schedstat); nullopt where the kernel does not say.
std::optional<absl::Duration> ThreadRunQueueWait();
using RunQueueWaitFn = std::function<std::optional<absl::Duration>()>;

// Whether a call that took `elapsed`, begun when the thread's run-queue wait was
// `wait_before`, ran out of time because this node's CPU is saturated.
bool NodeWasBusy(const RunQueueWaitFn& run_queue_wait, std::optional<absl::Duration> wait_before,
                 absl::Duration elapsed);

}  // namespace tlscache::client

#endif  // TLSCACHE_CLIENT_NODE_LOAD_H_
