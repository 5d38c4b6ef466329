#include "server/security/sealer.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace tlscache::server {
namespace {

constexpr char kKeyA[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
constexpr char kKeyB[] = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

std::unique_ptr<Sealer> MakeSealer(const std::string& key_file) {
  absl::StatusOr<std::vector<SecretBytes>> keys = ParseSealKeys(key_file);
  EXPECT_TRUE(keys.ok()) << keys.status();
  absl::StatusOr<std::unique_ptr<Sealer>> sealer = Sealer::Create(*std::move(keys));
  EXPECT_TRUE(sealer.ok()) << sealer.status();
  return *std::move(sealer);
}

const std::string kSession = "a serialized session holding a master secret";

TEST(SealerTest, SealedValueOpensToThePlaintextAndDoesNotContainIt) {
  auto sealer = MakeSealer(kKeyA);
  auto sealed = sealer->Seal(SealedKind::kSession, "ns", "id", kSession);
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_EQ(sealed->size(), kSession.size() + kSealOverheadBytes);
  EXPECT_EQ(sealed->find("master secret"), std::string::npos);
  auto opened = sealer->Open(SealedKind::kSession, "ns", "id", *sealed);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->view(), kSession);
}

TEST(SealerTest, SealingTwiceGivesDifferentBytes) {
  auto sealer = MakeSealer(kKeyA);
  EXPECT_NE(*sealer->Seal(SealedKind::kSession, "ns", "id", kSession),
            *sealer->Seal(SealedKind::kSession, "ns", "id", kSession));
}

TEST(SealerTest, AValueMovedToAnotherIdNamespaceOrKindDoesNotOpen) {
  auto sealer = MakeSealer(kKeyA);
  const std::string sealed = *sealer->Seal(SealedKind::kSession, "ns", "id", kSession);
  EXPECT_TRUE(absl::IsDataLoss(sealer->Open(SealedKind::kSession, "ns", "id2", sealed).status()));
  EXPECT_TRUE(absl::IsDataLoss(sealer->Open(SealedKind::kSession, "ns2", "id", sealed).status()));
  EXPECT_TRUE(absl::IsDataLoss(sealer->Open(SealedKind::kRing, "ns", "id", sealed).status()));
  // The boundary between namespace and id is part of what is bound.
  const std::string joined = *sealer->Seal(SealedKind::kSession, "ab", "c", kSession);
  EXPECT_FALSE(sealer->Open(SealedKind::kSession, "a", "bc", joined).ok());
}

TEST(SealerTest, EveryFlippedBitAndEveryTruncationFailsToOpen) {
  auto sealer = MakeSealer(kKeyA);
  const std::string sealed = *sealer->Seal(SealedKind::kSession, "ns", "id", kSession);
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string tampered = sealed;
    tampered[i] ^= 0x01;
    EXPECT_FALSE(sealer->Open(SealedKind::kSession, "ns", "id", tampered).ok()) << "byte " << i;
  }
  for (size_t n = 0; n < sealed.size(); ++n) {
    EXPECT_FALSE(sealer->Open(SealedKind::kSession, "ns", "id", sealed.substr(0, n)).ok()) << n;
  }
  EXPECT_FALSE(sealer->Open(SealedKind::kSession, "ns", "id", sealed + "x").ok());
}

TEST(SealerTest, TheFirstKeySealsAndEveryKeyOpensSoKeysRotate) {
  auto old_sealer = MakeSealer(kKeyA);
  const std::string by_old = *old_sealer->Seal(SealedKind::kSession, "ns", "id", kSession);
  auto rotated = MakeSealer(absl::StrCat(kKeyB, "\n", kKeyA, "\n"));
  ASSERT_TRUE(rotated->Open(SealedKind::kSession, "ns", "id", by_old).ok());
  const std::string by_new = *rotated->Seal(SealedKind::kSession, "ns", "id", kSession);
  // Sealed with B: the old sealer (A only) cannot open it, a sealer with only B can.
  EXPECT_FALSE(old_sealer->Open(SealedKind::kSession, "ns", "id", by_new).ok());
  EXPECT_TRUE(MakeSealer(kKeyB)->Open(SealedKind::kSession, "ns", "id", by_new).ok());
  // Once A is dropped, what it sealed is a miss.
  auto status = MakeSealer(kKeyB)->Open(SealedKind::kSession, "ns", "id", by_old).status();
  EXPECT_TRUE(absl::IsDataLoss(status));
  EXPECT_NE(status.message().find("key that is not configured"), std::string::npos) << status;
}

TEST(SealerTest, KeyFileErrorsNameTheLineAndNeverTheKey) {
  EXPECT_FALSE(ParseSealKeys("").ok());
  EXPECT_FALSE(ParseSealKeys("# only a comment\n\n").ok());
  auto short_key = ParseSealKeys(absl::StrCat("# keys\n", std::string(kKeyA).substr(2)));
  ASSERT_FALSE(short_key.ok());
  EXPECT_NE(short_key.status().message().find("line 2"), std::string::npos) << short_key.status();
  std::string not_hex = kKeyA;
  not_hex[10] = 'g';
  auto bad = ParseSealKeys(not_hex);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().find("0001020304"), std::string::npos) << bad.status();
  EXPECT_FALSE(ParseSealKeys(absl::StrCat(kKeyA, "\n", kKeyA)).ok());
  auto two = ParseSealKeys(absl::StrCat("  ", kKeyA, "  \n# next\n", kKeyB, "\n"));
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->size(), 2u);
}

}  // namespace
}  // namespace tlscache::server
