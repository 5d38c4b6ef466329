// The lifecycle of a namespace's session-ticket key ring (tlscache.v1.TicketKeySet), as pure
// functions of the ring and the time: the key-ring service stores the result by
// compare-and-set on the version, so every replica computes the same next ring and exactly
// one of them writes it.
//
//   new ring:  K1 ACTIVE, K2 PENDING
//   rotation:  PENDING -> ACTIVE; ACTIVE -> DECRYPT_ONLY until now + decrypt_window;
//              a fresh PENDING; DECRYPT_ONLY keys past their window dropped
//
// A PENDING key is distributed a whole rotation interval before it encrypts anything, so every
// node can decrypt a ticket before any node issues one with it.
#ifndef TLSCACHE_SERVER_TICKETS_TICKET_RING_H_
#define TLSCACHE_SERVER_TICKETS_TICKET_RING_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/ticket_key.h"
#include "tlscache/v1/ticket_keys.pb.h"

namespace tlscache::server {

struct RingPolicy {
  absl::Duration rotation = absl::Hours(1);
  absl::Duration decrypt_window = absl::Hours(12);
};

// Version 1: a fresh ACTIVE key and the PENDING key that follows it; keys from a CSPRNG.
absl::StatusOr<v1::TicketKeySet> NewRing(absl::Time now, const RingPolicy& policy);

bool RotationDue(const v1::TicketKeySet& ring, absl::Time now);

// The ring after one rotation at `now`, with version + 1.
absl::StatusOr<v1::TicketKeySet> Rotate(const v1::TicketKeySet& ring, absl::Time now,
                                        const RingPolicy& policy);

// A ring read back from the store, checked like any outside bytes: it parses, it is the
// `version` it was stored as, and ValidateRing (common/ticket_key.h) accepts it. Empty `bytes`
// means a ring that could not be opened (server/store/sealed_store.h). DataLoss saying what is
// wrong; a rejected ring's keys are wiped.
absl::StatusOr<v1::TicketKeySet> ParseStoredRing(absl::string_view bytes, uint64_t version);

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_TICKETS_TICKET_RING_H_
