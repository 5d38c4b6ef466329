// Names for the threads tlscache starts inside a server process, so that an operator sees them
// as such (top -H, /proc/PID/task/*/comm) and tests can tell them from the server's own.
#ifndef TLSCACHE_COMMON_THREADS_H_
#define TLSCACHE_COMMON_THREADS_H_

#include <pthread.h>

namespace tlscache {

// Every name starts with this; at most 15 characters in all (the kernel's limit).
inline constexpr char kThreadNamePrefix[] = "tlscache-";

// Names the calling thread "tlscache-<role>".
inline void NameThisThread(const char* name) { pthread_setname_np(pthread_self(), name); }

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_THREADS_H_
