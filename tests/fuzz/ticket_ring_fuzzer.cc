// Fuzzes the ticket key ring read back from the store (server/tickets/ticket_ring.h
// ParseStoredRing): any bytes must be refused or give a ring that passes ValidateRing
// (common/ticket_key.h, the check the plugin makes of a ring too), and such a
// ring must rotate into another valid ring.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/tickets/ticket_ring.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tlscache::server;
  using tlscache::ValidateRing;  // common/ticket_key.h: the check the plugin makes too
  using tlscache::WipeRing;
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  // The stored version must match the ring's: learn it from a plain parse first.
  tlscache::v1::TicketKeySet probe;
  const uint64_t version = probe.ParseFromArray(data, static_cast<int>(size)) ? probe.version() : 1;
  WipeRing(&probe);
  auto ring = ParseStoredRing(bytes, version);
  if (!ring.ok()) return 0;
  if (!ValidateRing(*ring).ok()) abort();
  RingPolicy policy;
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  (void)RotationDue(*ring, now);
  auto next = Rotate(*ring, now, policy);
  if (next.ok()) {
    if (!ValidateRing(*next).ok() || next->version() != ring->version() + 1) abort();
    WipeRing(&*next);
  }
  WipeRing(&*ring);
  return 0;
}
