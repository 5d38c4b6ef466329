#include "server/session_cache_service.h"

#include "gtest/gtest.h"

namespace tlscache::server {
namespace {

TEST(SessionCacheServiceTest, ZeroTtlMeansTheDefaultAndLargeTtlsAreClamped) {
  ServiceOptions options;
  options.default_ttl = absl::Seconds(300);
  options.max_ttl = absl::Seconds(3600);
  SessionCacheService service(nullptr, options);
  EXPECT_EQ(service.EffectiveTtl(0), absl::Seconds(300));
  EXPECT_EQ(service.EffectiveTtl(1), absl::Seconds(1));
  EXPECT_EQ(service.EffectiveTtl(3600), absl::Seconds(3600));
  EXPECT_EQ(service.EffectiveTtl(3601), absl::Seconds(3600));
  EXPECT_EQ(service.EffectiveTtl(UINT32_MAX), absl::Seconds(3600));
}

}  // namespace
}  // namespace tlscache::server
