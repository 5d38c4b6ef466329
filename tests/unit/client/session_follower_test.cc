// Unit tests of SessionFollower against the fake cache's Follow stream: stores up the stream
// and their acknowledgements, withdrawals the service pushes, and the hand-back to the unary
// path when the stream is down.
#include "client/session_follower.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/eventually.h"
#include "tests/testing/fake_session_cache.h"

namespace tlscache::client {
namespace {

using ::tlscache::testing::Eventually;
using ::tlscache::testing::FakeSessionCache;

class SessionFollowerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_.FollowChanges();
    absl::StatusOr<std::shared_ptr<Node>> node = Node::Create(size_t{1} << 20);
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = *std::move(node);
  }

  std::unique_ptr<SessionFollower> Follow() {
    auto channel = grpc::CreateChannel(fake_.addr(), grpc::InsecureChannelCredentials());
    return std::make_unique<SessionFollower>(
        channel, "ns", node_,
        [this](v1::PutRequest put) {
          absl::MutexLock lock(&mu_);
          resent_puts_.push_back(put.session_id());
        },
        [this](v1::DeleteRequest removal) {
          absl::MutexLock lock(&mu_);
          resent_deletes_.push_back(removal.session_id());
        },
        [this](absl::string_view session_id, absl::string_view) {
          absl::MutexLock lock(&mu_);
          withdrawn_.emplace_back(session_id);
        });
  }

  bool Heard(absl::string_view session_id) {
    absl::MutexLock lock(&mu_);
    for (const std::string& id : withdrawn_) {
      if (id == session_id) return true;
    }
    return false;
  }

  FakeSessionCache fake_;
  std::shared_ptr<Node> node_;
  absl::Mutex mu_;
  std::vector<std::string> resent_puts_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> resent_deletes_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> withdrawn_ ABSL_GUARDED_BY(mu_);
};

TEST_F(SessionFollowerTest, AStoreGoesUpTheStreamAndItsAcknowledgementComesBack) {
  std::unique_ptr<SessionFollower> follower = Follow();
  ASSERT_TRUE(Eventually([&] { return follower->stats().up; }));
  SecretBytes session(std::string("master secret"));
  auto ack = std::make_shared<Acknowledgement>();
  ASSERT_TRUE(follower->Put("id-1", session, 60, ack));
  EXPECT_TRUE(ack->Await(absl::Now() + absl::Seconds(10)));
  EXPECT_TRUE(fake_.Holds("id-1"));
  EXPECT_EQ(fake_.puts(), 1);
  EXPECT_TRUE(follower->Flush(absl::Seconds(10)));
  EXPECT_GE(follower->stats().stored, 1u);
  // It is in the near cache too: the next lookup on this node needs no round trip.
  ASSERT_TRUE(Eventually([&] { return follower->Lookup("id-1").has_value(); }));
  EXPECT_EQ(follower->Lookup("id-1")->view(), "master secret");
}

TEST_F(SessionFollowerTest, AWithdrawalTheServicePushesLeavesTheNearCacheAndIsHeard) {
  std::unique_ptr<SessionFollower> follower = Follow();
  ASSERT_TRUE(Eventually([&] { return follower->stats().up && follower->stats().leading; }));
  SecretBytes session(std::string("master secret"));
  ASSERT_TRUE(follower->Put("id-2", session, 60, nullptr));
  ASSERT_TRUE(follower->Flush(absl::Seconds(10)));
  ASSERT_TRUE(Eventually([&] { return follower->Lookup("id-2").has_value(); }));

  fake_.Withdraw("ns", "id-2");  // as another node's deletion would come
  ASSERT_TRUE(Eventually([&] { return Heard("id-2"); }));
  EXPECT_FALSE(follower->Lookup("id-2").has_value());
  EXPECT_GE(follower->stats().received, 1u);
}

TEST_F(SessionFollowerTest, WithTheStreamDownAStoreIsLeftToTheUnaryPathUntouched) {
  std::unique_ptr<SessionFollower> follower = Follow();
  ASSERT_TRUE(Eventually([&] { return follower->stats().up; }));
  fake_.Stop();
  ASSERT_TRUE(Eventually([&] { return !follower->stats().up; }));
  SecretBytes session(std::string("master secret"));
  EXPECT_FALSE(follower->Put("id-3", session, 60, nullptr));
  EXPECT_EQ(session.view(), "master secret") << "the caller still has it, for a unary call";
  v1::DeleteRequest removal;
  removal.set_session_id("id-3");
  EXPECT_FALSE(follower->Delete(removal)) << "the caller sends the deletion itself";
}

}  // namespace
}  // namespace tlscache::client
