// How tlscache's processes stop: SIGTERM or SIGINT, taken synchronously by one thread, which
// also takes SIGHUP (reload) when the process has something to reload.
#ifndef TLSCACHE_COMMON_SIGNALS_H_
#define TLSCACHE_COMMON_SIGNALS_H_

#include <signal.h>

#include <functional>

namespace tlscache {

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread, and ignores SIGPIPE (a peer closing
// a socket is an error return, not a reason to die). Call it before any other thread exists,
// so that every thread inherits the mask and only WaitForTermination() takes the signals.
sigset_t BlockTerminationSignals();

// Waits for SIGTERM or SIGINT; returns which. Each SIGHUP meanwhile runs `on_hangup` (when
// given) on the calling thread.
int WaitForTermination(const sigset_t& signals, const std::function<void()>& on_hangup = {});

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_SIGNALS_H_
