// Unit tests of TicketKeyService's rotation and watch paths on a fake clock: the service on the
// memory store, in an in-process gRPC server, with time moving only when a test moves it.
#include "server/tickets/ticket_key_service.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/store/memory_store.h"
#include "tests/testing/eventually.h"
#include "tests/testing/fake_clock.h"
#include "tlscache/v1/ticket_keys.grpc.pb.h"

namespace tlscache::server {
namespace {

using ::tlscache::testing::Eventually;
using ::tlscache::testing::FakeClock;

constexpr absl::Duration kRotation = absl::Hours(1);
constexpr absl::Duration kMinDistribution = absl::Seconds(3);
constexpr absl::Duration kLease = absl::Seconds(30);
constexpr absl::Duration kBarrierTimeout = absl::Minutes(5);

// One replica: the service, served on a port of its own.
class Replica {
 public:
  Replica(Store* store, FakeClock* clock) {
    TicketKeyOptions options;
    options.policy.rotation = kRotation;
    options.policy.decrypt_window = 3 * kRotation;
    options.check_interval = absl::Milliseconds(5);
    // Only a notice (or the clock) brings another replica's ring: no re-read meanwhile.
    options.resync_interval = absl::Hours(24);
    options.min_distribution = kMinDistribution;
    options.barrier.lease = kLease;
    options.barrier.timeout = kBarrierTimeout;
    options.clock = clock;
    service_ = std::make_unique<TicketKeyService>(store, options);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    stub_ = v1::TicketKeys::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(port_), grpc::InsecureChannelCredentials()));
  }
  ~Replica() {
    service_->StopWatches();
    server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  }

  TicketKeyService& service() { return *service_; }
  v1::TicketKeys::Stub& stub() { return *stub_; }

  // The ring's version, 0 on an error.
  uint64_t Version(const std::string& ns) {
    v1::TicketKeysRequest request;
    request.set_namespace_(ns);
    v1::TicketKeySet ring;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    return stub_->GetTicketKeys(&context, request, &ring).ok() ? ring.version() : 0;
  }

  // `follower` says it holds `version` of the ring of `ns`.
  grpc::Status Report(const std::string& ns, const std::string& follower, uint64_t version,
                      bool leaving = false) {
    v1::TicketKeysReport request;
    request.set_namespace_(ns);
    request.set_follower(follower);
    request.set_version(version);
    request.set_leaving(leaving);
    v1::TicketKeysReportResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    grpc::Status status = stub_->ReportTicketKeys(&context, request, &response);
    if (status.ok()) {
      EXPECT_EQ(response.lease_ms(), absl::ToInt64Milliseconds(kLease));
    }
    return status;
  }

  v1::TicketKeyFollowers Followers(const std::string& ns) {
    v1::TicketKeysRequest request;
    request.set_namespace_(ns);
    v1::TicketKeyFollowers followers;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    EXPECT_TRUE(stub_->ListTicketKeyFollowers(&context, request, &followers).ok());
    return followers;
  }

  grpc::Status Rotate(const std::string& ns, absl::Duration timeout, v1::TicketKeySet* ring) {
    v1::TicketKeysRequest request;
    request.set_namespace_(ns);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    return stub_->RotateTicketKeys(&context, request, ring);
  }

 private:
  std::unique_ptr<TicketKeyService> service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::TicketKeys::Stub> stub_;
};

class TicketKeyServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MemoryStoreOptions options;
    options.clock = &clock_;
    auto store = MemoryStore::Create(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  FakeClock clock_;
  std::unique_ptr<MemoryStore> store_;
};

TEST_F(TicketKeyServiceTest, ARingRotatesOnceItsRotationHasPassedOnTheClockAndNotBefore) {
  Replica replica(store_.get(), &clock_);
  ASSERT_EQ(replica.Version("edge"), 1u);
  clock_.Advance(kRotation - absl::Seconds(1));
  absl::SleepFor(absl::Milliseconds(100));  // twenty checks of the rotation thread
  EXPECT_EQ(replica.Version("edge"), 1u) << "rotated before its time";
  clock_.Advance(absl::Seconds(2));
  EXPECT_TRUE(Eventually([&] { return replica.Version("edge") == 2u; }));
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(replica.Version("edge"), 2u) << "one rotation per interval";
}

TEST_F(TicketKeyServiceTest, AWatchOnAnotherReplicaReceivesAForcedRotationThroughTheNotice) {
  Replica a(store_.get(), &clock_);
  Replica b(store_.get(), &clock_);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  v1::TicketKeysRequest request;
  request.set_namespace_("edge");
  auto watch = b.stub().WatchTicketKeys(&context, request);
  v1::TicketKeySet first;
  ASSERT_TRUE(watch->Read(&first));
  ASSERT_EQ(first.version(), 1u);

  // A new ring's PENDING key was never served as a new key: it may be promoted at once.
  v1::TicketKeySet rotated;
  ASSERT_TRUE(a.Rotate("edge", absl::Seconds(5), &rotated).ok());
  ASSERT_EQ(rotated.version(), 2u);
  v1::TicketKeySet pushed;
  ASSERT_TRUE(watch->Read(&pushed)) << "the watch on the other replica heard nothing";
  EXPECT_EQ(pushed.version(), 2u);
  ASSERT_EQ(pushed.keys_size(), rotated.keys_size());
  for (int i = 0; i < pushed.keys_size(); ++i) {
    EXPECT_EQ(pushed.keys(i).name(), rotated.keys(i).name());
  }
  context.TryCancel();
}

TEST_F(TicketKeyServiceTest, AForcedRotationWaitsForThePendingKeyToBeOldEnough) {
  Replica replica(store_.get(), &clock_);
  v1::TicketKeySet ring;
  ASSERT_TRUE(replica.Rotate("edge", absl::Seconds(5), &ring).ok());  // a new PENDING key now
  ASSERT_EQ(ring.version(), 2u);
  const grpc::Status early = replica.Rotate("edge", absl::Milliseconds(300), &ring);
  EXPECT_EQ(early.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << early.error_message();
  EXPECT_EQ(replica.Version("edge"), 2u);

  grpc::Status waited;
  std::thread rotate([&] { waited = replica.Rotate("edge", absl::Seconds(10), &ring); });
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(replica.Version("edge"), 2u) << "promoted a key nodes may not have yet";
  clock_.Advance(kMinDistribution);
  rotate.join();
  ASSERT_TRUE(waited.ok()) << waited.error_message();
  EXPECT_EQ(ring.version(), 3u);
}

TEST_F(TicketKeyServiceTest, StoppingTheWatchesEndsTheOpenOnesAndTheWaitingRotations) {
  Replica replica(store_.get(), &clock_);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  v1::TicketKeysRequest request;
  request.set_namespace_("edge");
  auto watch = replica.stub().WatchTicketKeys(&context, request);
  v1::TicketKeySet ring;
  ASSERT_TRUE(watch->Read(&ring));
  v1::TicketKeySet rotated;
  ASSERT_TRUE(replica.Rotate("edge", absl::Seconds(5), &rotated).ok());  // a new PENDING key
  ASSERT_TRUE(watch->Read(&ring));
  ASSERT_EQ(ring.version(), 2u);

  grpc::Status waiting;
  std::thread rotate([&] { waiting = replica.Rotate("edge", absl::Seconds(10), &rotated); });
  absl::SleepFor(absl::Milliseconds(200));  // the rotation waits for the clock
  const absl::Time start = absl::Now();
  replica.service().StopWatches();
  EXPECT_FALSE(watch->Read(&ring));
  EXPECT_TRUE(watch->Finish().ok());
  rotate.join();
  EXPECT_EQ(waiting.error_code(), grpc::StatusCode::UNAVAILABLE) << waiting.error_message();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "a waiting call held the shutdown";
}

// A follower that holds version 1 when version 2 is the ring has not got version 2's PENDING
// key: promoting it would let nodes encrypt with a key that follower cannot decrypt.
TEST_F(TicketKeyServiceTest, AForcedRotationWaitsUntilEveryLiveFollowerHoldsThePendingKey) {
  Replica replica(store_.get(), &clock_);
  ASSERT_EQ(replica.Version("edge"), 1u);
  ASSERT_TRUE(replica.Report("edge", "node-1/keysync", 1).ok());
  ASSERT_TRUE(replica.Report("edge", "node-2/nginx[7]", 1).ok());
  v1::TicketKeySet ring;
  ASSERT_TRUE(replica.Rotate("edge", absl::Seconds(5), &ring).ok()) << "both hold version 1";
  ASSERT_EQ(ring.version(), 2u);
  ASSERT_TRUE(replica.Report("edge", "node-2/nginx[7]", 2).ok());
  clock_.Advance(kMinDistribution);
  // A caller whose deadline (on the service's clock) comes first is told whom it waited for.
  grpc::Status early;
  std::thread impatient([&] { early = replica.Rotate("edge", absl::Seconds(10), &ring); });
  absl::SleepFor(absl::Milliseconds(200));
  clock_.Advance(absl::Seconds(11));
  impatient.join();
  EXPECT_EQ(early.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << early.error_message();
  EXPECT_NE(early.error_message().find("node-1/keysync (version 1)"), std::string::npos)
      << early.error_message();

  grpc::Status waited;
  std::thread rotate([&] { waited = replica.Rotate("edge", absl::Seconds(10), &ring); });
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(replica.Version("edge"), 2u) << "promoted a key node-1 cannot decrypt with";
  const v1::TicketKeyFollowers followers = replica.Followers("edge");
  EXPECT_EQ(followers.ring_version(), 2u);
  ASSERT_EQ(followers.followers_size(), 2);
  EXPECT_EQ(followers.followers(0).follower(), "node-1/keysync");
  EXPECT_EQ(followers.followers(0).version(), 1u);
  EXPECT_EQ(replica.service().barrier().figures(clock_.Now()).at("edge").lagging, 1u);

  ASSERT_TRUE(replica.Report("edge", "node-1/keysync", 2).ok());
  rotate.join();
  ASSERT_TRUE(waited.ok()) << waited.error_message();
  EXPECT_EQ(ring.version(), 3u);
  EXPECT_TRUE(replica.service().barrier().left_behind().empty());
}

TEST_F(TicketKeyServiceTest, AFollowerWhoseLeaseEndsStopsCountingAndIsNamedAsLeftBehind) {
  Replica replica(store_.get(), &clock_);
  ASSERT_EQ(replica.Version("edge"), 1u);
  ASSERT_TRUE(replica.Report("edge", "node-1/keysync", 1).ok());
  v1::TicketKeySet ring;
  ASSERT_TRUE(replica.Rotate("edge", absl::Seconds(5), &ring).ok());
  clock_.Advance(kMinDistribution);  // node-1 stops reporting: it holds version 1

  grpc::Status waited;
  std::thread rotate([&] { waited = replica.Rotate("edge", absl::Seconds(10), &ring); });
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(replica.Version("edge"), 2u) << "did not wait for a follower whose lease runs";
  clock_.Advance(kLease);
  rotate.join();
  ASSERT_TRUE(waited.ok()) << waited.error_message();
  EXPECT_EQ(ring.version(), 3u);
  const auto left = replica.service().barrier().left_behind();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left.begin()->first.follower, "node-1/keysync");
  EXPECT_EQ(left.begin()->first.reason, "lease_ended");
  EXPECT_EQ(replica.Followers("edge").followers_size(), 0) << "a lapsed follower is forgotten";
}

TEST_F(TicketKeyServiceTest, AScheduledRotationGoesAheadWithoutALiveLaggardAfterTheTimeout) {
  Replica replica(store_.get(), &clock_);
  ASSERT_EQ(replica.Version("edge"), 1u);
  ASSERT_TRUE(replica.Report("edge", "node-1/keysync", 1).ok());
  clock_.Advance(kRotation);
  ASSERT_TRUE(Eventually([&] { return replica.Version("edge") == 2u; }));
  // node-1 keeps reporting version 1 (say, its reload fails): the next rotation is held. Its
  // lease runs when that rotation comes due (its first report has long ended and been
  // forgotten).
  clock_.Advance(kRotation - absl::Seconds(1));
  ASSERT_TRUE(replica.Report("edge", "node-1/keysync", 1).ok());
  clock_.Advance(absl::Seconds(1));
  for (absl::Duration held; held < kBarrierTimeout; held += kLease / 3) {
    ASSERT_TRUE(replica.Report("edge", "node-1/keysync", 1).ok());
    absl::SleepFor(absl::Milliseconds(50));
    ASSERT_EQ(replica.Version("edge"), 2u) << "went ahead after " << held;
    clock_.Advance(kLease / 3);
  }
  ASSERT_TRUE(replica.Report("edge", "node-1/keysync", 1).ok());
  EXPECT_TRUE(Eventually([&] { return replica.Version("edge") == 3u; }));
  const auto left = replica.service().barrier().left_behind();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left.begin()->first.reason, "timeout");
  EXPECT_GE(replica.service().barrier().figures(clock_.Now()).at("edge").last_wait,
            kBarrierTimeout);
}

TEST_F(TicketKeyServiceTest, AFollowerThatLeavesNoLongerCountsAndABadNameIsRefused) {
  Replica replica(store_.get(), &clock_);
  ASSERT_TRUE(replica.Report("edge", "node-1/keysync", 1).ok());
  ASSERT_EQ(replica.Followers("edge").followers_size(), 1);
  ASSERT_TRUE(replica.Report("edge", "node-1/keysync", 1, /*leaving=*/true).ok());
  EXPECT_EQ(replica.Followers("edge").followers_size(), 0);
  const grpc::Status bad = replica.Report("edge", "node 1;rm", 1);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad.error_message().find("follower may only contain"), std::string::npos)
      << bad.error_message();
}

}  // namespace
}  // namespace tlscache::server
