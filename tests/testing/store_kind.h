// The stores a parameterized test runs against, with readable test names:
//   INSTANTIATE_TEST_SUITE_P(BothStores, MyTest, ::testing::Values(StoreKind::kMemory,
//                            StoreKind::kRedis), StoreKindName);
#ifndef TLSCACHE_TESTS_TESTING_STORE_KIND_H_
#define TLSCACHE_TESTS_TESTING_STORE_KIND_H_

#include <string>

#include "gtest/gtest.h"

namespace tlscache::testing {

enum class StoreKind { kMemory, kRedis };

inline std::string StoreKindName(const ::testing::TestParamInfo<StoreKind>& info) {
  return info.param == StoreKind::kMemory ? "Memory" : "Redis";
}

}  // namespace tlscache::testing

#endif  // TLSCACHE_TESTS_TESTING_STORE_KIND_H_
