// Builds the store named by the server's --store flag.
//
//   memory                      the embedded MemoryStore
//   redis://HOST[:PORT][/DB]    a standalone Redis (port 6379 and database 0 by default;
//                               HOST may be a name, an IPv4 address or a bracketed IPv6 one)
//   redis-sentinel://HOST[:PORT][,HOST[:PORT]...]/MASTER
//                               the master Redis Sentinel names MASTER (sentinel port 26379
//                               by default), followed through failovers
//   redis-cluster://HOST[:PORT][,HOST[:PORT]...]
//                               a Redis Cluster, found through any of these nodes (port 6379
//                               by default); its masters, by slot
#ifndef TLSCACHE_SERVER_STORE_STORE_FACTORY_H_
#define TLSCACHE_SERVER_STORE_STORE_FACTORY_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/security/sealer.h"
#include "server/store/redis/redis_connection.h"
#include "server/store/redis/sentinel.h"
#include "server/store/store.h"

namespace tlscache::server {

struct StoreConfig {
  std::string url = "memory";
  size_t max_session_bytes = 16 << 10;
  size_t memory_max_bytes = size_t{256} << 20;
  absl::Duration redis_timeout = absl::Milliseconds(100);
  int redis_pool_size = 4;
  std::shared_ptr<redis::RedisCredentials> redis_auth;     // AUTH to Redis; null: none
  std::shared_ptr<redis::RedisCredentials> sentinel_auth;  // AUTH to the sentinels; null: none
  // Which deployment this is, when several share one Redis ([A-Za-z0-9._-]{1,64}): part of
  // the Redis channel names and, with the database, of what sealed values are bound to.
  std::string deployment = "default";
};

// What sealed values are bound to besides their namespace and ID (Sealer's scope): the
// deployment and the Redis database, "" for the default deployment on database 0 (the
// binding of values sealed before deployments were told apart). `config.url` must be valid.
std::string SealScope(const StoreConfig& config);

absl::StatusOr<redis::Endpoint> ParseRedisUrl(absl::string_view url);
absl::StatusOr<redis::SentinelConfig> ParseSentinelUrl(absl::string_view url);
absl::StatusOr<std::vector<redis::Endpoint>> ParseClusterUrl(absl::string_view url);
// Whether `url` names a store CreateStore can build, without connecting to it.
absl::Status ValidateStoreUrl(absl::string_view url);

// Errors name the offending setting, e.g. "--store: unsupported scheme 'foo'". With a
// `sealer`, every value is sealed before it reaches the store (server/store/sealed_store.h).
absl::StatusOr<std::unique_ptr<Store>> CreateStore(const StoreConfig& config,
                                                   std::unique_ptr<Sealer> sealer = nullptr);

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_STORE_STORE_FACTORY_H_
