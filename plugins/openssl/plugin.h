// The OpenSSL side of tlscache: the session callbacks installed by tlscache_attach.
//
// OpenSSL's internal cache, and any cache callbacks the application installed, stay the first
// tier; tlscache is the second:
//   new_session_cb      stores the session in the farm (queued, never blocks)
//   get_session_cb      asks the farm on an internal miss: the process's near cache (the
//                       sessions the farm pushed to it), then the service (bounded by the
//                       lookup deadline)
//   remove_session_cb   deletes a session OpenSSL dropped as unusable (queued)
//   info_callback       deletes, on a fatal alert, the connection's session from the farm
//                       (RFC 5246 7.2.2), whatever the removal callback could tell
// TLS 1.3: with tickets=off the context issues stateful tickets (SSL_OP_NO_TICKET), whose
// identities go through the same callbacks; stateless tickets are never stored (the cache
// could not resume them). When the context accepts early data, TLS 1.3 lookups consume the
// entry, so a ticket resumes at most once across the farm, and the internal lookup is
// skipped so that the farm's copy is the only one that counts. A session the farm withdraws
// (deleted or consumed through another node) is also removed from OpenSSL's internal cache of
// every context on that namespace: found by its TLS session ID, which a deletion carries
// when its farm key is not that ID (client-certificate contexts); a copy a check withdrew
// (after a gap) carries only its farm key, and reaches only contexts that ask for no client
// certificate.
#ifndef TLSCACHE_PLUGINS_OPENSSL_PLUGIN_H_
#define TLSCACHE_PLUGINS_OPENSSL_PLUGIN_H_

#include <openssl/ssl.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "plugins/openssl/config.h"
#include "plugins/openssl/ex_data.h"
#include "plugins/openssl/plugin_stats.h"

namespace tlscache::openssl {

// What Attach found on the context and did, for the preload library's one-line reports.
struct AttachReport {
  bool tickets_turned_off = false;  // tickets=off turned the application's tickets off
  bool application_cache = false;   // the application has its own cache callbacks
  // The context's session tickets now: none (sessions go through the cache: TLS 1.2 session
  // IDs, TLS 1.3 stateful tickets), under the farm's key ring, or under keys the server
  // configured itself (which no other node decrypts unless it has them too).
  enum Tickets { kNoTickets, kFarmRing, kServerKeys };
  Tickets tickets = kNoTickets;
  bool replaced_server_keys = false;  // tickets=farm put the ring in place of the server's keys
};

// The signature of SSL_CTX_set_tlsext_ticket_key_evp_cb's callback.
using TicketKeyEvpCallback = int (*)(SSL*, unsigned char*, unsigned char*, EVP_CIPHER_CTX*,
                                     EVP_MAC_CTX*, int);

// Installs tlscache's callbacks on `ctx`. Callbacks the application installed before stay
// the first tier: each of ours calls the application's first. Attaching again replaces the
// configuration. FailedPrecondition, and the context left alone, when the application turned
// its session cache off (SSL_SESS_CACHE_OFF): it said no session resumes there.
// What it sets on the context: the session callbacks and the info callback (which sees fatal
// alerts); with tickets=off SSL_OP_NO_TICKET; the ticket key callback (the farm's ring) with
// tickets=farm, or with the application's choice when the server has no keys of its own
// (`server_ticket_keys`: it configured a ticket key callback or keys); tickets are never
// turned on. With sid_ctx the session ID context (bound to the context's client-certificate
// requirements, client_auth.h); with early data (anti-replay)
// SSL_SESS_CACHE_NO_INTERNAL_LOOKUP. Nothing connects (see Prepare).
absl::Status Attach(SSL_CTX* ctx, const PluginConfig& config, AttachReport* report = nullptr,
                    bool server_ticket_keys = false);
// Whether `callback` is tlscache's own ticket key callback (the farm's ring).
bool IsTlscacheTicketCallback(TicketKeyEvpCallback callback);
bool IsAttached(SSL_CTX* ctx);

// Allocates tlscache's ex_data indices now. Every SSL_CTX made afterwards has room for its slot
// from the start, so attaching it later, while other threads serve connections on it, never
// moves its ex_data. The preload calls it when it is loaded, before the server makes any
// context; a context made before is still attached, by growing its ex_data.
void ReserveContextSlots();

// Makes the node's near cache, shared by every process this one forks afterwards (client/node.h),
// of `config`'s near_cache_mb: a pre-fork server's master calls it before it forks its
// workers. Once per process: the first call's size stays. Without it each process has its own.
absl::Status PrepareNode(const PluginConfig& config);

// Connects this process to the cache of `ctx` now, off the handshake path (and when its
// tickets are under the farm's key ring, starts following the ring). Never blocks. For a process that serves
// `ctx` itself: a pre-fork server calls it in each worker, never in the master.
void Prepare(SSL_CTX* ctx);

// Ties a server connection to the tlscache of the context it was created on, so that its
// sessions still go through tlscache after the application switches it to another SSL_CTX
// (SNI): OpenSSL keeps using the first context's session cache. A connection made before the
// context was attached also gets what Attach set on the context (session ID context, ticket
// option). A no-op when that context has no tlscache.
void BindConnection(SSL* ssl);

// The counters of the plugin on one context, for tests; false if `ctx` has no tlscache.
bool GetPluginStats(SSL_CTX* ctx, PluginStats* stats);

// The counters of `ctx` (plugin and cache client) as a JSON object, or of every context
// attached in this process when `ctx` is null (then "contexts" says how many). NotFound when
// `ctx` has no tlscache.
absl::StatusOr<std::string> StatsJson(SSL_CTX* ctx);
// The same counters for every context of this process, as one line for a log.
std::string StatsLine();
// The same as node_exporter textfile samples.
std::vector<TextfileSample> StatsTextfile();

}  // namespace tlscache::openssl

#endif  // TLSCACHE_PLUGINS_OPENSSL_PLUGIN_H_
