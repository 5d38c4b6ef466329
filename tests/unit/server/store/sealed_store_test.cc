// The SealedStore (server/store/sealed_store.h) over an in-memory store it seals into: what
// the store beneath holds, and that a value tampered with, moved to another key or sealed
// under a key no longer configured is a miss, counted, never handed out.
#include "server/store/sealed_store.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/memory_store.h"
#include "tests/testing/store_sync.h"
#include "tests/testing/store_under_test.h"

namespace tlscache::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::tlscache::testing::GetRingSync;
using ::tlscache::testing::GetSync;
using ::tlscache::testing::PutSync;
using ::tlscache::testing::SwapRingSync;
using ::tlscache::testing::TestSealer;

constexpr char kSecret[] = "MASTER-SECRET-0123456789abcdef";
constexpr char kOtherKey[] = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

class SealedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::unique_ptr<MemoryStore> inner = *MemoryStore::Create(MemoryStoreOptions{});
    inner_ = inner.get();
    sealed_ = std::make_unique<SealedStore>(std::move(inner), TestSealer());
  }

  // What the store beneath holds under ns/id.
  std::string Raw(absl::string_view ns, absl::string_view id) {
    absl::StatusOr<StoreEntry> entry = GetSync(*inner_, ns, id);
    EXPECT_TRUE(entry.ok()) << entry.status();
    return entry.ok() ? std::string(entry->session.view()) : "";
  }

  MemoryStore* inner_ = nullptr;  // owned by sealed_
  std::unique_ptr<SealedStore> sealed_;
};

TEST_F(SealedStoreTest, TheStoreBeneathHoldsOnlySealedBytesAndGetOpensThem) {
  ASSERT_TRUE(PutSync(*sealed_, "ns", "id", kSecret, absl::Seconds(60)).ok());
  const std::string raw = Raw("ns", "id");
  EXPECT_THAT(raw, Not(HasSubstr(kSecret)));
  EXPECT_EQ(raw.size(), std::string(kSecret).size() + kSealOverheadBytes);
  absl::StatusOr<StoreEntry> entry = GetSync(*sealed_, "ns", "id");
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_EQ(entry->session.view(), kSecret);
  EXPECT_EQ(sealed_->open_failures(), 0u);
}

TEST_F(SealedStoreTest, ATamperedValueIsAMissAndCounted) {
  ASSERT_TRUE(PutSync(*sealed_, "ns", "id", kSecret, absl::Seconds(60)).ok());
  std::string raw = Raw("ns", "id");
  raw[raw.size() / 2] ^= 1;
  ASSERT_TRUE(PutSync(*inner_, "ns", "id", raw, absl::Seconds(60)).ok());
  EXPECT_TRUE(absl::IsNotFound(GetSync(*sealed_, "ns", "id").status()));
  EXPECT_EQ(sealed_->open_failures(), 1u);
}

TEST_F(SealedStoreTest, AValueMovedToAnotherIdOrNamespaceDoesNotOpenThere) {
  ASSERT_TRUE(PutSync(*sealed_, "ns", "id", kSecret, absl::Seconds(60)).ok());
  const std::string raw = Raw("ns", "id");
  ASSERT_TRUE(PutSync(*inner_, "ns", "other-id", raw, absl::Seconds(60)).ok());
  ASSERT_TRUE(PutSync(*inner_, "other-ns", "id", raw, absl::Seconds(60)).ok());
  EXPECT_TRUE(absl::IsNotFound(GetSync(*sealed_, "ns", "other-id").status()));
  EXPECT_TRUE(absl::IsNotFound(GetSync(*sealed_, "other-ns", "id").status()));
  EXPECT_EQ(sealed_->open_failures(), 2u);
  EXPECT_TRUE(GetSync(*sealed_, "ns", "id").ok());
}

TEST_F(SealedStoreTest, AValueStoredBeforeSealingOrUnderAnotherKeyIsAMiss) {
  ASSERT_TRUE(PutSync(*inner_, "ns", "plain", kSecret, absl::Seconds(60)).ok());
  EXPECT_TRUE(absl::IsNotFound(GetSync(*sealed_, "ns", "plain").status()));
  std::unique_ptr<MemoryStore> other_inner = *MemoryStore::Create(MemoryStoreOptions{});
  MemoryStore* other_raw = other_inner.get();
  SealedStore other(std::move(other_inner), TestSealer(kOtherKey));
  ASSERT_TRUE(PutSync(other, "ns", "id", kSecret, absl::Seconds(60)).ok());
  // The same namespace and id, sealed under a key this store does not have.
  absl::StatusOr<StoreEntry> foreign = GetSync(*other_raw, "ns", "id");
  ASSERT_TRUE(foreign.ok()) << foreign.status();
  ASSERT_TRUE(PutSync(*inner_, "ns", "id", foreign->session.view(), absl::Seconds(60)).ok());
  EXPECT_TRUE(absl::IsNotFound(GetSync(*sealed_, "ns", "id").status()));
  EXPECT_EQ(sealed_->open_failures(), 2u);
}

TEST_F(SealedStoreTest, ARingIsSealedAndOneThatDoesNotOpenComesBackEmptyWithItsVersion) {
  ASSERT_TRUE(*SwapRingSync(*sealed_, "ns", 0, 1, kSecret));
  absl::StatusOr<StoredRing> raw = GetRingSync(*inner_, "ns");
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_THAT(std::string(raw->ring.view()), Not(HasSubstr(kSecret)));
  EXPECT_EQ(GetRingSync(*sealed_, "ns")->ring.view(), kSecret);

  // A ring moved to another namespace: its version, no bytes, so the service can replace it.
  ASSERT_TRUE(*SwapRingSync(*inner_, "other-ns", 0, 7, raw->ring.view()));
  absl::StatusOr<StoredRing> moved = GetRingSync(*sealed_, "other-ns");
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(moved->version, 7u);
  EXPECT_TRUE(moved->ring.view().empty());
  EXPECT_EQ(sealed_->open_failures(), 1u);
}

TEST_F(SealedStoreTest, DescribeAndStatsSayTheStoreIsSealedAndCountFailures) {
  EXPECT_THAT(sealed_->Describe(), HasSubstr(", sealed (1 key)"));
  ASSERT_TRUE(PutSync(*inner_, "ns", "plain", kSecret, absl::Seconds(60)).ok());
  EXPECT_TRUE(absl::IsNotFound(GetSync(*sealed_, "ns", "plain").status()));
  StoreStats stats;
  sealed_->AddStats(&stats);
  EXPECT_EQ(stats.open_failures, 1u);
}

}  // namespace
}  // namespace tlscache::server
