// Process-wide settings of abseil, which gRPC and tlscache share in a process.
#ifndef TLSCACHE_COMMON_ABSL_RUNTIME_H_
#define TLSCACHE_COMMON_ABSL_RUNTIME_H_

namespace tlscache {

// Debian's abseil is built without NDEBUG, so every absl::Mutex acquisition (gRPC's too)
// records its lock order in a process-wide graph to detect deadlocks: about 5% of the cache
// service's CPU under load, and the same on every lookup in a TLS server. It is a debugging
// aid that release builds of abseil leave off; this turns it off. Idempotent, thread-safe.
void DisableMutexDeadlockDetection();

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_ABSL_RUNTIME_H_
