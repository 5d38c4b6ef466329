// The stores a parameterized test runs against, with readable test names:
//   INSTANTIATE_TEST_SUITE_P(BothStores, MyTest, ::testing::Values(StoreKind::kMemory,
//                            StoreKind::kRedis), StoreKindName);
#ifndef TLSCACHE_TESTS_TESTING_STORE_KIND_H_
#define TLSCACHE_TESTS_TESTING_STORE_KIND_H_

#include <string>

#include "gtest/gtest.h"

namespace tlscache::testing {

// kSealedRedis: the Redis store beneath a SealedStore.
enum class StoreKind { kMemory, kRedis, kSealedRedis };

inline std::string StoreKindName(const ::testing::TestParamInfo<StoreKind>& info) {
  switch (info.param) {
    case StoreKind::kMemory:
      return "Memory";
    case StoreKind::kRedis:
      return "Redis";
    case StoreKind::kSealedRedis:
      return "SealedRedis";
  }
  return "Unknown";
}

}  // namespace tlscache::testing

#endif  // TLSCACHE_TESTS_TESTING_STORE_KIND_H_
