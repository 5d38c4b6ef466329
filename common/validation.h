// Bounds on the identifiers and values that cross the wire. The service checks every request
// with these; clients check their configuration with the same functions, so that both sides
// agree on what is valid.
#ifndef TLSCACHE_COMMON_VALIDATION_H_
#define TLSCACHE_COMMON_VALIDATION_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tlscache {

// TLS caps session IDs (and OpenSSL its stateful ticket identities) at 32 bytes.
inline constexpr size_t kMaxSessionIdBytes = 32;
inline constexpr size_t kMaxNamespaceBytes = 64;

// InvalidArgument naming the field when the value is out of bounds.
absl::Status ValidateNamespace(absl::string_view ns);                       // [A-Za-z0-9._-]{1,64}
absl::Status ValidateSessionId(absl::string_view session_id);               // 1..32 bytes
absl::Status ValidateSession(absl::string_view session, size_t max_bytes);  // 1..max bytes
// A ticket key follower's name: [A-Za-z0-9._:/@+\[\]-]{1,128}.
inline constexpr size_t kMaxFollowerBytes = 128;
bool IsFollowerNameChar(char c);
absl::Status ValidateFollowerName(absl::string_view follower);

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_VALIDATION_H_
