#include "server/store/store_factory.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/host_port.h"
#include "common/validation.h"
#include "server/store/memory_store.h"
#include "server/store/redis/redis_store.h"
#include "server/store/sealed_store.h"

namespace tlscache::server {
namespace {

constexpr absl::string_view kRedisScheme = "redis://";
constexpr absl::string_view kSentinelScheme = "redis-sentinel://";
constexpr absl::string_view kClusterScheme = "redis-cluster://";

absl::Status BadUrl(absl::string_view url, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("--store=", url, ": ", why, " (expected redis://HOST[:PORT][/DB])"));
}

}  // namespace

// "HOST[:PORT],HOST[:PORT]...", each checked as a redis:// authority; at most 16. Not ok:
// what is wrong, for the caller's message.
absl::StatusOr<std::vector<redis::Endpoint>> ParseNodeList(absl::string_view list, int default_port,
                                                           absl::string_view what) {
  std::vector<redis::Endpoint> nodes;
  for (absl::string_view address : absl::StrSplit(list, ',')) {
    absl::StatusOr<HostPort> node = ParseHostPort(address, PeerRules(default_port));
    if (!node.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " '", address, "' is not HOST:PORT: ", node.status().message()));
    }
    redis::Endpoint endpoint;
    endpoint.host = std::move(node->host);
    endpoint.port = node->port;
    nodes.push_back(std::move(endpoint));
  }
  if (nodes.size() > 16)
    return absl::InvalidArgumentError(absl::StrCat("more than 16 ", what, "s"));
  return nodes;
}

absl::StatusOr<std::vector<redis::Endpoint>> ParseClusterUrl(absl::string_view url) {
  const auto bad = [url](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--store=", url, ": ", why, " (expected redis-cluster://HOST:PORT[,HOST:PORT...])"));
  };
  if (!absl::StartsWith(url, kClusterScheme)) return bad("not a redis-cluster:// URL");
  const absl::string_view rest = url.substr(kClusterScheme.size());
  if (absl::StrContains(rest, '/')) return bad("a cluster has no database or name to select");
  absl::StatusOr<std::vector<redis::Endpoint>> nodes = ParseNodeList(rest, 6379, "node");
  if (!nodes.ok()) return bad(nodes.status().message());
  return nodes;
}

absl::StatusOr<redis::SentinelConfig> ParseSentinelUrl(absl::string_view url) {
  const auto bad = [url](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("--store=", url, ": ", why,
                     " (expected redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTER)"));
  };
  if (!absl::StartsWith(url, kSentinelScheme)) return bad("not a redis-sentinel:// URL");
  absl::string_view rest = url.substr(kSentinelScheme.size());
  const size_t slash = rest.find('/');
  if (slash == absl::string_view::npos || slash + 1 == rest.size()) return bad("no master name");
  redis::SentinelConfig config;
  config.master_name = std::string(rest.substr(slash + 1));
  if (absl::StrContains(config.master_name, '/')) return bad("junk after the master name");
  absl::StatusOr<std::vector<redis::Endpoint>> sentinels =
      ParseNodeList(rest.substr(0, slash), 26379, "sentinel");
  if (!sentinels.ok()) return bad(sentinels.status().message());
  config.sentinels = *std::move(sentinels);
  return config;
}

absl::StatusOr<redis::Endpoint> ParseRedisUrl(absl::string_view url) {
  if (!absl::StartsWith(url, kRedisScheme)) return BadUrl(url, "not a redis:// URL");
  absl::string_view rest = url.substr(kRedisScheme.size());
  redis::Endpoint endpoint;
  if (size_t slash = rest.find('/'); slash != absl::string_view::npos) {
    absl::string_view db = rest.substr(slash + 1);
    if (!absl::SimpleAtoi(db, &endpoint.db) || endpoint.db < 0 || endpoint.db > 65535) {
      return BadUrl(url, absl::StrCat("database '", db, "' is not a number"));
    }
    rest = rest.substr(0, slash);
  }
  if (absl::StrContains(rest, '@')) {
    return BadUrl(url, "credentials in the URL are not supported");
  }
  absl::StatusOr<HostPort> address = ParseHostPort(rest, PeerRules(endpoint.port));
  if (!address.ok()) return BadUrl(url, address.status().message());
  endpoint.host = std::move(address->host);
  endpoint.port = address->port;
  return endpoint;
}

absl::Status ValidateStoreUrl(absl::string_view url) {
  if (url == "memory") return absl::OkStatus();
  if (absl::StartsWith(url, kRedisScheme)) return ParseRedisUrl(url).status();
  if (absl::StartsWith(url, kSentinelScheme)) return ParseSentinelUrl(url).status();
  if (absl::StartsWith(url, kClusterScheme)) return ParseClusterUrl(url).status();
  return absl::InvalidArgumentError(
      absl::StrCat("--store=", url,
                   ": unsupported store (expected memory, redis://HOST:PORT[/DB], "
                   "redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTER or "
                   "redis-cluster://HOST:PORT[,HOST:PORT...])"));
}

namespace {

absl::StatusOr<std::unique_ptr<Store>> CreateBareStore(const StoreConfig& config) {
  if (absl::Status s = ValidateStoreUrl(config.url); !s.ok()) return s;
  if (!ValidateNamespace(config.deployment).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--deployment=", config.deployment, ": must match [A-Za-z0-9._-]{1,64}"));
  }
  if (config.url == "memory") {
    MemoryStoreOptions options;
    options.max_bytes = config.memory_max_bytes;
    options.max_session_bytes = config.max_session_bytes;
    absl::StatusOr<std::unique_ptr<MemoryStore>> store = MemoryStore::Create(options);
    if (!store.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--memory_max_bytes: ", store.status().message()));
    }
    return std::unique_ptr<Store>(*std::move(store));
  }
  redis::RedisStoreOptions options;
  options.pool_size = config.redis_pool_size;
  options.timeout = config.redis_timeout;
  options.max_session_bytes = config.max_session_bytes;
  options.auth = config.redis_auth;
  options.deployment = config.deployment;
  if (absl::StartsWith(config.url, kSentinelScheme)) {
    options.sentinel = *ParseSentinelUrl(config.url);
    options.sentinel->auth = config.sentinel_auth;
  } else if (absl::StartsWith(config.url, kClusterScheme)) {
    options.cluster = *ParseClusterUrl(config.url);
  } else {
    options.endpoint = *ParseRedisUrl(config.url);
  }
  absl::StatusOr<std::unique_ptr<redis::RedisStore>> store = redis::RedisStore::Create(options);
  if (!store.ok()) return store.status();
  return std::unique_ptr<Store>(*std::move(store));
}

}  // namespace

std::string SealScope(const StoreConfig& config) {
  int db = 0;
  if (absl::StartsWith(config.url, kRedisScheme)) {
    absl::StatusOr<redis::Endpoint> endpoint = ParseRedisUrl(config.url);
    if (endpoint.ok()) db = endpoint->db;
  }
  if (config.deployment == "default" && db == 0) return "";
  return absl::StrCat(config.deployment, ":", db);
}

absl::StatusOr<std::unique_ptr<Store>> CreateStore(const StoreConfig& config,
                                                   std::unique_ptr<Sealer> sealer) {
  if (sealer == nullptr) return CreateBareStore(config);
  // The store beneath holds sealed values, each longer by the seal's overhead.
  StoreConfig bare = config;
  bare.max_session_bytes += kSealOverheadBytes;
  absl::StatusOr<std::unique_ptr<Store>> store = CreateBareStore(bare);
  if (!store.ok()) return store.status();
  return std::unique_ptr<Store>(new SealedStore(*std::move(store), std::move(sealer)));
}

}  // namespace tlscache::server
