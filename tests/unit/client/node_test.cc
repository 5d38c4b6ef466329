#include "client/node.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/fork_child.h"

namespace tlscache::client {
namespace {

using ::tlscache::testing::ExitedZero;
using ::tlscache::testing::InChild;

std::shared_ptr<Node> MakeNode() {
  absl::StatusOr<std::shared_ptr<Node>> node = Node::Create(1 << 20);
  EXPECT_TRUE(node.ok()) << node.status();
  return *std::move(node);
}

TEST(NodeTest, EveryProcessOfTheNodeFindsANamespaceInTheSameSlot) {
  std::shared_ptr<Node> node = MakeNode();
  NodeFeed* a = node->Feed("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(node->Feed("a"), a);
  NodeFeed* b = nullptr;
  ASSERT_TRUE(ExitedZero(InChild([&] {
    // A namespace the child names first is found by the parent in the same place.
    if (node->Feed("b") == nullptr || node->Feed("a") != a) _exit(1);
  })));
  b = node->Feed("b");
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a->prefix(), b->prefix());
  EXPECT_EQ(b->name(), "b");
}

TEST(NodeTest, ANodeHasRoomForALimitedNumberOfNamespaces) {
  std::shared_ptr<Node> node = MakeNode();
  for (int i = 0; i < Node::kMaxNamespaces; ++i) {
    ASSERT_NE(node->Feed("ns" + std::to_string(i)), nullptr);
  }
  EXPECT_EQ(node->Feed("one-too-many"), nullptr);
  EXPECT_EQ(node->Feed(std::string(NodeFeed::kMaxNameBytes + 1, 'n')), nullptr);
}

TEST(NodeTest, OneProcessHoldsTheLeaseAndAnotherTakesItWhenItIsKilled) {
  std::shared_ptr<Node> node = MakeNode();
  NodeFeed* feed = node->Feed("ns");
  int to_parent[2];
  ASSERT_EQ(pipe(to_parent), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    const bool led = feed->TryLead() == RobustMutex::Locked::kYes;
    feed->Heard(absl::Now());
    char c = led ? 'y' : 'n';
    (void)!write(to_parent[1], &c, 1);
    pause();  // until killed, holding the lease
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(to_parent[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  EXPECT_EQ(feed->leader(), pid);
  EXPECT_EQ(feed->TryLead(), RobustMutex::Locked::kNo);  // held
  EXPECT_TRUE(feed->Vouches(absl::Now(), absl::Seconds(1)));
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  // Its holder died: taken, and the near cache answers nothing until the new one is heard.
  EXPECT_EQ(feed->TryLead(), RobustMutex::Locked::kOwnerDied);
  EXPECT_EQ(feed->leader(), getpid());
  EXPECT_FALSE(feed->Vouches(absl::Now(), absl::Seconds(1)));
  feed->Unlead();
  close(to_parent[0]);
  close(to_parent[1]);
}

TEST(NodeTest, VouchingNeedsAWordWithinTheBoundAndNoCheckGoingOn) {
  std::shared_ptr<Node> node = MakeNode();
  NodeFeed* feed = node->Feed("ns");
  const absl::Time now = absl::Now();
  EXPECT_FALSE(feed->Vouches(now, absl::Seconds(1)));  // never heard
  feed->Heard(now);
  EXPECT_TRUE(feed->Vouches(now + absl::Seconds(1), absl::Seconds(1)));
  EXPECT_FALSE(feed->Vouches(now + absl::Seconds(1) + absl::Microseconds(1), absl::Seconds(1)));
  feed->SetChecking(true);
  EXPECT_FALSE(feed->Vouches(now, absl::Seconds(1)));
  feed->SetChecking(false);
  feed->Heard(std::nullopt);
  EXPECT_FALSE(feed->Vouches(now, absl::Seconds(1)));
}

TEST(NodeTest, AWithdrawalDropsTheCopyAndIsSeenByEveryMarkBeforeIt) {
  std::shared_ptr<Node> node = MakeNode();
  NodeFeed* feed = node->Feed("ns");
  node->cache().Insert(feed->Key("s1"), "session", absl::Seconds(60));
  const uint64_t before = feed->RemovalMark();
  feed->Withdraw(node->cache(), "s1", "tls-id", 0);
  EXPECT_FALSE(node->cache().Lookup(feed->Key("s1")).has_value());
  EXPECT_TRUE(feed->WithdrawnSince("s1", before));
  EXPECT_FALSE(feed->WithdrawnSince("s2", before));
  EXPECT_FALSE(feed->WithdrawnSince("s1", feed->RemovalMark()));
  // A session found before its withdrawal is not kept after it.
  feed->KeepUnlessWithdrawn(node->cache(), "s1", "session", absl::Seconds(60), before);
  EXPECT_FALSE(node->cache().Lookup(feed->Key("s1")).has_value());
  feed->KeepUnlessWithdrawn(node->cache(), "s2", "session", absl::Seconds(60), before);
  EXPECT_TRUE(node->cache().Lookup(feed->Key("s2")).has_value());
}

TEST(NodeTest, EveryProcessHearsOfTheWithdrawalsItDidNotMakeItself) {
  std::shared_ptr<Node> node = MakeNode();
  NodeFeed* feed = node->Feed("ns");
  uint64_t cursor = feed->RemovalMark();
  feed->Withdraw(node->cache(), "mine", "", getpid());
  ASSERT_TRUE(ExitedZero(InChild([&] { feed->Withdraw(node->cache(), "theirs", "id", getpid()); })));
  feed->Withdraw(node->cache(), "pushed", "", 0);
  std::vector<NodeFeed::Withdrawal> got;
  EXPECT_TRUE(feed->WithdrawalsSince(&cursor, getpid(), &got));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].key, "theirs");
  EXPECT_EQ(got[0].tls_session_id, "id");
  EXPECT_EQ(got[1].key, "pushed");
  got.clear();
  EXPECT_TRUE(feed->WithdrawalsSince(&cursor, getpid(), &got));
  EXPECT_TRUE(got.empty());
}

TEST(NodeTest, AProcessTooFarBehindIsToldItLostWithdrawals) {
  std::shared_ptr<Node> node = MakeNode();
  NodeFeed* feed = node->Feed("ns");
  uint64_t cursor = feed->RemovalMark();
  const uint64_t mark = cursor;
  for (size_t i = 0; i <= NodeFeed::kRemovals; ++i) {
    feed->Withdraw(node->cache(), "s" + std::to_string(i), "", 0);
  }
  std::vector<NodeFeed::Withdrawal> got;
  EXPECT_FALSE(feed->WithdrawalsSince(&cursor, getpid(), &got));
  EXPECT_EQ(got.size(), NodeFeed::kRemovals);
  EXPECT_TRUE(feed->WithdrawnSince("never-withdrawn", mark));  // no longer tells: assumed
}

TEST(NodeTest, AWaitForWithdrawalsEndsWhenAnotherProcessWithdraws) {
  std::shared_ptr<Node> node = MakeNode();
  NodeFeed* feed = node->Feed("ns");
  const uint64_t cursor = feed->RemovalMark();
  const pid_t pid = fork();
  if (pid == 0) {
    absl::SleepFor(absl::Milliseconds(100));
    feed->Withdraw(node->cache(), "s", "", getpid());
    _exit(0);
  }
  const absl::Time start = absl::Now();
  feed->AwaitWithdrawal(cursor, absl::Seconds(30));
  const absl::Duration waited = absl::Now() - start;
  waitpid(pid, nullptr, 0);
  EXPECT_LT(waited, absl::Seconds(15));  // woken, not timed out
  EXPECT_EQ(feed->RemovalMark(), cursor + 1);
}

}  // namespace
}  // namespace tlscache::client
