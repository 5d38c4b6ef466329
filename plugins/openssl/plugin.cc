#include "plugins/openssl/plugin.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <ctime>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/cache_client.h"
#include "client/node.h"
#include "common/absl_runtime.h"
#include "common/openssl_util.h"
#include "plugins/openssl/client_auth.h"
#include "plugins/openssl/session_codec.h"

namespace tlscache::openssl {
namespace {

using NewCallback = int (*)(SSL*, SSL_SESSION*);
using GetCallback = SSL_SESSION* (*)(SSL*, const unsigned char*, int, int*);
using RemoveCallback = void (*)(SSL_CTX*, SSL_SESSION*);
using InfoCallback = void (*)(const SSL*, int, int);

struct CtxState {
  SSL_CTX* ctx = nullptr;  // the context this state is attached to (it owns the state)
  PluginConfig config;
  std::shared_ptr<client::CacheClient> client;
  // The farm-wide session ID context as set on the context (bound to its client-certificate
  // requirements); empty: the application's own stays.
  std::string sid_ctx;
  // The application's own cache callbacks, found on the context at attach: its cache stays
  // the first tier.
  NewCallback app_new = nullptr;
  GetCallback app_get = nullptr;
  RemoveCallback app_remove = nullptr;
  // The application's info callback on the context, which tlscache's calls first.
  InfoCallback app_info = nullptr;
  // Its tickets are encrypted under the farm's key ring (the process follows the ring).
  bool farm_ring = false;
  PluginCounters counters;
};

// Every state of this process, for the process-wide stats.
absl::Mutex registry_mu(absl::kConstInit);
std::vector<CtxState*>& Registry() ABSL_EXCLUSIVE_LOCKS_REQUIRED(registry_mu) {
  static auto* states = new std::vector<CtxState*>();
  return *states;
}

// States replaced by a second Attach of their context: kept, not counted, for the connections
// that may still be bound to them (one per re-attach, which servers do at a reload at most).
std::vector<CtxState*>& Retired() ABSL_EXCLUSIVE_LOCKS_REQUIRED(registry_mu) {
  static auto* states = new std::vector<CtxState*>();
  return *states;
}

void FreeCtxState(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/, long /*argl*/,
                  void* /*argp*/) {
  if (ptr == nullptr) return;
  {
    absl::MutexLock lock(&registry_mu);
    std::vector<CtxState*>& states = Registry();
    states.erase(std::remove(states.begin(), states.end(), ptr), states.end());
  }
  delete static_cast<CtxState*>(ptr);
}

int CtxIndex() {
  static const int index = NewContextIndex(FreeCtxState);
  return index;
}

// Set on a connection by BindConnection: the state of the context it started on, which
// OpenSSL keeps using for sessions even after the application switches SSL_CTX (SNI).
int SslIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

CtxState* StateOf(SSL_CTX* ctx) {
  if (ctx == nullptr || CtxIndex() < 0) return nullptr;
  return static_cast<CtxState*>(SSL_CTX_get_ex_data(ctx, CtxIndex()));
}

CtxState* StateOf(SSL* ssl) {
  if (SslIndex() >= 0) {
    if (auto* bound = static_cast<CtxState*>(SSL_get_ex_data(ssl, SslIndex()))) return bound;
  }
  return StateOf(SSL_get_SSL_CTX(ssl));
}

// The farm key a session is kept under (FarmSessionKey), on the SSL_SESSION: set when
// tlscache stores it or finds it in the farm, it marks the sessions the farm has and names
// the entry exactly (the key is bound to the client-certificate requirements of the connection
// that made the session, which after SNI are those of the block it chose, not of the context
// OpenSSL names when it removes it). A session the application resumed from its own cache is
// marked with an empty key: the farm has it, under a key that only the connection's final
// requirements (after SNI) give. Not carried into a copy (OpenSSL copies a session for each
// TLS 1.3 ticket: each copy is another session, stored under its own key).
void FreeSessionKey(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/,
                    long /*argl*/, void* /*argp*/) {
  delete static_cast<std::string*>(ptr);
}

int DupSessionKey(CRYPTO_EX_DATA* /*to*/, const CRYPTO_EX_DATA* /*from*/, void** from_d,
                  int /*idx*/, long /*argl*/, void* /*argp*/) {
  *static_cast<void**>(from_d) = nullptr;
  return 1;
}

void ReserveSessionSlot(void* /*parent*/, void* /*ptr*/, CRYPTO_EX_DATA* ad, int idx,
                        long /*argl*/, void* /*argp*/) {
  CRYPTO_set_ex_data(ad, idx, nullptr);  // room made now: setting it later moves nothing
}

int SessionKeyIndex() {
  static const int index = SSL_SESSION_get_ex_new_index(0, nullptr, ReserveSessionSlot,
                                                        DupSessionKey, FreeSessionKey);
  return index;
}

const std::string* SessionKeyOf(const SSL_SESSION* session) {
  if (SessionKeyIndex() < 0) return nullptr;
  return static_cast<const std::string*>(SSL_SESSION_get_ex_data(session, SessionKeyIndex()));
}

void SetSessionKey(SSL_SESSION* session, std::string key) {
  if (SessionKeyIndex() < 0) return;
  auto* previous = static_cast<std::string*>(SSL_SESSION_get_ex_data(session, SessionKeyIndex()));
  if (previous != nullptr && *previous == key) return;
  auto* kept = new std::string(std::move(key));
  if (SSL_SESSION_set_ex_data(session, SessionKeyIndex(), kept) != 1) {
    delete kept;
    return;
  }
  delete previous;
}

// Set while tlscache itself removes a session from OpenSSL's cache because the farm withdrew
// it: the removal callback then tells the farm nothing (it knows).
thread_local bool withdrawing = false;

// The farm withdrew `key` of `ns` (deleted or consumed through another node, or found dead by
// a check): OpenSSL's own cache (and the application's, through its removal callback) of every
// context on `client` that uses `ns` drops it too, so that it resumes nowhere. The session is
// found there by its TLS session ID: `tls_session_id` when the deleting node gave it, else the
// key itself where the key is the ID (a context without client authentication).
void Withdraw(const client::CacheClient* client, absl::string_view ns, absl::string_view key,
              absl::string_view tls_session_id) {
  if (key.empty()) {
    // Withdrawals were lost for this process (it fell too far behind its node's): every
    // session of the namespace in OpenSSL's caches goes, since any of them may be withdrawn.
    withdrawing = true;
    absl::MutexLock lock(&registry_mu);
    for (CtxState* state : Registry()) {
      if (state->client.get() == client && state->config.ns == ns) {
        SSL_CTX_flush_sessions(state->ctx, std::numeric_limits<long>::max());
      }
    }
    withdrawing = false;
    return;
  }
  const absl::string_view id = tls_session_id.empty() ? key : tls_session_id;
  if (id.empty() || id.size() > SSL_MAX_SSL_SESSION_ID_LENGTH) return;
  SslSessionPtr probe(SSL_SESSION_new());
  if (probe == nullptr ||
      SSL_SESSION_set1_id(probe.get(), reinterpret_cast<const unsigned char*>(id.data()),
                          static_cast<unsigned int>(id.size())) != 1) {
    return;
  }
  withdrawing = true;
  absl::MutexLock lock(&registry_mu);
  for (CtxState* state : Registry()) {
    if (state->client.get() != client || state->config.ns != ns) continue;
    // Without the TLS session ID, a context whose keys are digests cannot be searched.
    if (tls_session_id.empty() && !ClientAuthDigest(state->ctx).empty()) continue;
    // OpenSSL finds a session by protocol version and ID.
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
      SSL_SESSION_set_protocol_version(probe.get(), version);
      SSL_CTX_remove_session(state->ctx, probe.get());
    }
  }
  withdrawing = false;
}

// A session this connection found in the farm, looked at again once OpenSSL has kept it.
// OpenSSL adds what the get callback returns to its own cache after the callback has returned:
// a withdrawal that arrives in between finds nothing to remove there, and would leave the
// session resumable on this node for its lifetime. `mark` was taken before the lookup.
struct FarmLookup {
  CtxState* state = nullptr;
  std::string key;
  std::string tls_session_id;
  uint64_t mark = 0;
};

// Withdraws the session again if the farm withdrew it since the lookup: a withdrawal after
// this finds it in OpenSSL's cache and removes it there itself.
void Recheck(const FarmLookup& lookup) {
  const CtxState& state = *lookup.state;
  if (state.client->WithdrawnSince(state.config.ns, lookup.key, lookup.mark)) {
    Withdraw(state.client.get(), state.config.ns, lookup.key, lookup.tls_session_id);
  }
}

// A connection freed before its handshake was done (OpenSSL kept the session all the same).
void FreeFarmLookup(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/,
                    long /*argl*/, void* /*argp*/) {
  std::unique_ptr<FarmLookup> lookup(static_cast<FarmLookup*>(ptr));
  if (lookup == nullptr) return;
  try {
    Recheck(*lookup);
  } catch (...) {
  }
}

int LookupIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, FreeFarmLookup);
  return index;
}

// Takes the connection's farm lookup off it and looks at it again (once its handshake is done,
// or before another lookup on a connection the application reuses).
void RecheckLookupOf(SSL* ssl) {
  if (LookupIndex() < 0) return;
  std::unique_ptr<FarmLookup> lookup(static_cast<FarmLookup*>(SSL_get_ex_data(ssl, LookupIndex())));
  if (lookup == nullptr) return;
  SSL_set_ex_data(ssl, LookupIndex(), nullptr);
  Recheck(*lookup);
}

// One client (one channel, one sender) per cache address and credentials in the process,
// however many contexts use it: a server with many virtual hosts has many SSL_CTXs.
std::shared_ptr<client::CacheClient> SharedClient(const client::ClientOptions& options,
                                                  absl::Status* error) {
  ABSL_CONST_INIT static absl::Mutex mu(absl::kConstInit);
  static auto* clients = new std::map<std::string, std::weak_ptr<client::CacheClient>>();
  const std::string key = absl::StrCat(
      options.addr, "|", absl::ToInt64Microseconds(options.lookup_timeout), "|",
      absl::ToInt64Microseconds(options.connect_timeout), "|", options.near_cache_bytes, "|",
      options.ca_file, "|", options.cert_file, "|", options.key_file);
  absl::MutexLock lock(&mu);
  if (auto found = clients->find(key); found != clients->end()) {
    if (std::shared_ptr<client::CacheClient> live = found->second.lock()) return live;
  }
  absl::StatusOr<std::shared_ptr<client::CacheClient>> created =
      client::CacheClient::Create(options);
  if (!created.ok()) {
    *error = created.status();
    return nullptr;
  }
  const client::CacheClient* raw = created->get();
  (*created)->SetWithdrawnListener(
      [raw](absl::string_view ns, absl::string_view farm_key, absl::string_view tls_session_id) {
        Withdraw(raw, ns, farm_key, tls_session_id);
      });
  (*clients)[key] = *created;
  return *created;
}

// TLS 1.3 anti-replay as OpenSSL does it: early data accepted and not switched off.
bool AntiReplay(uint32_t max_early_data, uint64_t options) {
  return max_early_data > 0 && (options & SSL_OP_NO_ANTI_REPLAY) == 0;
}

// With anti-replay, the farm must be the only place a ticket can be found, so that consuming
// it there is final: OpenSSL's internal lookup would let the node that issued a ticket
// accept it again after another node consumed it.
void SkipInternalLookupForAntiReplay(SSL_CTX* ctx) {
  if (!AntiReplay(SSL_CTX_get_max_early_data(ctx), SSL_CTX_get_options(ctx))) return;
  const long mode = SSL_CTX_get_session_cache_mode(ctx);
  if ((mode & SSL_SESS_CACHE_NO_INTERNAL_LOOKUP) == 0) {
    SSL_CTX_set_session_cache_mode(ctx, mode | SSL_SESS_CACHE_NO_INTERNAL_LOOKUP);
  }
}

absl::string_view SessionId(const SSL_SESSION* session) {
  unsigned int len = 0;
  const unsigned char* id = SSL_SESSION_get_id(session, &len);
  return absl::string_view(reinterpret_cast<const char*>(id), len);
}

void StoreInFarm(SSL* ssl, SSL_SESSION* session, CtxState& state) {
  // A TLS 1.3 stateless ticket carries the session itself: nothing the cache could resume.
  const bool stateful_tickets = (SSL_get_options(ssl) & SSL_OP_NO_TICKET) != 0 ||
                                AntiReplay(SSL_get_max_early_data(ssl), SSL_get_options(ssl));
  const absl::string_view id = SessionId(session);
  if ((SSL_SESSION_get_protocol_version(session) == TLS1_3_VERSION && !stateful_tickets) ||
      id.empty() || !SSL_SESSION_is_resumable(session)) {
    state.counters.skipped++;
    return;
  }
  SkipInternalLookupForAntiReplay(SSL_get_SSL_CTX(ssl));
  const long left = SSL_SESSION_get_time(session) + SSL_SESSION_get_timeout(session) -
                    static_cast<long>(std::time(nullptr));
  absl::StatusOr<SecretBytes> encoded = EncodeSession(session);
  if (!encoded.ok() || left <= 0) {
    state.counters.skipped++;
    return;
  }
  const uint32_t ttl =
      static_cast<uint32_t>(std::min<long>(left, std::numeric_limits<uint32_t>::max()));
  std::string key = FarmSessionKey(id, ClientAuthDigest(ssl));
  SetSessionKey(session, key);
  // A session the farm alone carries (no stateless ticket) is awaited: its client may come
  // back to another node as soon as it has the reply, or the TLS 1.3 ticket, that this
  // handshake is about to send. Bounded by the lookup deadline; see client/cache_client.h.
  state.client->Put(state.config.ns, key, *std::move(encoded), ttl,
                    /*await_ack=*/stateful_tickets);
  state.counters.stored++;
}

int NewSessionCallback(SSL* ssl, SSL_SESSION* session) noexcept {
  CtxState* state = StateOf(ssl);
  if (state == nullptr) return 0;
  // The application's cache first. Its answer (1: it kept OpenSSL's reference) is ours: we
  // keep no reference, and copy what we store before returning.
  const int kept = state->app_new != nullptr ? state->app_new(ssl, session) : 0;
  try {
    StoreInFarm(ssl, session, *state);
  } catch (...) {
    // Out of memory at worst: the session is simply not shared.
  }
  return kept;
}

SSL_SESSION* LookUpInFarm(SSL* ssl, absl::string_view session_id, CtxState& state) {
  const bool consume = SSL_version(ssl) == TLS1_3_VERSION &&
                       AntiReplay(SSL_get_max_early_data(ssl), SSL_get_options(ssl));
  std::string key = FarmSessionKey(session_id, ClientAuthDigest(ssl));
  RecheckLookupOf(ssl);
  const uint64_t mark = state.client->WithdrawalMark(state.config.ns);
  absl::StatusOr<SecretBytes> bytes = state.client->Get(state.config.ns, key, consume);
  if (!bytes.ok()) return nullptr;
  absl::StatusOr<SslSessionPtr> session = DecodeSession(bytes->view(), session_id);
  if (!session.ok()) {
    state.counters.rejected++;
    return nullptr;
  }
  if (LookupIndex() >= 0) {
    auto lookup = std::make_unique<FarmLookup>(
        FarmLookup{&state, key, std::string(session_id), mark});
    if (SSL_set_ex_data(ssl, LookupIndex(), lookup.get()) == 1) lookup.release();
  }
  SetSessionKey(session->get(), std::move(key));  // the session is still ours alone
  state.counters.resumed++;
  return session->release();
}

SSL_SESSION* GetSessionCallback(SSL* ssl, const unsigned char* id, int id_len, int* copy) noexcept {
  CtxState* state = StateOf(ssl);
  if (state == nullptr) {
    *copy = 0;
    return nullptr;
  }
  if (state->app_get != nullptr) {
    if (SSL_SESSION* found = state->app_get(ssl, id, id_len, copy)) {
      // The application made this copy (from its own cache) for this connection: marked, so
      // that a fatal alert on it deletes it from the farm too.
      if (*copy == 0 && id_len > 0 && id_len <= SSL_MAX_SSL_SESSION_ID_LENGTH) {
        try {
          SetSessionKey(found, "");
        } catch (...) {
        }
      }
      return found;
    }
  }
  *copy = 0;  // the session returned is ours to give: OpenSSL takes our reference
  if (id_len <= 0 || id_len > SSL_MAX_SSL_SESSION_ID_LENGTH) return nullptr;
  try {
    return LookUpInFarm(ssl, absl::string_view(reinterpret_cast<const char*>(id), id_len), *state);
  } catch (...) {
    return nullptr;
  }
}

// Deletes `session` from the farm, under the key it is kept there by (one the mark names, or
// else the key `digest`, the requirements of the connection or the context, gives); nothing
// for a session the farm does not have (not marked: a handshake that failed before its session
// was stored), or that expired (its TTL there ends it too). Said once per key and thread: the
// fatal-alert path reaches here twice, through the removal and the info callbacks.
void DeleteFromFarm(SSL_SESSION* session, CtxState& state, const std::string& digest) {
  const std::string* mark = SessionKeyOf(session);
  if (mark == nullptr) return;
  const long left = SSL_SESSION_get_time(session) + SSL_SESSION_get_timeout(session) -
                    static_cast<long>(std::time(nullptr));
  if (left <= 0) return;
  const absl::string_view id = SessionId(session);
  const std::string key = mark->empty() ? FarmSessionKey(id, digest) : *mark;
  thread_local std::string last_deleted;
  if (last_deleted == key) return;
  last_deleted = key;
  state.client->Delete(state.config.ns, key, key == id ? absl::string_view() : id,
                       absl::Seconds(left));
  state.counters.deleted++;
}

// Whether OpenSSL may be evicting `ctx`'s least recently used session to make room (which
// leaves the session good for the rest of the farm): only with an internal cache that stores
// and is full. Not otherwise: nginx's default `ssl_session_cache none` stores nothing
// internally (its size of 1 is never reached), nor does a server whose own cache is external.
bool MayEvict(SSL_CTX* ctx) {
  if ((SSL_CTX_get_session_cache_mode(ctx) & SSL_SESS_CACHE_NO_INTERNAL_STORE) != 0) return false;
  const long size = SSL_CTX_sess_get_cache_size(ctx);
  return size > 0 && SSL_CTX_sess_number(ctx) + 1 >= size;
}

// OpenSSL drops a session nobody may resume (a fatal alert, RFC 5246 7.2.2; a connection freed
// without a shutdown; a consumed ticket; the application) or one it evicts. The farm drops
// the former too. With an internal cache that is full the two cannot be told apart here, and
// the session stays in the farm: the fatal alerts, the case that matters, are seen by the info
// callback instead.
void RemoveSessionCallback(SSL_CTX* ctx, SSL_SESSION* session) noexcept {
  CtxState* state = StateOf(ctx);
  if (state == nullptr) return;
  if (state->app_remove != nullptr) state->app_remove(ctx, session);
  try {
    if (withdrawing || MayEvict(ctx)) return;
    DeleteFromFarm(session, *state, ClientAuthDigest(ctx));
  } catch (...) {
  }
}

// A fatal alert, sent or received, ends the connection's session everywhere (RFC 5246 7.2.2),
// whatever the removal callback could tell. A handshake done looks again at the session the
// connection found in the farm (FarmLookup). The application's own info callback (on the
// context the connection is on now) is called first, as OpenSSL would have.
void InfoCallbackOf(const SSL* ssl, int where, int ret) noexcept {
  SSL* s = const_cast<SSL*>(ssl);
  if (CtxState* here = StateOf(SSL_get_SSL_CTX(s)); here != nullptr && here->app_info != nullptr) {
    here->app_info(ssl, where, ret);
  }
  if ((where & SSL_CB_HANDSHAKE_DONE) != 0) {
    try {
      RecheckLookupOf(s);
    } catch (...) {
    }
  }
  if ((where & SSL_CB_ALERT) == 0 || (ret >> 8) != SSL3_AL_FATAL) return;
  try {
    CtxState* state = StateOf(s);
    SSL_SESSION* session = SSL_get_session(s);
    if (state == nullptr || session == nullptr) return;
    DeleteFromFarm(session, *state, ClientAuthDigest(s));
  } catch (...) {
  }
}

// tickets=farm: RFC 5077 tickets (TLS 1.2) and TLS 1.3 stateless tickets under the farm's key
// ring. Encrypts with the ACTIVE key; decrypts with any key of the ring found by name, asking
// for a new ticket (2) under TLS 1.3 always (a client uses each TLS 1.3 ticket once, RFC 8446
// appendix C.4, and OpenSSL sends a resumed connection one only on 2) and under TLS 1.2 when
// that key is no longer the ACTIVE one; 0 (no ticket issued, or a full handshake) while this
// process has no ring yet, or for a name the ring does not have. A connection that asks for a
// client certificate MACs its tickets with a key bound to those requirements (client_auth.h).
int TicketKeyCallback(SSL* ssl, unsigned char name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                      EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int enc) noexcept {
  try {
    CtxState* state = StateOf(ssl);
    if (state == nullptr) return 0;
    std::shared_ptr<const client::TicketKeySnapshot> ring =
        state->client->TicketKeys(state->config.ns);
    if (ring == nullptr) return 0;
    const TicketKeyRecord* key = enc == 1 ? ring->Active() : ring->Find(name, absl::Now());
    if (key == nullptr) return 0;
    std::array<uint8_t, 32> hmac_key;
    FarmTicketHmacKey(key->hmac_key, ClientAuthDigest(ssl), &hmac_key);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, hmac_key.data(), hmac_key.size()),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
        OSSL_PARAM_construct_end()};
    const int mac_set = EVP_MAC_CTX_set_params(mac, params);
    OPENSSL_cleanse(hmac_key.data(), hmac_key.size());
    if (mac_set != 1) return 0;
    if (enc == 1) {
      if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1) return 0;
      std::memcpy(name, key->name.data(), key->name.size());
      if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes_key.data(), iv) != 1) {
        return 0;
      }
      state->counters.tickets_issued++;
      return 1;
    }
    if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes_key.data(), iv) != 1) {
      return 0;
    }
    return key != ring->Active() || SSL_version(ssl) == TLS1_3_VERSION ? 2 : 1;
  } catch (...) {
    return 0;
  }
}

}  // namespace

absl::Status Attach(SSL_CTX* ctx, const PluginConfig& config, AttachReport* report,
                    bool server_ticket_keys) {
  if (ctx == nullptr) return absl::InvalidArgumentError("no SSL_CTX");
  if (CtxIndex() < 0 || SslIndex() < 0 || LookupIndex() < 0) {
    return absl::InternalError("no ex_data index");
  }
  // The server said no session resumes here (nginx's ssl_session_cache off): that stays so.
  if ((SSL_CTX_get_session_cache_mode(ctx) & SSL_SESS_CACHE_SERVER) == 0) {
    return absl::FailedPreconditionError(
        "the server turned session caching off on this context (SSL_SESS_CACHE_OFF)");
  }
  // Lookups run inside handshakes: no debugging bookkeeping on their locks.
  DisableMutexDeadlockDetection();
  client::ClientOptions options;
  options.addr = config.addr;
  options.lookup_timeout = config.timeout;
  options.connect_timeout = config.connect_timeout;
  options.near_cache_bytes = config.near_cache_bytes;
  options.ca_file = config.ca_file;
  options.cert_file = config.cert_file;
  options.key_file = config.key_file;
  absl::Status error;
  std::shared_ptr<client::CacheClient> shared = SharedClient(options, &error);
  if (shared == nullptr) return error;
  auto state = std::make_unique<CtxState>();
  state->ctx = ctx;
  state->config = config;
  state->client = std::move(shared);
  // Computed here, off the handshakes, and kept on the context for them (client_auth.h).
  const std::string client_auth = ClientAuthDigest(ctx);
  if (!config.sid_ctx.empty()) state->sid_ctx = FarmSessionIdContext(config.sid_ctx, client_auth);
  CtxState* previous = StateOf(ctx);
  if (previous != nullptr) {
    // Attached before: the callbacks on the context are ours; the application's are these.
    state->app_new = previous->app_new;
    state->app_get = previous->app_get;
    state->app_remove = previous->app_remove;
    state->app_info = previous->app_info;
  } else {
    state->app_new = SSL_CTX_sess_get_new_cb(ctx);
    state->app_get = SSL_CTX_sess_get_get_cb(ctx);
    state->app_remove = SSL_CTX_sess_get_remove_cb(ctx);
    state->app_info = SSL_CTX_get_info_callback(ctx);
  }

  if (!state->sid_ctx.empty() &&
      SSL_CTX_set_session_id_context(ctx,
                                     reinterpret_cast<const unsigned char*>(state->sid_ctx.data()),
                                     static_cast<unsigned int>(state->sid_ctx.size())) != 1) {
    return absl::InternalError(absl::StrCat("sid_ctx: ", ConsumeOpenSslErrors()));
  }
  // Tickets stay on or off as the server set them (tickets=off alone turns them off). The
  // farm's key ring encrypts them in place of keys OpenSSL drew for this node alone (which no
  // other node can decrypt), or, with tickets=farm, in place of keys the server configured.
  const bool tickets_on = (SSL_CTX_get_options(ctx) & SSL_OP_NO_TICKET) == 0;
  const bool ring = config.tickets == TicketMode::kFarm ||
                    (config.tickets == TicketMode::kApplication && !server_ticket_keys);
  if (report != nullptr) {
    report->tickets_turned_off = config.tickets == TicketMode::kOff && tickets_on;
    report->application_cache = previous == nullptr ? SSL_CTX_sess_get_get_cb(ctx) != nullptr
                                                    : previous->app_get != nullptr;
    report->tickets = config.tickets == TicketMode::kOff || !tickets_on ? AttachReport::kNoTickets
                      : ring                                            ? AttachReport::kFarmRing
                                                                        : AttachReport::kServerKeys;
    report->replaced_server_keys = ring && server_ticket_keys;
  }
  if (config.tickets == TicketMode::kOff) SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  if (ring && config.tickets != TicketMode::kOff) {
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, TicketKeyCallback);
    state->farm_ring = tickets_on;
  }
  SkipInternalLookupForAntiReplay(ctx);
  SSL_CTX_sess_set_new_cb(ctx, NewSessionCallback);
  SSL_CTX_sess_set_get_cb(ctx, GetSessionCallback);
  SSL_CTX_sess_set_remove_cb(ctx, RemoveSessionCallback);
  SSL_CTX_set_info_callback(ctx, InfoCallbackOf);
  // Last: the context counts as attached (IsAttached, which the preload's other connections
  // wait on) only once everything above is set, so no handshake on it runs while it changes.
  // Until then the callbacks find no state and step aside.
  if (SSL_CTX_set_ex_data(ctx, CtxIndex(), state.get()) != 1) {
    return absl::InternalError("SSL_CTX_set_ex_data failed");
  }
  {
    // One entry per context: a replaced state leaves the registry for Retired().
    absl::MutexLock lock(&registry_mu);
    std::vector<CtxState*>& states = Registry();
    if (previous != nullptr) {
      states.erase(std::remove(states.begin(), states.end(), previous), states.end());
      Retired().push_back(previous);
    }
    states.push_back(state.get());
  }
  state.release();
  return absl::OkStatus();
}

void ReserveContextSlots() {
  (void)CtxIndex();
  (void)SslIndex();
  (void)LookupIndex();
  ReserveClientAuthSlot();
}

bool IsAttached(SSL_CTX* ctx) { return StateOf(ctx) != nullptr; }

absl::Status PrepareNode(const PluginConfig& config) {
  if (config.near_cache_bytes == 0) return absl::OkStatus();
  return client::Node::Prepare(config.near_cache_bytes);
}

void Prepare(SSL_CTX* ctx) {
  if (CtxState* state = StateOf(ctx)) state->client->Prepare(state->config.ns, state->farm_ring);
}

bool IsTlscacheTicketCallback(TicketKeyEvpCallback callback) {
  return callback == TicketKeyCallback;
}

void BindConnection(SSL* ssl) {
  if (SslIndex() < 0 || SSL_get_ex_data(ssl, SslIndex()) != nullptr) return;
  CtxState* state = StateOf(SSL_get_SSL_CTX(ssl));
  if (state == nullptr) return;
  SSL_set_ex_data(ssl, SslIndex(), state);
  // SSL_new copied the context's settings into the connection: one made before Attach (the
  // very connection the preload attaches on) gets tlscache's now, before its handshake.
  if (!state->sid_ctx.empty()) {
    SSL_set_session_id_context(ssl, reinterpret_cast<const unsigned char*>(state->sid_ctx.data()),
                               static_cast<unsigned int>(state->sid_ctx.size()));
  }
  if (state->config.tickets == TicketMode::kOff) SSL_set_options(ssl, SSL_OP_NO_TICKET);
}

bool GetPluginStats(SSL_CTX* ctx, PluginStats* stats) {
  CtxState* state = StateOf(ctx);
  if (state == nullptr) return false;
  *stats = state->counters.Read();
  return true;
}

namespace {

// Contexts that share a client (one per cache address in the process) share its counters and
// near cache: each client is counted once.
struct Totals {
  ProcessStats stats;
  std::vector<const client::CacheClient*> clients;
};

void Add(const CtxState& state, Totals* totals) {
  ++totals->stats.contexts;
  totals->stats.plugin += state.counters.Read();
  totals->stats.handshakes += static_cast<uint64_t>(SSL_CTX_sess_accept_good(state.ctx));
  totals->stats.handshakes_resumed += static_cast<uint64_t>(SSL_CTX_sess_hits(state.ctx));
  if (std::find(totals->clients.begin(), totals->clients.end(), state.client.get()) !=
      totals->clients.end()) {
    return;
  }
  totals->clients.push_back(state.client.get());
  totals->stats.client += state.client->stats();
}

ProcessStats ProcessTotals() {
  Totals totals;
  absl::MutexLock lock(&registry_mu);
  for (const CtxState* state : Registry()) Add(*state, &totals);
  return totals.stats;
}

}  // namespace

absl::StatusOr<std::string> StatsJson(SSL_CTX* ctx) {
  if (ctx == nullptr) return openssl::StatsJson(ProcessTotals());
  const CtxState* state = StateOf(ctx);
  if (state == nullptr) return absl::NotFoundError("tlscache is not attached to this SSL_CTX");
  Totals totals;
  Add(*state, &totals);
  return openssl::StatsJson(totals.stats);
}

std::string StatsLine() { return openssl::StatsLine(ProcessTotals()); }

std::vector<TextfileSample> StatsTextfile() { return openssl::StatsTextfile(ProcessTotals()); }

}  // namespace tlscache::openssl
