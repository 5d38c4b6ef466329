/*
 * tlscache for OpenSSL servers: a farm-wide TLS session cache behind OpenSSL's own.
 *
 * After tlscache_attach(ctx, "addr=cache:7700;namespace=edge"), every session a handshake on
 * `ctx` creates is also stored in the tlscache service (in the background), and a session
 * that OpenSSL's own cache does not have is looked up there (for at most timeout_ms). Any
 * failure of the cache means "no session": the handshake goes on as a full one, never fails.
 *
 * Call tlscache_attach before the SSL_CTX handles connections, after its client authentication
 * is configured; it may be called in a master process that forks workers (nothing is
 * connected until a worker's first handshake, or tlscache_prepare in the worker).
 * All functions are thread-safe.
 *
 * Strings: `config` is read during the call only. Every string returned is owned by the
 * library; never free it. It stays valid until the next tlscache call on the same thread (or
 * the thread's exit), and is overwritten by it: copy what must outlive that.
 *
 * Stability: the symbols are versioned (TLSCACHE_1); a program built against this header runs
 * with any libtlscache_openssl.so.1 whose tlscache_abi_version() is at least the
 * TLSCACHE_ABI_VERSION it was built with.
 */
#ifndef TLSCACHE_OPENSSL_H_
#define TLSCACHE_OPENSSL_H_

#include <openssl/ssl.h>

/* The ABI this header describes. Grows by one when a function is added; the existing ones
 * never change. */
#define TLSCACHE_ABI_VERSION 2

#ifdef __cplusplus
#define TLSCACHE_NOEXCEPT noexcept
extern "C" {
#else
#define TLSCACHE_NOEXCEPT
#endif

/*
 * Installs tlscache's session callbacks on a server SSL_CTX. `config` is "key=value;..."
 * with the keys addr (required), namespace, timeout_ms, connect_timeout_ms, sid_ctx, tickets,
 * ca_file, cert_file, key_file. Returns 1 on success; 0 if the config is bad or the context's
 * session cache is off (SSL_SESS_CACHE_OFF): ctx is left unchanged and tlscache_last_error()
 * says why. Attaching again replaces the configuration (the context is counted once); do it
 * before the context serves handshakes, not while it does.
 */
int tlscache_attach(SSL_CTX *ctx, const char *config) TLSCACHE_NOEXCEPT;

/*
 * Connects this process to the cache of an attached `ctx` now, in the background (and with
 * tickets=farm fetches the key ring), so that its first handshakes find the cache ready.
 * Never blocks. Call it in the process that serves `ctx`: after fork() in each worker of a
 * pre-fork server (never in the master), or after tlscache_attach in a server that does not
 * fork. Without it, a process connects on its first handshake, which then waits for at most
 * connect_timeout_ms. Returns 1; 0 if `ctx` has no tlscache (tlscache_last_error() says so).
 */
int tlscache_prepare(SSL_CTX *ctx) TLSCACHE_NOEXCEPT;

/*
 * For a pre-fork server: call it in the master process once, before it forks its workers
 * (before or after tlscache_attach), with the config its contexts are attached with (only near_cache_mb is read from it). It
 * maps the node's near cache (near_cache_mb, default 16) in memory that every process forked
 * afterwards shares, and no other process can map: a session one worker stores is found by
 * its siblings at once, one worker at a time follows the farm's pushes for all of them, and
 * a worker killed at any moment wedges none of the others. Nothing connects. Without it, each
 * process keeps a near cache and a follower of its own (right for a threaded server: one
 * process is one node). Calling it again does nothing. Returns 1; 0 if the config is bad or
 * the memory could not be mapped (tlscache_last_error() says why; the processes then have a
 * near cache each). Since TLSCACHE_ABI_VERSION 2.
 */
int tlscache_prepare_node(const char *config) TLSCACHE_NOEXCEPT;

/*
 * The counters of `ctx`, or of every context attached in this process when `ctx` is NULL, as
 * one JSON object (valid until the next tlscache_stats call on this thread):
 *   {"contexts":1,"sessions":{"stored":..,"skipped":..,"resumed":..,"rejected":..,
 *    "deleted":..},"lookups":{"hits":..,"misses":..,"errors":..,"timeouts":..,
 *    "busy_timeouts":..,"skipped":..},"stores":{"sent":..,"failed":..,"dropped":..,"late":..,
 *    "resent":..},"near_cache":{..},"push":{..},"tickets":{"issued":..},
 *    "handshakes":{"accepted":..,"resumed":..},"breaker":"closed"}
 * ("late": stores a handshake awaited that were not acknowledged within timeout_ms;
 * "busy_timeouts": of the timeouts, those this node's own saturated CPU caused;
 * "handshakes": those OpenSSL completed on the contexts, and of them those resumed, by any
 * means)
 * Counters are this process's since it attached (or forked). NULL if `ctx` has no tlscache
 * (tlscache_last_error() says so).
 */
const char *tlscache_stats(SSL_CTX *ctx) TLSCACHE_NOEXCEPT;

/* Why the last tlscache call on this thread failed; "" if it did not. Never NULL; owned by the
 * library, valid until the next tlscache call on this thread. */
const char *tlscache_last_error(void) TLSCACHE_NOEXCEPT;

/* The TLSCACHE_ABI_VERSION of the library loaded, for a program to check at run time. */
int tlscache_abi_version(void) TLSCACHE_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* TLSCACHE_OPENSSL_H_ */
