// ClientAuth: the boundary a server draws with client certificates, kept across the farm.
//
// A server that verifies client certificates resumes a session only where the session's
// client-certificate requirements hold (nginx derives each server block's session ID context
// from its certificate and client CAs for that reason). The farm shares sessions across every
// context of a namespace, so tlscache binds a session to those requirements itself:
//   - ClientAuthDigest names them: the verify mode and depth, the client CA names the server
//     sends and the certificates it trusts. Empty when no client certificate is asked for;
//     equal on identically configured nodes.
//   - A session of a context with client authentication is kept in the cache under
//     FarmSessionKey (the session ID bound to the digest), and its farm tickets are
//     authenticated with a key bound to the digest (FarmTicketHmacKey): nothing made under one
//     set of requirements is found, or decrypted, under another.
//   - A farm-wide session ID context (sid_ctx) is bound to the digest too
//     (FarmSessionIdContext), so the server's own tiers (its cache, its tickets) keep the
//     boundary the override would otherwise erase.
//
// Thread-safety: all functions are thread-safe. A context's CA part is computed on first use
// and kept: configure client authentication before attaching.
#ifndef TLSCACHE_PLUGINS_OPENSSL_CLIENT_AUTH_H_
#define TLSCACHE_PLUGINS_OPENSSL_CLIENT_AUTH_H_

#include <openssl/ssl.h>

#include <array>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace tlscache::openssl {

// Allocates the ex_data index of the digest's part kept on each context, with tlscache's other
// slots (plugins/openssl/ex_data.h): called before the server makes its contexts.
void ReserveClientAuthSlot();

// SHA-256 of the requirements of `ssl` (its verify mode and depth, its context's client CAs
// and trusted certificates); empty when it does not ask for a client certificate.
std::string ClientAuthDigest(SSL* ssl);
// The same for connections as `ctx` makes them.
std::string ClientAuthDigest(SSL_CTX* ctx);

// The cache key of a session: its ID without client authentication, else a 32-byte digest of
// the ID and `digest`.
std::string FarmSessionKey(absl::string_view session_id, absl::string_view digest);

// `sid_ctx` without client authentication, else 32 bytes derived from it and `digest`.
std::string FarmSessionIdContext(absl::string_view sid_ctx, absl::string_view digest);

// `hmac_key` without client authentication, else HMAC-SHA256(hmac_key, digest). The caller
// wipes `out` after use.
void FarmTicketHmacKey(const std::array<uint8_t, 32>& hmac_key, absl::string_view digest,
                       std::array<uint8_t, 32>* out);

}  // namespace tlscache::openssl

#endif  // TLSCACHE_PLUGINS_OPENSSL_CLIENT_AUTH_H_
