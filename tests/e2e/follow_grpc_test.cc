// SessionCache/Follow end to end: CacheClients (the plugin's client, with its near cache)
// following a namespace through in-process CacheServers, on the memory store (one replica)
// and on one real Redis shared by two replicas (each client on its own replica).
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "client/cache_client.h"
#include "client/session_follower.h"
#include "gtest/gtest.h"
#include "server/cache_server.h"
#include "server/sessions/follow_stream.h"
#include "server/store/store_factory.h"
#include "tests/testing/eventually.h"
#include "tests/testing/grpc_probe.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/store_sync.h"
#include "tests/testing/store_under_test.h"

namespace tlscache::server {
namespace {

using ::tlscache::client::CacheClient;
using ::tlscache::client::ClientOptions;
using ::tlscache::client::ClientStats;
using ::tlscache::testing::Eventually;
using ::tlscache::testing::RedisServer;
using ::tlscache::testing::StoreKind;
using ::tlscache::testing::StoreKindName;

constexpr char kNs[] = "farm";

class FollowTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    if (GetParam() != StoreKind::kMemory) TLSCACHE_START_REDIS_OR_SKIP(redis_);
    first_ = StartReplica(0);
    ASSERT_NE(first_, nullptr);
    // On Redis the second process talks to a second replica: what it receives crossed Redis.
    second_port_ = first_->port();
    if (redis_ != nullptr) {
      second_ = StartReplica(0);
      ASSERT_NE(second_, nullptr);
      second_port_ = second_->port();
    }
    a_ = Client(first_->port());
    b_ = Client(second_port_);
    a_->Prepare(kNs, false);
    b_->Prepare(kNs, false);
    ASSERT_TRUE(Eventually([&] { return Up(*a_) && Up(*b_); }));
  }

  std::unique_ptr<CacheServer> StartReplica(int port, absl::Duration max_connection_age = {}) {
    StoreConfig store;
    if (redis_ != nullptr) store.url = redis_->url();
    auto created = CreateStore(store);
    EXPECT_TRUE(created.ok()) << created.status();
    if (!created.ok()) return nullptr;
    CacheServerOptions options;
    options.listen = absl::StrCat("127.0.0.1:", port);
    options.max_connection_age = max_connection_age;
    options.max_connection_age_grace = absl::Seconds(1);
    auto server = CacheServer::Start(options, *std::move(created));
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  static std::shared_ptr<CacheClient> Client(int port) {
    return Client(absl::StrCat("127.0.0.1:", port));
  }
  static std::shared_ptr<CacheClient> Client(const std::string& addr) {
    ClientOptions options;
    options.addr = addr;
    options.lookup_timeout = absl::Seconds(2);  // a test's lookups wait for a slow machine
    auto client = CacheClient::Create(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return *client;
  }

  static bool Up(CacheClient& client) { return client.stats().streams_up == 1; }

  // The pushed sessions arrive in the background: each new one is awaited.
  static bool AwaitNearEntries(CacheClient& client, uint64_t entries) {
    return Eventually([&] { return client.stats().near_entries == entries; });
  }

  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<CacheServer> first_, second_;
  int second_port_ = 0;
  std::shared_ptr<CacheClient> a_, b_;
};

TEST_P(FollowTest, ASessionStoredByOneProcessIsFoundInTheOthersNearCache) {
  ASSERT_TRUE(a_->Put(kNs, "id-1", SecretBytes(absl::string_view("session-1")), 60,
                      /*await_ack=*/true));
  ASSERT_TRUE(AwaitNearEntries(*b_, 1));
  auto got = b_->Get(kNs, "id-1", false);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->view(), "session-1");
  const ClientStats stats = b_->stats();
  EXPECT_EQ(stats.near_hits, 1u);
  EXPECT_EQ(stats.hits, 0u);  // the service was not asked
  EXPECT_GE(stats.pushed, 1u);
  // The store has it too, for a process that was not following yet.
  EXPECT_TRUE(testing::GetSync(*first_->store(), kNs, "id-1").ok());
}

TEST_P(FollowTest, ANearCacheAnswersOnlyWhileItsServiceIsHeardFrom) {
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(a_->Put(kNs, absl::StrCat("id-", i), SecretBytes(absl::StrCat("s-", i)), 60, true));
  }
  ASSERT_TRUE(AwaitNearEntries(*b_, 20));
  // Idle for a while: the stream's heartbeats are answered, the near cache answers.
  absl::SleepFor(absl::Seconds(2));
  auto got = b_->Get(kNs, "id-1", false);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(b_->stats().near_hits, 1u);
  // The service goes: a deletion made now could not reach b, so within a second b's near
  // cache answers nothing (the lookups go to the service, and fail).
  first_.reset();
  second_.reset();
  const absl::Time gone = absl::Now();
  EXPECT_TRUE(Eventually([&] { return !b_->Get(kNs, "id-2", false).ok(); }));
  EXPECT_LE(absl::Now() - gone, client::SessionFollower::kVouchWithoutWord + absl::Milliseconds(500));
  for (int i = 0; i < 20; ++i) EXPECT_FALSE(b_->Get(kNs, absl::StrCat("id-", i), false).ok()) << i;
  EXPECT_EQ(b_->stats().near_entries, 20u);  // kept, for a stream that goes on from here
}

// On Redis only: the memory store's log is never lost.
using FollowRedisTest = FollowTest;

TEST_P(FollowRedisTest, ANearCacheAnswersNothingWhileItsReplicaIsNotFollowingTheLog) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(a_->Put(kNs, absl::StrCat("id-", i), SecretBytes(absl::StrCat("s-", i)), 60, true));
  }
  ASSERT_TRUE(AwaitNearEntries(*b_, 5));
  ASSERT_TRUE(b_->Get(kNs, "id-0", false).ok());
  const uint64_t hits = b_->stats().near_hits;
  ASSERT_EQ(hits, 1u);
  // Redis stops answering: b's replica finds its subscription silent (a PING unanswered)
  // and pauses its followers, whose streams stay up (the replica answers their heartbeats).
  redis_->Pause();
  EXPECT_TRUE(Eventually([&] { return !b_->Get(kNs, "id-1", false).ok(); }, absl::Seconds(15)));
  EXPECT_EQ(b_->stats().streams_up, 1u);
  // Back: nothing was appended meanwhile, so no gap, and the near cache answers again.
  redis_->Resume();
  EXPECT_TRUE(Eventually([&] { return b_->Get(kNs, "id-2", false).ok(); }, absl::Seconds(15)));
  EXPECT_EQ(b_->stats().gaps, 0u);
  EXPECT_GT(b_->stats().near_hits, hits);
}

TEST_P(FollowTest, ADeletionWithdrawsTheSessionFromEveryNearCache) {
  absl::Mutex mu;
  std::vector<std::string> withdrawn;
  // Set before the process's first call in real use; here b_ is already following, and the
  // listener is read on each deletion.
  b_->SetWithdrawnListener(
      [&](absl::string_view ns, absl::string_view key, absl::string_view tls_session_id) {
        absl::MutexLock lock(&mu);
        withdrawn.push_back(absl::StrCat(ns, "/", key, "/", tls_session_id));
      });
  ASSERT_TRUE(a_->Put(kNs, "doomed", SecretBytes(absl::string_view("s")), 60, true));
  ASSERT_TRUE(AwaitNearEntries(*b_, 1));
  a_->Delete(kNs, "doomed", "tls-id", absl::Seconds(60));
  ASSERT_TRUE(AwaitNearEntries(*b_, 0));
  EXPECT_TRUE(absl::IsNotFound(b_->Get(kNs, "doomed", false).status()));
  // The process hears of the node's withdrawals on its own thread, as they are numbered.
  EXPECT_TRUE(Eventually([&] {
    absl::MutexLock lock(&mu);
    return !withdrawn.empty();
  }));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(withdrawn, std::vector<std::string>{"farm/doomed/tls-id"});
}

// A process that falls more than the node recalls behind the node's withdrawals (its thread
// held up) is told so, with an empty key, and drops every copy it holds of the namespace.
TEST_P(FollowTest, AProcessTooFarBehindTheNodesWithdrawalsIsToldToDropEverything) {
  absl::Notification release;
  absl::Mutex mu;
  std::vector<std::string> heard;
  b_->SetWithdrawnListener(
      [&](absl::string_view ns, absl::string_view key, absl::string_view tls_session_id) {
        {
          absl::MutexLock lock(&mu);
          heard.push_back(std::string(key));
        }
        release.WaitForNotification();  // the first call holds b's thread up
      });
  const int n = static_cast<int>(client::NodeFeed::kRemovals) + 100;
  a_->Delete(kNs, "first", "", absl::Seconds(60));
  ASSERT_TRUE(Eventually([&] {
    absl::MutexLock lock(&mu);
    return !heard.empty();
  }));
  for (int i = 0; i < n; ++i) a_->Delete(kNs, absl::StrCat("id-", i), "", absl::Seconds(60));
  ASSERT_TRUE(a_->Flush(absl::Seconds(30)));
  // Every deletion reached b's node (its follower goes on), past what the node recalls.
  ASSERT_TRUE(Eventually([&] { return b_->WithdrawnSince(kNs, "never", 0); },
                         absl::Seconds(30)));
  release.Notify();
  ASSERT_TRUE(Eventually([&] {
    absl::MutexLock lock(&mu);
    return std::find(heard.begin(), heard.end(), "") != heard.end();
  }, absl::Seconds(30)));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(heard.front(), "first");
  // Told once, then the withdrawals the node still recalls, the newest last.
  EXPECT_EQ(std::count(heard.begin(), heard.end(), ""), 1);
}

// What a lookup found can be withdrawn before its finder keeps it (OpenSSL adds it to its own
// cache after the lookup returns): the finder asks afterwards, from a mark taken before.
TEST_P(FollowTest, AWithdrawalIsRecalledForWhoeverFoundTheSessionBeforeIt) {
  ASSERT_TRUE(a_->Put(kNs, "doomed", SecretBytes(absl::string_view("s")), 60, true));
  ASSERT_TRUE(AwaitNearEntries(*b_, 1));
  const uint64_t before = b_->WithdrawalMark(kNs);
  ASSERT_TRUE(b_->Get(kNs, "doomed", false).ok());
  EXPECT_FALSE(b_->WithdrawnSince(kNs, "doomed", before));
  a_->Delete(kNs, "doomed", "", absl::Seconds(60));
  ASSERT_TRUE(AwaitNearEntries(*b_, 0));
  EXPECT_TRUE(b_->WithdrawnSince(kNs, "doomed", before));
  EXPECT_FALSE(b_->WithdrawnSince(kNs, "another", before));
  EXPECT_FALSE(b_->WithdrawnSince(kNs, "doomed", b_->WithdrawalMark(kNs)));  // found after it
}

TEST_P(FollowTest, AConsumedSessionIsWithdrawnAndResumesOnceAcrossTheFarm) {
  ASSERT_TRUE(a_->Put(kNs, "ticket", SecretBytes(absl::string_view("s")), 60, true));
  ASSERT_TRUE(AwaitNearEntries(*b_, 1));
  ASSERT_EQ(a_->stats().near_entries, 1u);  // its own store, kept near too
  // A consuming lookup bypasses the near cache and consumes in the service.
  EXPECT_TRUE(b_->Get(kNs, "ticket", /*consume=*/true).ok());
  EXPECT_TRUE(absl::IsNotFound(a_->Get(kNs, "ticket", /*consume=*/true).status()));
  EXPECT_TRUE(AwaitNearEntries(*a_, 0));
  EXPECT_TRUE(AwaitNearEntries(*b_, 0));
}

TEST_P(FollowTest, StoresTravelUpTheStreamCoalescedIntoBatches) {
  constexpr int kStores = 2000;
  for (int i = 0; i < kStores; ++i) {
    a_->Put(kNs, absl::StrCat("id-", i), SecretBytes(absl::StrCat("s-", i)), 60);
  }
  ASSERT_TRUE(a_->Flush(absl::Seconds(20)));
  const ClientStats stats = a_->stats();
  EXPECT_EQ(stats.stores, static_cast<uint64_t>(kStores));
  EXPECT_EQ(stats.store_failures, 0u);
  EXPECT_EQ(stats.resent, 0u);
  EXPECT_LT(a_->stats().batches, static_cast<uint64_t>(kStores) / 4) << "not coalesced";
  ASSERT_TRUE(AwaitNearEntries(*b_, kStores))
      << b_->stats().near_entries << " entries, " << b_->stats().pushed << " pushed, "
      << b_->stats().gaps << " gaps";
  for (int i = 0; i < kStores; i += 97) {
    EXPECT_TRUE(testing::GetSync(*first_->store(), kNs, absl::StrCat("id-", i)).ok()) << i;
  }
}

TEST_P(FollowTest, AProcessThatReconnectsKeepsWhatItCanVouchForAndWithdrawsTheRest) {
  ASSERT_TRUE(a_->Put(kNs, "kept", SecretBytes(absl::string_view("s")), 60, true));
  ASSERT_TRUE(a_->Put(kNs, "doomed", SecretBytes(absl::string_view("s")), 60, true));
  ASSERT_TRUE(AwaitNearEntries(*b_, 2));
  const int port = second_port_;
  if (second_ != nullptr) {
    // b's replica goes; while it is down, a deletion b cannot hear of.
    second_.reset();
    a_->Delete(kNs, "doomed");
    ASSERT_TRUE(a_->Flush(absl::Seconds(5)));
    second_ = StartReplica(port);
  } else {
    a_.reset();  // the only replica goes, and its memory store with it
    first_.reset();
    first_ = StartReplica(port);
    a_ = Client(port);
    a_->Prepare(kNs, false);
  }
  ASSERT_NE(second_ != nullptr ? second_ : first_, nullptr);
  ASSERT_TRUE(Eventually([&] { return b_->stats().streams == 2 && Up(*b_) && Up(*a_); }));
  // The new stream could not go on from where b stood: b checked its copies.
  ASSERT_TRUE(Eventually([&] { return b_->stats().gaps == 1 && b_->stats().withdrawn >= 1; }));
  EXPECT_TRUE(absl::IsNotFound(b_->Get(kNs, "doomed", false).status()));
  if (second_ != nullptr) {
    // On Redis the session that was not deleted is still live: kept, and served near.
    EXPECT_EQ(b_->stats().near_entries, 1u);
    const uint64_t near_hits = b_->stats().near_hits;
    EXPECT_TRUE(b_->Get(kNs, "kept", false).ok());
    EXPECT_EQ(b_->stats().near_hits, near_hits + 1);
  } else {
    EXPECT_EQ(b_->stats().near_entries, 0u);  // the restarted memory store has nothing
  }
  ASSERT_TRUE(a_->Put(kNs, "new", SecretBytes(absl::string_view("s2")), 60, true));
  ASSERT_TRUE(Eventually([&] { return b_->Get(kNs, "new", false).ok(); }));
  auto got = b_->Get(kNs, "new", false);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->view(), "s2");
}

TEST_P(FollowTest, ABurstOfTenThousandStoresEndsNoStream) {
  // 10,000 stores in about 0.1 s: the service sends them to b in responses b accepts.
  constexpr int kStores = 10000;
  const absl::Time start = absl::Now();
  for (int i = 0; i < kStores; ++i) {
    a_->Put(kNs, absl::StrCat("burst-", i), SecretBytes(absl::StrCat("session-", i)), 60);
  }
  const absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(a_->Flush(absl::Seconds(30)));
  // Every store the service took reaches b. (On a saturated machine the Redis store can time
  // a few out, --redis_timeout_ms: those are failed to a, not lost on the way.)
  const ClientStats sent = a_->stats();
  EXPECT_EQ(sent.stores + sent.store_failures, uint64_t{kStores});
  EXPECT_GE(sent.stores, uint64_t{kStores} / 2);
  ASSERT_TRUE(Eventually([&] { return b_->stats().near_entries == sent.stores; },
                         absl::Seconds(30)))
      << b_->stats().near_entries << " entries of " << sent.stores << ", " << b_->stats().gaps
      << " gaps";
  EXPECT_EQ(b_->stats().streams, 1u) << "a stream ended";
  EXPECT_EQ(a_->stats().streams, 1u) << "a stream ended";
  EXPECT_EQ(b_->stats().gaps, 0u);
  std::printf("figure: %d stores queued in %s, %llu stored, reached the other process on one "
              "stream\n",
              kStores, absl::FormatDuration(took).c_str(),
              static_cast<unsigned long long>(sent.stores));
}

// A raw Follow stream on namespace "flood" whose writer thread sends batches of one 4 KiB
// store each, as fast as the stream takes them, until it breaks (or 50,000 were sent).
class Flood {
 public:
  explicit Flood(int port) : stub_(v1::SessionCache::NewStub(testing::Connect(port))) {
    // A bound, so that a stream the service never ends fails the test rather than hangs it.
    context_.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    stream_ = stub_->Follow(&context_);
    writer_ = std::thread([this] {
      v1::FollowRequest request;
      request.set_namespace_("flood");
      for (int i = 1; i <= 50000; ++i) {
        request.set_batch(i);
        request.clear_puts();
        v1::PutRequest* put = request.add_puts();
        put->set_session_id(absl::StrCat("flood-", i));
        put->set_session(std::string(4096, 's'));
        put->set_ttl_seconds(60);
        if (!stream_->Write(request)) {
          broke_at_ = absl::Now();
          return;
        }
        request.clear_namespace_();
      }
    });
  }
  ~Flood() {
    context_.TryCancel();
    if (writer_.joinable()) writer_.join();
  }

  // Waits for the writer; when the stream broke under it (nothing if it never did).
  std::optional<absl::Time> WriterDone() {
    writer_.join();
    return broke_at_;
  }
  grpc::ClientReaderWriter<v1::FollowRequest, v1::FollowResponse>& stream() { return *stream_; }

 private:
  std::unique_ptr<v1::SessionCache::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::FollowRequest, v1::FollowResponse>> stream_;
  std::thread writer_;
  std::optional<absl::Time> broke_at_;
};

// Nothing of namespace "flood" is left on `server`: no follower, nothing held for one.
bool FloodReleased(const CacheServer& server) {
  const std::string text = server.metrics().Render();
  return text.find("tlscache_feed_followers{namespace=\"flood\"}") == std::string::npos &&
         text.find("\ntlscache_feed_held_bytes 0\n") != std::string::npos;
}

// Whether `server` has ended `count` streams for `reason` (tlscache_feed_streams_ended_total).
bool Ended(const CacheServer& server, const std::string& reason, int count) {
  return server.metrics().Render().find(absl::StrCat("tlscache_feed_streams_ended_total{reason=\"",
                                                     reason, "\"} ", count, "\n")) !=
         std::string::npos;
}

TEST_P(FollowTest, AProcessThatSendsBatchesWithoutReadingIsToldWhy) {
  // Its acknowledgements wait behind the responses it does not read, its batches not
  // acknowledged pile up, and past the bound the service ends the stream with a status that
  // says why: the process reads it once it reads the responses before it.
  Flood flood(first_->port());
  ASSERT_TRUE(Eventually([&] { return Ended(*first_, "unread", 1); }))
      << first_->metrics().Render();
  v1::FollowResponse response;
  while (flood.stream().Read(&response)) {
  }
  const grpc::Status status = flood.stream().Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_NE(status.error_message().find("does not read the stream"), std::string::npos)
      << status.error_message();
  EXPECT_TRUE(flood.WriterDone().has_value()) << "the service read 50,000 batches on";
  // The namespace had no other follower: the replica lets go of it and of what it held.
  ASSERT_TRUE(Eventually([&] { return FloodReleased(*first_); })) << first_->metrics().Render();
  // The processes that read theirs go on.
  ASSERT_TRUE(a_->Put(kNs, "after", SecretBytes(absl::string_view("s")), 60, true));
  ASSERT_TRUE(AwaitNearEntries(*b_, 1));
  EXPECT_EQ(b_->stats().streams, 1u);
}

TEST_P(FollowTest, AProcessThatReadsNothingIsLetGo) {
  // No read at all: the stream ends past the bound, its last response cannot be written, and
  // the service cancels it a grace later rather than hold it (and that response) for good.
  Flood flood(first_->port());
  const absl::Time start = absl::Now();
  const std::optional<absl::Time> broke_at = flood.WriterDone();
  ASSERT_TRUE(broke_at.has_value()) << "the service read 50,000 batches on";
  EXPECT_LT(*broke_at - start, FollowStream::kEndedWriteGrace + absl::Seconds(10));
  v1::FollowResponse response;  // what got through before the service let go
  while (flood.stream().Read(&response)) {
  }
  EXPECT_FALSE(flood.stream().Finish().ok());
  // Ended past the bound; and when a response was waiting for it then, cancelled for that.
  EXPECT_TRUE(Ended(*first_, "unread", 1)) << first_->metrics().Render();
  ASSERT_TRUE(Eventually([&] { return FloodReleased(*first_); })) << first_->metrics().Render();
  std::printf("figure: a process that reads nothing was let go %s after it began (%s)\n",
              absl::FormatDuration(absl::Trunc(*broke_at - start, absl::Milliseconds(1))).c_str(),
              Ended(*first_, "stuck", 1) ? "its last response waited, cancelled"
                                         : "nothing waited, ended at once");
}

TEST_P(FollowTest, AnUnknownOrRefusedNamespaceEndsTheStreamAndStoresGoAsUnaryCalls) {
  auto c = Client(first_->port());
  c->Prepare("bad namespace!", false);
  // The service refuses the stream; the Put goes (and fails) as a unary call.
  EXPECT_FALSE(c->Put("bad namespace!", "id", SecretBytes(absl::string_view("s")), 60, true));
  EXPECT_EQ(c->stats().streams_up, 0u);
}

// Two replicas on one Redis, a process naming both: its stream moves between them.
class FollowHandOverTest : public FollowTest {
 protected:
  void SetUp() override {
    FollowTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    FollowBothAndFill();
  }

  // c follows through both replicas; a stores 20 sessions, which c's near cache gets.
  void FollowBothAndFill() {
    c_ = Client(absl::StrCat("127.0.0.1:", first_->port(), ",127.0.0.1:", second_->port()));
    c_->Prepare(kNs, false);
    ASSERT_TRUE(Eventually([&] { return Up(*c_); }));
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(a_->Put(kNs, absl::StrCat("id-", i), SecretBytes(absl::StrCat("s-", i)), 60,
                          /*await_ack=*/true));
    }
    ASSERT_TRUE(AwaitNearEntries(*c_, 20));
  }

  // After a move: c kept every session, sent nothing again, and follows deletions made
  // through either replica.
  void ExpectNothingLost() {
    const ClientStats stats = c_->stats();
    EXPECT_EQ(stats.near_entries, 20u);
    EXPECT_EQ(stats.resent, 0u);
    EXPECT_EQ(stats.streams_up, 1u);
    b_->Delete(kNs, "id-3");
    EXPECT_TRUE(AwaitNearEntries(*c_, 19));
    auto got = c_->Get(kNs, "id-7", false);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(c_->stats().near_hits, 1u);
  }

  std::shared_ptr<CacheClient> c_;
};

TEST_P(FollowHandOverTest, AReplicaShuttingDownHandsItsFollowersToAnotherWithNothingLost) {
  CacheServer* holder = first_->followers() == 2 ? first_.get() : second_.get();
  ASSERT_EQ(holder->followers(), 2u);  // c's stream and a's or b's
  const absl::Time start = absl::Now();
  std::thread shutdown([holder] { holder->Shutdown(absl::Seconds(10)); });
  // Its new stream goes to the other replica; the old one overlaps it, then ends.
  EXPECT_TRUE(Eventually([&] { return c_->stats().streams == 2 && Up(*c_); }))
      << c_->stats().streams << " streams, " << c_->stats().streams_up << " up";
  shutdown.join();
  // a's or b's process names only that replica: it has nowhere to go and is ended after
  // the few seconds the followers get to move.
  EXPECT_LT(absl::Now() - start, absl::Seconds(6));
  if (holder == second_.get()) std::swap(a_, b_);  // b_: a process on the replica still up
  ExpectNothingLost();
}

TEST_P(FollowHandOverTest, AStreamOlderThanTheMaximumAgeMovesWithNothingLost) {
  // Both replicas again, with a 2 s maximum connection age (the default is 5 min).
  const int first_port = first_->port(), second_port = second_->port();
  a_.reset();
  b_.reset();
  c_.reset();
  first_.reset();
  second_.reset();
  first_ = StartReplica(first_port, absl::Seconds(2));
  second_ = StartReplica(second_port, absl::Seconds(2));
  ASSERT_NE(first_, nullptr);
  ASSERT_NE(second_, nullptr);
  a_ = Client(first_port);
  b_ = Client(second_port);
  a_->Prepare(kNs, false);
  b_->Prepare(kNs, false);
  ASSERT_TRUE(Eventually([&] { return Up(*a_) && Up(*b_); }));
  FollowBothAndFill();
  // 2 to 2.4 s after each stream came up it is asked to move, and moves.
  EXPECT_TRUE(Eventually([&] { return c_->stats().streams >= 3; }, absl::Seconds(10)));
  ExpectNothingLost();
}

INSTANTIATE_TEST_SUITE_P(Redis, FollowHandOverTest, ::testing::Values(StoreKind::kRedis),
                         StoreKindName);

INSTANTIATE_TEST_SUITE_P(Redis, FollowRedisTest, ::testing::Values(StoreKind::kRedis),
                         StoreKindName);

INSTANTIATE_TEST_SUITE_P(Stores, FollowTest,
                         ::testing::Values(StoreKind::kMemory, StoreKind::kRedis), StoreKindName);

}  // namespace
}  // namespace tlscache::server
