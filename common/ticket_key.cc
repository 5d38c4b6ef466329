#include "common/ticket_key.h"

#include <climits>
#include <cstring>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/secret_bytes.h"

namespace tlscache {

using v1::TicketKey;

absl::Status ValidateRing(const v1::TicketKeySet& ring) {
  if (ring.keys_size() > kMaxTicketKeys) {
    return absl::InvalidArgumentError(absl::StrCat("ring has ", ring.keys_size(), " keys"));
  }
  int active = 0;
  int pending = 0;
  std::set<std::string> names;
  for (const TicketKey& key : ring.keys()) {
    if (key.name().size() != kTicketKeyNameBytes || key.aes_key().size() != kTicketAesKeyBytes ||
        key.hmac_key().size() != kTicketHmacKeyBytes) {
      return absl::InvalidArgumentError("ring has a key of the wrong size");
    }
    if (key.state() != TicketKey::PENDING && key.state() != TicketKey::ACTIVE &&
        key.state() != TicketKey::DECRYPT_ONLY) {
      return absl::InvalidArgumentError("ring has a key in no known state");
    }
    if (!names.insert(key.name()).second) {
      return absl::InvalidArgumentError("ring has two keys of one name");
    }
    active += key.state() == TicketKey::ACTIVE ? 1 : 0;
    pending += key.state() == TicketKey::PENDING ? 1 : 0;
  }
  if (active != 1) {
    return absl::InvalidArgumentError(absl::StrCat("ring has ", active, " ACTIVE keys"));
  }
  // A rotation promotes every PENDING key: two would make two ACTIVE keys.
  if (pending > 1) {
    return absl::InvalidArgumentError(absl::StrCat("ring has ", pending, " PENDING keys"));
  }
  if (ring.version() == 0 || ring.version() == UINT64_MAX) {
    return absl::InvalidArgumentError(absl::StrCat("ring has version ", ring.version()));
  }
  return absl::OkStatus();
}

TicketKeyRecord ToRecord(const TicketKey& key) {
  TicketKeyRecord record;
  std::memcpy(record.name.data(), key.name().data(), record.name.size());
  std::memcpy(record.aes_key.data(), key.aes_key().data(), record.aes_key.size());
  std::memcpy(record.hmac_key.data(), key.hmac_key().data(), record.hmac_key.size());
  return record;
}

void WipeRing(v1::TicketKeySet* ring) {
  if (ring == nullptr) return;
  for (TicketKey& key : *ring->mutable_keys()) {
    CleanseString(key.mutable_aes_key());
    CleanseString(key.mutable_hmac_key());
  }
}

}  // namespace tlscache
