// The bytes the plugin stores for a TLS session, and the checks a session read back from the
// cache must pass before OpenSSL may resume it. Everything read back is untrusted: it may be
// garbage, truncated, another session, or an expired one; all of those are a miss.
#ifndef TLSCACHE_PLUGINS_OPENSSL_SESSION_CODEC_H_
#define TLSCACHE_PLUGINS_OPENSSL_SESSION_CODEC_H_

#include <openssl/ssl.h>

#include <cstddef>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/openssl_util.h"
#include "common/secret_bytes.h"

namespace tlscache::openssl {

// The largest encoded session stored or accepted (the service's default limit).
inline constexpr size_t kMaxEncodedSession = 16 << 10;

// The DER encoding of `session` (i2d_SSL_SESSION), which holds its master secret.
absl::StatusOr<SecretBytes> EncodeSession(SSL_SESSION* session);

// Decodes `bytes` and accepts the session only if the encoding is exact (no trailing bytes),
// its ID is `expected_id`, it is resumable, and it has not expired.
absl::StatusOr<SslSessionPtr> DecodeSession(absl::string_view bytes, absl::string_view expected_id);

}  // namespace tlscache::openssl

#endif  // TLSCACHE_PLUGINS_OPENSSL_SESSION_CODEC_H_
