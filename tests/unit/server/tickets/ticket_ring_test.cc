#include "server/tickets/ticket_ring.h"

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace tlscache::server {
namespace {

using v1::TicketKey;

const absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);

RingPolicy Policy() {
  RingPolicy policy;
  policy.rotation = absl::Minutes(10);
  policy.decrypt_window = absl::Minutes(25);
  return policy;
}

const TicketKey* Find(const v1::TicketKeySet& ring, TicketKey::State state) {
  for (const TicketKey& key : ring.keys()) {
    if (key.state() == state) return &key;
  }
  return nullptr;
}

TEST(TicketRingTest, ANewRingHasOneActiveAndOnePendingKey) {
  auto ring = NewRing(kStart, Policy());
  ASSERT_TRUE(ring.ok()) << ring.status();
  EXPECT_EQ(ring->version(), 1u);
  ASSERT_EQ(ring->keys_size(), 2);
  EXPECT_NE(Find(*ring, TicketKey::ACTIVE), nullptr);
  EXPECT_NE(Find(*ring, TicketKey::PENDING), nullptr);
  EXPECT_TRUE(ValidateRing(*ring).ok());
  EXPECT_NE(ring->keys(0).name(), ring->keys(1).name());
  EXPECT_NE(ring->keys(0).aes_key(), ring->keys(1).aes_key());
  EXPECT_EQ(ring->next_rotation_unix_ms(), absl::ToUnixMillis(kStart + absl::Minutes(10)));
}

TEST(TicketRingTest, RotationIsDueAtTheIntervalNotBefore) {
  auto ring = *NewRing(kStart, Policy());
  EXPECT_FALSE(RotationDue(ring, kStart + absl::Minutes(10) - absl::Milliseconds(1)));
  EXPECT_TRUE(RotationDue(ring, kStart + absl::Minutes(10)));
}

TEST(TicketRingTest, RotationPromotesThePendingKeyEveryNodeAlreadyHas) {
  auto ring = *NewRing(kStart, Policy());
  const std::string pending = Find(ring, TicketKey::PENDING)->name();
  const std::string active = Find(ring, TicketKey::ACTIVE)->name();
  const absl::Time now = kStart + absl::Minutes(10);
  auto next = Rotate(ring, now, Policy());
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->version(), 2u);
  EXPECT_EQ(Find(*next, TicketKey::ACTIVE)->name(), pending);
  const TicketKey* old = Find(*next, TicketKey::DECRYPT_ONLY);
  ASSERT_NE(old, nullptr);
  EXPECT_EQ(old->name(), active);
  EXPECT_EQ(old->not_after_unix_ms(), absl::ToUnixMillis(now + absl::Minutes(25)));
  const TicketKey* fresh = Find(*next, TicketKey::PENDING);
  ASSERT_NE(fresh, nullptr);
  EXPECT_NE(fresh->name(), pending);
  EXPECT_NE(fresh->name(), active);
  EXPECT_TRUE(ValidateRing(*next).ok());
}

TEST(TicketRingTest, DecryptOnlyKeysAreDroppedAfterTheirWindow) {
  auto ring = *NewRing(kStart, Policy());
  absl::Time now = kStart;
  std::set<std::string> seen;
  // Rotations every 10 minutes with a 25-minute window: at most 3 decrypt-only keys remain.
  for (int i = 1; i <= 8; ++i) {
    now += absl::Minutes(10);
    ring = *Rotate(ring, now, Policy());
    int decrypt_only = 0;
    for (const TicketKey& key : ring.keys()) {
      if (key.state() == TicketKey::DECRYPT_ONLY) {
        ++decrypt_only;
        EXPECT_GT(key.not_after_unix_ms(), absl::ToUnixMillis(now));
      }
    }
    EXPECT_LE(decrypt_only, 3) << "rotation " << i;
    EXPECT_TRUE(ValidateRing(ring).ok());
    EXPECT_EQ(ring.version(), static_cast<uint64_t>(i + 1));
  }
}

TEST(TicketRingTest, ValidateRejectsMalformedRings) {
  auto ring = *NewRing(kStart, Policy());
  auto two_active = ring;
  two_active.mutable_keys(1)->set_state(TicketKey::ACTIVE);
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateRing(two_active)));
  auto short_key = ring;
  short_key.mutable_keys(0)->mutable_aes_key()->resize(31);
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateRing(short_key)));
  auto same_name = ring;
  same_name.mutable_keys(1)->set_name(ring.keys(0).name());
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateRing(same_name)));
  auto no_active = ring;
  no_active.mutable_keys(0)->set_state(TicketKey::PENDING);
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateRing(no_active)));
  auto last_version = ring;
  last_version.set_version(UINT64_MAX);
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateRing(last_version)));
}

// Found by ticket_ring_fuzzer: a stored ring with two PENDING keys rotated into a ring with two
// ACTIVE keys, which no replica could read back.
TEST(TicketRingTest, ARingWithTwoPendingKeysIsRejectedBeforeItRotates) {
  auto ring = *NewRing(kStart, Policy());
  auto two_pending = ring;
  TicketKey* extra = two_pending.add_keys();
  *extra = *Find(ring, TicketKey::PENDING);
  extra->set_name(std::string(16, 'x'));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateRing(two_pending)));
  std::string bytes;
  ASSERT_TRUE(two_pending.SerializeToString(&bytes));
  EXPECT_TRUE(absl::IsDataLoss(ParseStoredRing(bytes, two_pending.version()).status()));
  ASSERT_TRUE(ring.SerializeToString(&bytes));
  EXPECT_TRUE(ParseStoredRing(bytes, ring.version()).ok());
  EXPECT_TRUE(absl::IsDataLoss(ParseStoredRing(bytes, ring.version() + 1).status()));
  EXPECT_TRUE(absl::IsDataLoss(ParseStoredRing("", ring.version()).status()));
}

TEST(TicketRingTest, WipeRingZeroesKeyBytes) {
  auto ring = *NewRing(kStart, Policy());
  WipeRing(&ring);
  for (const TicketKey& key : ring.keys()) {
    EXPECT_TRUE(key.aes_key().empty());
    EXPECT_TRUE(key.hmac_key().empty());
    EXPECT_EQ(key.name().size(), kTicketKeyNameBytes);
  }
}

}  // namespace
}  // namespace tlscache::server
