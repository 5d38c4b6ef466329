// tlscache.v1.TicketKeys through real gRPC channels: rings created once, shared by replicas on
// one Redis, rotated once per interval whatever the number of replicas, pushed to watchers.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "client/ticket_key_follower.h"
#include "server/cache_server.h"
#include "server/store/store_factory.h"
#include "tests/testing/grpc_probe.h"
#include "tests/testing/redis_server.h"
#include "tlscache/v1/ticket_keys.grpc.pb.h"

namespace tlscache::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::tlscache::testing::RedisServer;
using v1::TicketKey;

// `seal_key`: 64 hex digits to seal the store with, or "" for none.
std::unique_ptr<CacheServer> StartReplica(const std::string& store_url, absl::Duration rotation,
                                          const std::string& seal_key = "",
                                          absl::Duration min_distribution = absl::Seconds(3)) {
  StoreConfig store;
  store.url = store_url;
  std::unique_ptr<Sealer> sealer;
  if (!seal_key.empty()) sealer = *Sealer::Create(*ParseSealKeys(seal_key));
  auto created = CreateStore(store, std::move(sealer));
  EXPECT_TRUE(created.ok()) << created.status();
  CacheServerOptions options;
  options.listen = "127.0.0.1:0";
  options.ticket_keys.policy.rotation = rotation;
  options.ticket_keys.policy.decrypt_window = rotation * 3;
  options.ticket_keys.check_interval = absl::Milliseconds(20);
  options.ticket_keys.min_distribution = std::min(min_distribution, rotation / 2);
  auto server = CacheServer::Start(options, *std::move(created));
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return nullptr;
  // Serving: its store is connected.
  EXPECT_TRUE(testing::AwaitHealth(*testing::Connect((*server)->port()), "",
                                   grpc::health::v1::HealthCheckResponse::SERVING));
  return *std::move(server);
}

absl::StatusOr<v1::TicketKeySet> GetKeys(int port, const std::string& ns) {
  auto stub = v1::TicketKeys::NewStub(testing::Connect(port));
  v1::TicketKeysRequest request;
  request.set_namespace_(ns);
  v1::TicketKeySet ring;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  grpc::Status status = stub->GetTicketKeys(&context, request, &ring);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }
  return ring;
}

grpc::Status RotateKeys(int port, const std::string& ns, absl::Duration timeout,
                        v1::TicketKeySet* ring) {
  auto stub = v1::TicketKeys::NewStub(testing::Connect(port));
  v1::TicketKeysRequest request;
  request.set_namespace_(ns);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return stub->RotateTicketKeys(&context, request, ring);
}

std::string NameOf(const v1::TicketKeySet& ring, TicketKey::State state) {
  for (const TicketKey& key : ring.keys()) {
    if (key.state() == state) return key.name();
  }
  return "";
}

std::vector<std::string> Names(const v1::TicketKeySet& ring) {
  std::vector<std::string> names;
  for (const TicketKey& key : ring.keys()) names.push_back(key.name());
  return names;
}

TEST(TicketKeysGrpcTest, ARingIsCreatedOnFirstUseAndThenServedAsIs) {
  auto server = StartReplica("memory", absl::Hours(1));
  ASSERT_NE(server, nullptr);
  auto first = GetKeys(server->port(), "edge");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->version(), 1u);
  ASSERT_EQ(first->keys_size(), 2);
  std::multiset<int> states;
  for (const TicketKey& key : first->keys()) {
    states.insert(key.state());
    EXPECT_EQ(key.name().size(), 16u);
    EXPECT_EQ(key.aes_key().size(), 32u);
    EXPECT_EQ(key.hmac_key().size(), 32u);
  }
  EXPECT_EQ(states, (std::multiset<int>{TicketKey::PENDING, TicketKey::ACTIVE}));
  auto again = GetKeys(server->port(), "edge");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->version(), 1u);
  EXPECT_EQ(Names(*again), Names(*first));
  auto other = GetKeys(server->port(), "other");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(Names(*other), Names(*first));
  auto bad = GetKeys(server->port(), "bad namespace");
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status()));
  EXPECT_THAT(bad.status().message(), HasSubstr("namespace"));
}

TEST(TicketKeysGrpcTest, ReplicasOnOneRedisShareOneRingAndRotateOncePerInterval) {
  std::unique_ptr<RedisServer> redis;
  TLSCACHE_START_REDIS_OR_SKIP(redis);
  const absl::Duration rotation = absl::Milliseconds(300);
  auto a = StartReplica(redis->url(), rotation);
  auto b = StartReplica(redis->url(), rotation);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(GetKeys(a->port(), "edge").ok());
  const absl::Time start = absl::Now();
  uint64_t last_version = 0;
  while (absl::Now() - start < absl::Milliseconds(2100)) {
    auto from_a = GetKeys(a->port(), "edge");
    auto from_b = GetKeys(b->port(), "edge");
    ASSERT_TRUE(from_a.ok() && from_b.ok());
    for (const auto& ring : {*from_a, *from_b}) {
      EXPECT_GE(ring.version(), last_version);  // never goes back
    }
    if (from_a->version() == from_b->version()) {
      EXPECT_EQ(Names(*from_a), Names(*from_b)) << "two rings for version " << from_a->version();
    }
    last_version = std::max(from_a->version(), from_b->version());
    absl::SleepFor(absl::Milliseconds(25));
  }
  // Seven intervals of 300 ms: one rotation each, not two (one per replica).
  EXPECT_GE(last_version, 6u);
  EXPECT_LE(last_version, 9u);
}

TEST(TicketKeysGrpcTest, AWatchReceivesTheRingThenEveryRotation) {
  auto server = StartReplica("memory", absl::Milliseconds(200));
  ASSERT_NE(server, nullptr);
  auto stub = v1::TicketKeys::NewStub(testing::Connect(server->port()));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  v1::TicketKeysRequest request;
  request.set_namespace_("edge");
  auto stream = stub->WatchTicketKeys(&context, request);
  std::vector<v1::TicketKeySet> rings;
  v1::TicketKeySet ring;
  while (rings.size() < 5 && stream->Read(&ring)) rings.push_back(ring);
  context.TryCancel();
  ASSERT_EQ(rings.size(), 5u);
  for (size_t i = 1; i < rings.size(); ++i) {
    EXPECT_EQ(rings[i].version(), rings[i - 1].version() + 1);
    // The key that was PENDING is now ACTIVE: every watcher had it before it encrypted.
    std::string pending;
    for (const TicketKey& key : rings[i - 1].keys()) {
      if (key.state() == TicketKey::PENDING) pending = key.name();
    }
    bool promoted = false;
    for (const TicketKey& key : rings[i].keys()) {
      promoted = promoted || (key.state() == TicketKey::ACTIVE && key.name() == pending);
    }
    EXPECT_TRUE(promoted) << "version " << rings[i].version();
  }
}

TEST(TicketKeysGrpcTest, AProcessCutOffFromTheServiceStopsDecryptingWithAKeyPastItsEnd) {
  // Rotation every 500 ms, a retired key decrypting for 1.5 s after.
  auto server = StartReplica("memory", absl::Milliseconds(500));
  ASSERT_NE(server, nullptr);
  client::TicketKeyFollower follower(testing::Connect(server->port()), "edge");
  std::shared_ptr<const client::TicketKeySnapshot> first = follower.AwaitFirst(absl::Seconds(10));
  ASSERT_NE(first, nullptr);
  const TicketKeyRecord active = *first->Active();
  // Rotated: the key that encrypted now only decrypts, until its end.
  std::shared_ptr<const client::TicketKeySnapshot> ring;
  int64_t not_after = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (not_after == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
    ring = follower.Current();
    for (size_t i = 0; i < ring->keys.size(); ++i) {
      if (ring->keys[i].name == active.name && i != ring->active) {
        not_after = ring->not_after_unix_ms[i];
      }
    }
  }
  ASSERT_GT(not_after, 0) << "the active key was never retired";
  // The service goes; the process keeps the last ring it had.
  server->Shutdown(absl::ZeroDuration());
  server.reset();
  ring = follower.Current();
  ASSERT_NE(ring, nullptr);
  EXPECT_NE(ring->Find(active.name.data(), absl::FromUnixMillis(not_after - 1)), nullptr);
  EXPECT_EQ(ring->Find(active.name.data(), absl::FromUnixMillis(not_after + 1)), nullptr);
  // And at the clock the handshakes read: once the end has passed, the key is gone.
  absl::SleepFor(absl::FromUnixMillis(not_after + 10) - absl::Now());
  EXPECT_EQ(follower.Current()->Find(active.name.data(), absl::Now()), nullptr);
  // The active key still encrypts (and decrypts): a process cut off keeps issuing tickets.
  EXPECT_NE(ring->Find(ring->Active()->name.data(), absl::Now()), nullptr);
}

TEST(TicketKeysGrpcTest, NeitherTheLogNorKeysShowHoldKeyBytes) {
  auto process = testing::StartServerProcess({"--ticket_rotation=1s"});
  ASSERT_TRUE(process.ok()) << process.status();
  auto ring = GetKeys(process->port, "edge");
  ASSERT_TRUE(ring.ok());
  ASSERT_TRUE(process->process->WaitForOutput("rotated to version 2", absl::Seconds(10)).ok());
  auto rotated = GetKeys(process->port, "edge");
  ASSERT_TRUE(rotated.ok());
  auto ctl = testing::Subprocess::Start({testing::BuiltBinary("tlscachectl"),
                                         absl::StrCat("--addr=127.0.0.1:", process->port),
                                         "--namespace=edge", "keys", "show"});
  ASSERT_TRUE(ctl.ok());
  ASSERT_EQ(*(*ctl)->Wait(absl::Seconds(10)), 0);
  const std::string shown = *(*ctl)->FullOutput(absl::Seconds(5));
  for (const TicketKey& key : rotated->keys()) {
    EXPECT_THAT(shown, HasSubstr(absl::BytesToHexString(key.name())));
  }
  process->process->Signal(SIGTERM);
  ASSERT_TRUE(process->process->Wait(absl::Seconds(15)).ok());
  const std::string log = *process->process->FullOutput(absl::Seconds(5)) + shown;
  for (const auto* r : {&*ring, &*rotated}) {
    for (const TicketKey& key : r->keys()) {
      for (const std::string& secret : {key.aes_key(), key.hmac_key()}) {
        EXPECT_THAT(log, Not(HasSubstr(secret)));
        EXPECT_THAT(log, Not(HasSubstr(absl::BytesToHexString(secret))));
        EXPECT_THAT(log, Not(HasSubstr(absl::Base64Escape(secret))));
      }
    }
  }
}

}  // namespace
}  // namespace tlscache::server

namespace tlscache::server {
namespace {

TEST(TicketKeysGrpcTest, SealedRingsHoldNoKeyInTheClearAndAnUnreadableRingIsReplaced) {
  std::unique_ptr<RedisServer> redis;
  TLSCACHE_START_REDIS_OR_SKIP(redis);
  // A ring stored before sealing was turned on.
  auto unsealed = StartReplica(redis->url(), absl::Hours(1));
  ASSERT_NE(unsealed, nullptr);
  auto clear = GetKeys(unsealed->port(), "edge");
  ASSERT_TRUE(clear.ok()) << clear.status();
  auto raw = redis->Cli({"HGET", "tlscache:@ring:edge", "r"});
  ASSERT_TRUE(raw.ok());
  EXPECT_THAT(*raw, HasSubstr(clear->keys(0).aes_key()));  // the check can see a key
  unsealed.reset();

  const std::string key(64, 'c');
  auto sealed = StartReplica(redis->url(), absl::Hours(1), key);
  ASSERT_NE(sealed, nullptr);
  auto replaced = GetKeys(sealed->port(), "edge");
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  EXPECT_EQ(replaced->version(), clear->version() + 1);
  EXPECT_THAT(Names(*replaced), Not(::testing::Contains(clear->keys(0).name())));
  raw = redis->Cli({"HGET", "tlscache:@ring:edge", "r"});
  ASSERT_TRUE(raw.ok());
  for (const TicketKey& k : replaced->keys()) {
    EXPECT_THAT(*raw, Not(HasSubstr(k.aes_key())));
    EXPECT_THAT(*raw, Not(HasSubstr(k.hmac_key())));
  }
  // Another replica with the same seal key serves the same ring.
  auto peer = StartReplica(redis->url(), absl::Hours(1), key);
  ASSERT_NE(peer, nullptr);
  auto same = GetKeys(peer->port(), "edge");
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->version(), replaced->version());
  EXPECT_EQ(Names(*same), Names(*replaced));
}

}  // namespace
}  // namespace tlscache::server

namespace tlscache::server {
namespace {

// Two `keys rotate` in a row: the second promotes the PENDING key the first published only once
// that key is min_distribution old (1 s here, to keep the test short; 3 s by default). The
// first rotation of a ring does not wait: its PENDING key came with the ring.
TEST(TicketKeysGrpcTest, ARotationNeverPromotesAPendingKeyYoungerThanTheDistributionTime) {
  const absl::Duration min_distribution = absl::Seconds(1);
  auto server = StartReplica("memory", absl::Hours(1), "", min_distribution);
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(GetKeys(server->port(), "edge").ok());
  v1::TicketKeySet first, second;
  ASSERT_TRUE(RotateKeys(server->port(), "edge", absl::Seconds(10), &first).ok());
  const absl::Time first_done = absl::Now();
  const grpc::Status status = RotateKeys(server->port(), "edge", absl::Seconds(10), &second);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(second.version(), first.version() + 1);
  EXPECT_EQ(NameOf(second, TicketKey::ACTIVE), NameOf(first, TicketKey::PENDING));
  // The key was PENDING for the whole distribution time before it became ACTIVE.
  EXPECT_GE(absl::Now() - first_done, min_distribution - absl::Milliseconds(50));
  EXPECT_GE(second.pending_since_unix_ms() - first.pending_since_unix_ms(),
            absl::ToInt64Milliseconds(min_distribution));

  // A caller that cannot wait that long is told why, and the ring stays as it is.
  v1::TicketKeySet refused;
  const grpc::Status hurried =
      RotateKeys(server->port(), "edge", absl::Milliseconds(300), &refused);
  EXPECT_EQ(hurried.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(hurried.error_message(), HasSubstr("nodes may not have it yet"));
  EXPECT_THAT(hurried.error_message(), HasSubstr("can become ACTIVE in"));
  EXPECT_EQ(GetKeys(server->port(), "edge")->version(), second.version());
}

// Rings for made-up namespaces: the replica keeps at most max_namespaces of them (its default,
// 1024), each still answered.
TEST(TicketKeysGrpcTest, AFloodOfMadeUpNamespacesLeavesTheRingCountAtItsCap) {
  auto server = StartReplica("memory", absl::Hours(1));
  ASSERT_NE(server, nullptr);
  const size_t cap = TicketKeyOptions{}.max_namespaces;
  constexpr int kNamespaces = 10000;
  constexpr int kThreads = 4;
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto stub = v1::TicketKeys::NewStub(testing::Connect(server->port()));
      for (int i = t; i < kNamespaces; i += kThreads) {
        v1::TicketKeysRequest request;
        request.set_namespace_(absl::StrCat("made-up-", i));
        v1::TicketKeySet ring;
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
        if (!stub->GetTicketKeys(&context, request, &ring).ok()) failed++;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failed.load(), 0);
  const std::string metrics = server->metrics().Render();
  size_t rings = 0;
  for (size_t at = metrics.find("\ntlscache_ticket_ring_version{"); at != std::string::npos;
       at = metrics.find("\ntlscache_ticket_ring_version{", at + 1)) {
    ++rings;
  }
  EXPECT_EQ(rings, cap);
  // The most recent namespaces are the ones kept.
  EXPECT_THAT(metrics, HasSubstr(absl::StrCat("namespace=\"made-up-", kNamespaces - 1, "\"")));
  EXPECT_THAT(metrics, Not(HasSubstr("namespace=\"made-up-0\"")));
}

}  // namespace
}  // namespace tlscache::server
