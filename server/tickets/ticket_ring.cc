#include "server/tickets/ticket_ring.h"

#include <openssl/rand.h>

#include <climits>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/secret_bytes.h"

namespace tlscache::server {
namespace {

using v1::TicketKey;

absl::Status RandomBytes(size_t n, std::string* out) {
  out->resize(n);
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&(*out)[0]), static_cast<int>(n)) != 1) {
    CleanseString(out);
    return absl::InternalError("the CSPRNG failed");
  }
  return absl::OkStatus();
}

absl::Status AddKey(v1::TicketKeySet& ring, TicketKey::State state, absl::Time not_before) {
  TicketKey* key = ring.add_keys();
  key->set_state(state);
  key->set_not_before_unix_ms(absl::ToUnixMillis(not_before));
  if (absl::Status s = RandomBytes(kTicketKeyNameBytes, key->mutable_name()); !s.ok()) return s;
  if (absl::Status s = RandomBytes(kTicketAesKeyBytes, key->mutable_aes_key()); !s.ok()) return s;
  return RandomBytes(kTicketHmacKeyBytes, key->mutable_hmac_key());
}

}  // namespace

absl::StatusOr<v1::TicketKeySet> NewRing(absl::Time now, const RingPolicy& policy) {
  v1::TicketKeySet ring;
  ring.set_version(1);
  ring.set_next_rotation_unix_ms(absl::ToUnixMillis(now + policy.rotation));
  // 0: the PENDING key came with the ring itself, so every node with a ring has it.
  ring.set_pending_since_unix_ms(0);
  absl::Status s = AddKey(ring, TicketKey::ACTIVE, now);
  if (s.ok()) s = AddKey(ring, TicketKey::PENDING, now + policy.rotation);
  if (!s.ok()) {
    WipeRing(&ring);
    return s;
  }
  return ring;
}

bool RotationDue(const v1::TicketKeySet& ring, absl::Time now) {
  return absl::ToUnixMillis(now) >= ring.next_rotation_unix_ms();
}

absl::StatusOr<v1::TicketKeySet> Rotate(const v1::TicketKeySet& ring, absl::Time now,
                                        const RingPolicy& policy) {
  v1::TicketKeySet next;
  next.set_version(ring.version() + 1);
  next.set_next_rotation_unix_ms(absl::ToUnixMillis(now + policy.rotation));
  next.set_pending_since_unix_ms(absl::ToUnixMillis(now));
  const int64_t now_ms = absl::ToUnixMillis(now);
  bool promoted = false;
  for (const TicketKey& key : ring.keys()) {
    TicketKey copy = key;
    switch (key.state()) {
      case TicketKey::PENDING:
        copy.set_state(TicketKey::ACTIVE);
        copy.set_not_before_unix_ms(now_ms);
        promoted = true;
        break;
      case TicketKey::ACTIVE:
        copy.set_state(TicketKey::DECRYPT_ONLY);
        copy.set_not_after_unix_ms(absl::ToUnixMillis(now + policy.decrypt_window));
        break;
      case TicketKey::DECRYPT_ONLY:
        if (key.not_after_unix_ms() <= now_ms) {
          CleanseString(copy.mutable_aes_key());
          CleanseString(copy.mutable_hmac_key());
          continue;  // past its window: dropped
        }
        break;
      default:
        CleanseString(copy.mutable_aes_key());
        CleanseString(copy.mutable_hmac_key());
        continue;
    }
    *next.add_keys() = std::move(copy);
  }
  // A ring without a PENDING key (never written by this code) gets a fresh ACTIVE one.
  absl::Status s = promoted ? absl::OkStatus() : AddKey(next, TicketKey::ACTIVE, now);
  if (s.ok()) s = AddKey(next, TicketKey::PENDING, now + policy.rotation);
  if (s.ok() && next.keys_size() > kMaxTicketKeys) {
    s = absl::FailedPreconditionError(absl::StrCat("a ring of ", next.keys_size(),
                                                   " keys: the decrypt window holds more than ",
                                                   kMaxTicketKeys, " rotations"));
  }
  if (!s.ok()) {
    WipeRing(&next);
    return s;
  }
  return next;
}

absl::StatusOr<v1::TicketKeySet> ParseStoredRing(absl::string_view bytes, uint64_t version) {
  v1::TicketKeySet ring;
  absl::Status status;
  if (bytes.empty()) {
    status = absl::DataLossError("it cannot be opened with the configured seal keys");
  } else if (bytes.size() > static_cast<size_t>(INT_MAX) ||
             !ring.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    status = absl::DataLossError("does not parse");
  } else if (ring.version() != version) {
    status = absl::DataLossError("its version is not the one it was stored as");
  } else if (absl::Status valid = ValidateRing(ring); !valid.ok()) {
    status = absl::DataLossError(valid.message());
  }
  if (!status.ok()) {
    WipeRing(&ring);
    return status;
  }
  return ring;
}

}  // namespace tlscache::server
