// The stores a parameterized test runs against, each with the real servers it needs:
//
//   class MyTest : public ::testing::TestWithParam<StoreKind> {
//     void SetUp() override { TLSCACHE_START_STORE_OR_SKIP(GetParam(), under_test_); }
//     StoreUnderTest under_test_;
//   };
//   INSTANTIATE_TEST_SUITE_P(EveryStore, MyTest, ::testing::ValuesIn(kEveryStore),
//                            StoreKindName);
#ifndef TLSCACHE_TESTS_TESTING_STORE_UNDER_TEST_H_
#define TLSCACHE_TESTS_TESTING_STORE_UNDER_TEST_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/security/sealer.h"
#include "server/store/store.h"
#include "tests/testing/redis_cluster.h"
#include "tests/testing/redis_server.h"

namespace tlscache::testing {

// kSealed*: the store beneath a SealedStore. kSentinel: one master, one replica and three
// sentinels. kCluster: three masters, each with a replica.
enum class StoreKind { kMemory, kSealedMemory, kRedis, kSealedRedis, kSentinel, kCluster };

inline constexpr StoreKind kEveryStore[] = {StoreKind::kMemory,   StoreKind::kSealedMemory,
                                            StoreKind::kRedis,    StoreKind::kSealedRedis,
                                            StoreKind::kSentinel, StoreKind::kCluster};

std::string StoreKindName(const ::testing::TestParamInfo<StoreKind>& info);

// An AES-256-GCM key file (server/security/sealer.h) for tests, and a sealer over it.
inline constexpr char kTestSealKey[] =
    "6a1f0c9e3b7d25e48f10a2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f607";
// `scope`: what the values are bound to besides namespace and ID (server::SealScope).
std::unique_ptr<server::Sealer> TestSealer(absl::string_view key_file = kTestSealKey,
                                           std::string scope = "");

struct StoreUnderTest {
  std::unique_ptr<RedisServer> redis;  // kRedis and kSealedRedis; the master of kSentinel
  std::unique_ptr<RedisServer> replica;
  std::vector<std::unique_ptr<RedisServer>> sentinels;
  std::unique_ptr<RedisClusterServers> cluster;
  std::string url;                       // the --store URL of it
  std::unique_ptr<server::Store> store;  // healthy: it has answered its servers
};

// Starts what `kind` needs and a store on it, through the server's own factory (CreateStore).
// NotFound when redis-server (or redis-cli, for a cluster) is not installed.
absl::StatusOr<StoreUnderTest> StartStore(StoreKind kind);

// Another store on `url`, through CreateStore, once it is healthy (DeadlineExceeded after 10 s).
absl::StatusOr<std::unique_ptr<server::Store>> ConnectStore(
    const std::string& url, absl::Duration redis_timeout = absl::Milliseconds(300),
    std::unique_ptr<server::Sealer> sealer = nullptr);

}  // namespace tlscache::testing

#define TLSCACHE_START_STORE_OR_SKIP(kind, var) \
  TLSCACHE_ASSIGN_OR_SKIP(var, ::tlscache::testing::StartStore(kind))

#endif  // TLSCACHE_TESTS_TESTING_STORE_UNDER_TEST_H_
