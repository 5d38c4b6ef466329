// How tlscache's processes stop: SIGTERM or SIGINT, taken synchronously by one thread.
#ifndef TLSCACHE_COMMON_SIGNALS_H_
#define TLSCACHE_COMMON_SIGNALS_H_

#include <signal.h>

namespace tlscache {

// Blocks SIGTERM and SIGINT in the calling thread, and ignores SIGPIPE (a peer closing a
// socket is an error return, not a reason to die). Call it before any other thread exists,
// so that every thread inherits the mask and only WaitForTermination() takes the signals.
sigset_t BlockTerminationSignals();

// Waits for SIGTERM or SIGINT; returns which.
int WaitForTermination(const sigset_t& signals);

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_SIGNALS_H_
