// Fuzzes the session bytes the cache returns to the plugin (plugins/openssl/session_codec.h
// DecodeSession): whatever a cache (or whoever controls one) answers, the plugin must refuse
// it or hand OpenSSL a session with the ID it asked for, which encodes and decodes again.
#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "plugins/openssl/session_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tlscache::openssl;
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  // The ID the plugin would have asked for: the one inside, when there is one, so that the
  // checks past the ID comparison are reached too.
  absl::string_view id = "no such id";
  const unsigned char* p = data;
  SSL_SESSION* probe = d2i_SSL_SESSION(nullptr, &p, static_cast<long>(size));
  unsigned int id_length = 0;
  if (probe != nullptr) {
    const unsigned char* id_bytes = SSL_SESSION_get_id(probe, &id_length);
    id = absl::string_view(reinterpret_cast<const char*>(id_bytes), id_length);
  }
  auto session = DecodeSession(bytes, id);
  if (session.ok()) {
    unsigned int got_length = 0;
    const unsigned char* got = SSL_SESSION_get_id(session->get(), &got_length);
    if (absl::string_view(reinterpret_cast<const char*>(got), got_length) != id) abort();
    auto encoded = EncodeSession(session->get());
    if (!encoded.ok() || !DecodeSession(encoded->view(), id).ok()) abort();
  }
  (void)DecodeSession(bytes, "other id");
  SSL_SESSION_free(probe);
  return 0;
}
