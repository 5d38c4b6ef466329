// FollowStream, one process's Follow stream, through the SessionCache service and a feed on the
// memory store, with a raw gRPC stream as the process: batches acknowledged once made, changes
// pushed numbered, upload-only streams pushed nothing, bad input refused by name.
#include "server/sessions/follow_stream.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/sessions/session_cache_service.h"
#include "tests/testing/session_feed_fixture.h"
#include "tests/testing/store_sync.h"
#include "tlscache/v1/session_cache.grpc.pb.h"

namespace tlscache::server {
namespace {

using Stream = grpc::ClientReaderWriter<v1::FollowRequest, v1::FollowResponse>;

class FollowStreamTest : public testing::SessionsTest {
 protected:
  FollowStreamTest() : service_(store_.get(), ServiceOptions(), &feed_) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    stub_ = v1::SessionCache::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(port_), grpc::InsecureChannelCredentials()));
  }
  ~FollowStreamTest() override {
    feed_.StopAll();
    server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  }

  // A process's stream on `ns`; its first request (batch 1) names the namespace.
  std::unique_ptr<Stream> Open(grpc::ClientContext* context, const std::string& ns,
                               bool upload_only = false) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    std::unique_ptr<Stream> stream = stub_->Follow(context);
    v1::FollowRequest hello;
    hello.set_namespace_(ns);
    hello.set_upload_only(upload_only);
    hello.set_batch(1);
    EXPECT_TRUE(stream->Write(hello));
    return stream;
  }

  // Reads until `until` holds for a response (true), or the stream ends (false); every
  // response read is appended to `read`.
  static bool ReadUntil(Stream& stream, std::vector<v1::FollowResponse>* read,
                        const std::function<bool(const v1::FollowResponse&)>& until) {
    v1::FollowResponse response;
    while (stream.Read(&response)) {
      read->push_back(response);
      if (until(response)) return true;
    }
    return false;
  }

  static std::function<bool(const v1::FollowResponse&)> AckOf(uint64_t batch) {
    return [batch](const v1::FollowResponse& r) {
      for (const auto& ack : r.acks()) {
        if (ack.batch() == batch) return true;
      }
      return false;
    };
  }

  static std::function<bool(const v1::FollowResponse&)> ChangeOf(const std::string& id) {
    return [id](const v1::FollowResponse& r) {
      for (const auto& change : r.changes()) {
        if (change.session_id() == id) return true;
      }
      return false;
    };
  }

  SessionCacheService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::SessionCache::Stub> stub_;
};

TEST_F(FollowStreamTest, ABatchIsAcknowledgedOnceItsStoresAreMade) {
  grpc::ClientContext context;
  auto stream = Open(&context, "ns");
  std::vector<v1::FollowResponse> read;
  ASSERT_TRUE(ReadUntil(*stream, &read, AckOf(1)));
  v1::FollowRequest request;
  request.set_batch(2);
  v1::PutRequest* put = request.add_puts();
  put->set_session_id("a");
  put->set_session("master secret");
  put->set_ttl_seconds(60);
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(ReadUntil(*stream, &read, AckOf(2)));
  EXPECT_EQ(read.back().acks(0).failed(), 0u);
  auto stored = ::tlscache::testing::GetSync(*store_, "ns", "a");
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->session.view(), "master secret");
  context.TryCancel();
}

TEST_F(FollowStreamTest, AChangeMadeThroughAnotherCallIsPushedNumbered) {
  grpc::ClientContext context;
  auto stream = Open(&context, "ns");
  std::vector<v1::FollowResponse> read;
  ASSERT_TRUE(ReadUntil(*stream, &read, AckOf(1)));
  ASSERT_TRUE(*Put("a"));  // through the write path, as a unary Put to any replica would
  ASSERT_TRUE(*Delete("a"));
  ASSERT_TRUE(ReadUntil(*stream, &read, [](const v1::FollowResponse& r) {
    for (const auto& change : r.changes()) {
      if (change.session_id() == "a" && change.session().empty()) return true;
    }
    return false;
  }));
  // Numbered as the log numbers them: the put before the deletion, the position after both.
  std::vector<std::string> seen;
  uint64_t last_seq = 0;
  for (const v1::FollowResponse& r : read) {
    for (const auto& change : r.changes()) {
      seen.push_back((change.session().empty() ? "delete " : "put ") + change.session_id());
    }
    if (r.has_position()) {
      EXPECT_GE(r.position().seq(), last_seq);
      last_seq = r.position().seq();
    }
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"put a", "delete a"}));
  EXPECT_EQ(last_seq, 2u);
  context.TryCancel();
}

TEST_F(FollowStreamTest, AnUploadOnlyStreamCarriesItsStoresButIsPushedNothing) {
  grpc::ClientContext follower_context, uploader_context;
  auto follower = Open(&follower_context, "ns");
  auto uploader = Open(&uploader_context, "ns", /*upload_only=*/true);
  std::vector<v1::FollowResponse> followed, uploaded;
  ASSERT_TRUE(ReadUntil(*follower, &followed, AckOf(1)));
  ASSERT_TRUE(ReadUntil(*uploader, &uploaded, AckOf(1)));
  v1::FollowRequest request;
  request.set_batch(2);
  v1::PutRequest* put = request.add_puts();
  put->set_session_id("x");
  put->set_session("master secret");
  put->set_ttl_seconds(60);
  ASSERT_TRUE(uploader->Write(request));
  ASSERT_TRUE(ReadUntil(*follower, &followed, ChangeOf("x"))) << "the follower missed it";
  // Pushed to the follower already: a push to the uploader would come before this ack.
  request.Clear();
  request.set_batch(3);
  ASSERT_TRUE(uploader->Write(request));
  ASSERT_TRUE(ReadUntil(*uploader, &uploaded, AckOf(3)));
  for (const v1::FollowResponse& r : uploaded) EXPECT_EQ(r.changes_size(), 0);
  follower_context.TryCancel();
  uploader_context.TryCancel();
}

TEST_F(FollowStreamTest, ABadNamespaceEndsTheStreamNamingTheField) {
  grpc::ClientContext context;
  auto stream = Open(&context, "not a namespace");
  std::vector<v1::FollowResponse> read;
  EXPECT_FALSE(ReadUntil(*stream, &read, AckOf(1)));
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("namespace"), std::string::npos) << status.error_message();
}

}  // namespace
}  // namespace tlscache::server
