#include "tests/testing/store_under_test.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/store/store_factory.h"

namespace tlscache::testing {
namespace {

constexpr char kSentinelMaster[] = "tlscache";

bool Sealed(StoreKind kind) {
  return kind == StoreKind::kSealedMemory || kind == StoreKind::kSealedRedis;
}

// The URL of the store `kind` names, starting its servers into `out`.
absl::StatusOr<std::string> StartServers(StoreKind kind, StoreUnderTest& out) {
  switch (kind) {
    case StoreKind::kMemory:
    case StoreKind::kSealedMemory:
      return std::string("memory");
    case StoreKind::kRedis:
    case StoreKind::kSealedRedis: {
      absl::StatusOr<std::unique_ptr<RedisServer>> redis = RedisServer::Start();
      if (!redis.ok()) return redis.status();
      out.redis = *std::move(redis);
      return out.redis->url();
    }
    case StoreKind::kSentinel: {
      // The replica's first sync starts at once, not 5 s later (Redis 7's default waits for
      // more replicas to share the transfer).
      absl::StatusOr<std::unique_ptr<RedisServer>> master =
          RedisServer::Start({"--repl-diskless-sync-delay", "0"});
      if (!master.ok()) return master.status();
      out.redis = *std::move(master);
      absl::StatusOr<std::unique_ptr<RedisServer>> replica =
          RedisServer::Start({"--replicaof", "127.0.0.1", absl::StrCat(out.redis->port())});
      if (!replica.ok()) return replica.status();
      out.replica = *std::move(replica);
      // A deletion or consuming lookup is acknowledged once the replica confirms it: the
      // store is handed over once the replica takes the master's stream.
      if (absl::Status s = out.redis->AwaitReplicas(1, absl::Seconds(20)); !s.ok()) return s;
      std::string url = "redis-sentinel://";
      for (int i = 0; i < 3; ++i) {
        absl::StatusOr<std::unique_ptr<RedisServer>> sentinel =
            RedisServer::StartSentinel(kSentinelMaster, out.redis->port());
        if (!sentinel.ok()) return sentinel.status();
        absl::StrAppend(&url, i == 0 ? "" : ",", "127.0.0.1:", (*sentinel)->port());
        out.sentinels.push_back(*std::move(sentinel));
      }
      return absl::StrCat(url, "/", kSentinelMaster);
    }
    case StoreKind::kCluster: {
      absl::StatusOr<std::unique_ptr<RedisClusterServers>> cluster =
          RedisClusterServers::Start(3, 1);
      if (!cluster.ok()) return cluster.status();
      out.cluster = *std::move(cluster);
      return out.cluster->url();
    }
  }
  return absl::InternalError("unknown store kind");
}

}  // namespace

std::string StoreKindName(const ::testing::TestParamInfo<StoreKind>& info) {
  switch (info.param) {
    case StoreKind::kMemory:
      return "Memory";
    case StoreKind::kSealedMemory:
      return "SealedMemory";
    case StoreKind::kRedis:
      return "Redis";
    case StoreKind::kSealedRedis:
      return "SealedRedis";
    case StoreKind::kSentinel:
      return "Sentinel";
    case StoreKind::kCluster:
      return "Cluster";
  }
  return "Unknown";
}

std::unique_ptr<server::Sealer> TestSealer(absl::string_view key_file, std::string scope) {
  return *server::Sealer::Create(*server::ParseSealKeys(key_file), std::move(scope));
}

absl::StatusOr<std::unique_ptr<server::Store>> ConnectStore(
    const std::string& url, absl::Duration redis_timeout, std::unique_ptr<server::Sealer> sealer) {
  server::StoreConfig config;
  config.url = url;
  config.redis_timeout = redis_timeout;
  absl::StatusOr<std::unique_ptr<server::Store>> store =
      server::CreateStore(config, std::move(sealer));
  if (!store.ok()) return store.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  absl::Status health;
  while (!(health = (*store)->Health()).ok()) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat((*store)->Describe(), " not healthy after 10 s: ", health.ToString()));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return store;
}

absl::StatusOr<StoreUnderTest> StartStore(StoreKind kind) {
  StoreUnderTest out;
  absl::StatusOr<std::string> url = StartServers(kind, out);
  if (!url.ok()) return url.status();
  out.url = *url;
  absl::StatusOr<std::unique_ptr<server::Store>> store =
      ConnectStore(out.url, absl::Milliseconds(300), Sealed(kind) ? TestSealer() : nullptr);
  if (!store.ok()) return store.status();
  out.store = *std::move(store);
  return out;
}

}  // namespace tlscache::testing
