#include "plugins/openssl/session_codec.h"

#include <openssl/crypto.h>

#include <ctime>

#include "absl/strings/str_cat.h"

namespace tlscache::openssl {

absl::StatusOr<SecretBytes> EncodeSession(SSL_SESSION* session) {
  const int len = i2d_SSL_SESSION(session, nullptr);
  if (len <= 0) return absl::InternalError("i2d_SSL_SESSION failed");
  if (static_cast<size_t>(len) > kMaxEncodedSession) {
    return absl::ResourceExhaustedError(
        absl::StrCat("session of ", len, " bytes is over the ", kMaxEncodedSession, " limit"));
  }
  SecretBytes out(static_cast<size_t>(len));
  unsigned char* p = out.mutable_data();
  if (i2d_SSL_SESSION(session, &p) != len) return absl::InternalError("i2d_SSL_SESSION failed");
  return out;
}

absl::StatusOr<SslSessionPtr> DecodeSession(absl::string_view bytes,
                                            absl::string_view expected_id) {
  if (bytes.empty() || bytes.size() > kMaxEncodedSession) {
    return absl::InvalidArgumentError(absl::StrCat("session of ", bytes.size(), " bytes"));
  }
  const unsigned char* p = reinterpret_cast<const unsigned char*>(bytes.data());
  SslSessionPtr session(d2i_SSL_SESSION(nullptr, &p, static_cast<long>(bytes.size())));
  if (session == nullptr) return absl::InvalidArgumentError("not a DER-encoded session");
  if (p != reinterpret_cast<const unsigned char*>(bytes.data()) + bytes.size()) {
    return absl::InvalidArgumentError("trailing bytes after the session");
  }
  unsigned int id_len = 0;
  const unsigned char* id = SSL_SESSION_get_id(session.get(), &id_len);
  if (id_len != expected_id.size() ||
      CRYPTO_memcmp(id, expected_id.data(), expected_id.size()) != 0) {
    return absl::InvalidArgumentError("session belongs to another ID");
  }
  if (!SSL_SESSION_is_resumable(session.get())) {
    return absl::InvalidArgumentError("session is not resumable");
  }
  const long expires = SSL_SESSION_get_time(session.get()) + SSL_SESSION_get_timeout(session.get());
  if (expires <= static_cast<long>(std::time(nullptr))) {
    return absl::InvalidArgumentError("session has expired");
  }
  return session;
}

}  // namespace tlscache::openssl
