// A farm session-ticket key, and the checks every ring of them passes wherever it enters: the
// service reading one back from the store, a TLS server process receiving one from the
// service. One definition, so that the two never disagree on what a usable ring is.
#ifndef TLSCACHE_COMMON_TICKET_KEY_H_
#define TLSCACHE_COMMON_TICKET_KEY_H_

#include <array>
#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "tlscache/v1/ticket_keys.pb.h"

namespace tlscache {

// The key as OpenSSL's ticket callback uses it: the 16-byte name a ticket carries, the
// AES-256-CBC key and the HMAC-SHA256 key. Secret but the name: wipe it before it is freed.
struct TicketKeyRecord {
  std::array<uint8_t, 16> name;
  std::array<uint8_t, 32> aes_key;
  std::array<uint8_t, 32> hmac_key;
};
static_assert(sizeof(TicketKeyRecord) == 80, "a ticket key is 80 bytes, with no padding");

inline constexpr size_t kTicketKeyNameBytes = sizeof(TicketKeyRecord::name);
inline constexpr size_t kTicketAesKeyBytes = sizeof(TicketKeyRecord::aes_key);
inline constexpr size_t kTicketHmacKeyBytes = sizeof(TicketKeyRecord::hmac_key);
// A ring never holds more keys than this (PENDING, ACTIVE and the decrypt-only ones).
inline constexpr int kMaxTicketKeys = 64;

// Key and name sizes, known states, distinct names, exactly one ACTIVE key, at most one
// PENDING key, at most kMaxTicketKeys keys, a version that can be followed by another.
// InvalidArgument saying what is wrong.
absl::Status ValidateRing(const v1::TicketKeySet& ring);

// The key's bytes as a record; `key` must have passed ValidateRing.
TicketKeyRecord ToRecord(const v1::TicketKey& key);

// Wipes every key's bytes (names are not secret).
void WipeRing(v1::TicketKeySet* ring);

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_TICKET_KEY_H_
