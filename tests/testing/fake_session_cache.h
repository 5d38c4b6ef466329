// FakeSessionCache: an in-process tlscache.v1.SessionCache server for unit tests of clients.
// Every Get answers with what the test set (bytes, an error, a delay); Puts and Deletes are
// recorded. Follow is unimplemented (the clients' near caches stay off) unless a test turns it
// on with FollowChanges: then it takes stores and deletions up the stream, acknowledges them,
// and pushes the deletions a test makes with Withdraw; it sends nothing else.
#ifndef TLSCACHE_TESTS_TESTING_FAKE_SESSION_CACHE_H_
#define TLSCACHE_TESTS_TESTING_FAKE_SESSION_CACHE_H_

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tlscache/v1/session_cache.grpc.pb.h"

namespace tlscache::testing {

class FakeSessionCache final : public v1::SessionCache::Service {
 public:
  explicit FakeSessionCache(
      std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials()) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", credentials, &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakeSessionCache() override { Stop(); }

  int port() const { return port_; }
  std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }
  void Stop() {
    if (server_ != nullptr) server_->Shutdown(absl::ToChronoTime(absl::Now()));
  }

  // What every Get answers: `status` (OK: the stored bytes, or `blob` when set).
  void SetGetAnswer(grpc::StatusCode code) {
    absl::MutexLock lock(&mu_);
    code_ = code;
  }
  void SetBlob(std::string blob) {
    absl::MutexLock lock(&mu_);
    blob_ = std::move(blob);
    has_blob_ = true;
  }
  void SetDelay(absl::Duration delay) {
    absl::MutexLock lock(&mu_);
    delay_ = delay;
  }

  int puts() const {
    absl::MutexLock lock(&mu_);
    return puts_;
  }
  int deletes() const {
    absl::MutexLock lock(&mu_);
    return deletes_;
  }
  int gets() const {
    absl::MutexLock lock(&mu_);
    return gets_;
  }
  std::vector<std::string> StoredSessions() const {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> out;
    for (const auto& [key, session] : stored_) out.push_back(session);
    return out;
  }
  // Whether a session is stored under `session_id`, in any namespace.
  bool Holds(absl::string_view session_id) const {
    absl::MutexLock lock(&mu_);
    for (const auto& [key, session] : stored_) {
      if (absl::EndsWith(key, absl::StrCat("/", session_id))) return true;
    }
    return false;
  }
  bool last_get_consumed() const {
    absl::MutexLock lock(&mu_);
    return last_consume_;
  }

  int follow_streams() {
    absl::MutexLock lock(&streams_mu_);
    return static_cast<int>(streams_.size());
  }
  void FollowChanges() {
    absl::MutexLock lock(&mu_);
    follow_ = true;
  }
  // Called by each Get once it has read its answer, before it sends it.
  void BeforeGetAnswers(std::function<void(const v1::GetRequest&)> hook) {
    absl::MutexLock lock(&mu_);
    before_answer_ = std::move(hook);
  }
  // Deletes a session, as another node would, and pushes the deletion to every Follow stream.
  void Withdraw(absl::string_view ns, absl::string_view session_id) {
    {
      absl::MutexLock lock(&mu_);
      stored_.erase(absl::StrCat(ns, "/", session_id));
    }
    absl::MutexLock lock(&streams_mu_);
    v1::FollowResponse response;
    v1::SessionChange* change = response.add_changes();
    change->set_session_id(std::string(session_id));
    ++seq_;
    for (Stream* stream : streams_) WriteLocked(stream, response);
  }

  grpc::Status Put(grpc::ServerContext*, const v1::PutRequest* request, v1::PutResponse*) override {
    absl::MutexLock lock(&mu_);
    ++puts_;
    stored_[request->namespace_() + "/" + request->session_id()] = request->session();
    return grpc::Status::OK;
  }

  grpc::Status Get(grpc::ServerContext*, const v1::GetRequest* request,
                   v1::GetResponse* response) override {
    absl::Duration delay;
    {
      absl::MutexLock lock(&mu_);
      ++gets_;
      last_consume_ = request->consume();
      delay = delay_;
    }
    absl::SleepFor(delay);
    grpc::Status status = Answer(*request, response);
    std::function<void(const v1::GetRequest&)> hook;
    {
      absl::MutexLock lock(&mu_);
      hook = before_answer_;
    }
    if (hook) hook(*request);
    return status;
  }

  grpc::Status Follow(grpc::ServerContext*,
                      grpc::ServerReaderWriter<v1::FollowResponse, v1::FollowRequest>* stream)
      override {
    {
      absl::MutexLock lock(&mu_);
      if (!follow_) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no Follow here");
    }
    {
      absl::MutexLock lock(&streams_mu_);
      streams_.insert(stream);
    }
    std::string ns;
    v1::FollowRequest request;
    while (stream->Read(&request)) {
      if (!request.namespace_().empty()) ns = request.namespace_();
      {
        absl::MutexLock lock(&mu_);
        for (const v1::PutRequest& put : request.puts()) {
          ++puts_;
          stored_[ns + "/" + put.session_id()] = put.session();
        }
        for (const v1::DeleteRequest& removal : request.removals()) {
          ++deletes_;
          stored_.erase(ns + "/" + removal.session_id());
        }
      }
      if (request.batch() == 0) continue;
      v1::FollowResponse response;
      response.add_acks()->set_batch(request.batch());
      absl::MutexLock lock(&streams_mu_);
      WriteLocked(stream, response);
    }
    absl::MutexLock lock(&streams_mu_);
    streams_.erase(stream);
    return grpc::Status::OK;
  }

  grpc::Status Answer(const v1::GetRequest& request, v1::GetResponse* response) {
    absl::MutexLock lock(&mu_);
    if (code_ != grpc::StatusCode::OK) return grpc::Status(code_, "fake error");
    if (has_blob_) {
      response->set_session(blob_);
      return grpc::Status::OK;
    }
    auto found = stored_.find(request.namespace_() + "/" + request.session_id());
    if (found == stored_.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "miss");
    response->set_session(found->second);
    response->set_ttl_remaining_seconds(60);
    return grpc::Status::OK;
  }

  grpc::Status Delete(grpc::ServerContext*, const v1::DeleteRequest* request,
                      v1::DeleteResponse* response) override {
    absl::MutexLock lock(&mu_);
    ++deletes_;
    response->set_existed(stored_.erase(request->namespace_() + "/" + request->session_id()) > 0);
    return grpc::Status::OK;
  }

 private:
  using Stream = grpc::ServerReaderWriter<v1::FollowResponse, v1::FollowRequest>;

  // Every response carries the log position: one log, numbered by the fake's deletions.
  void WriteLocked(Stream* stream, v1::FollowResponse response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(streams_mu_) {
    response.mutable_position()->set_log_id("fake");
    response.mutable_position()->set_seq(seq_);
    stream->Write(response);
  }

  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  mutable absl::Mutex mu_;
  grpc::StatusCode code_ ABSL_GUARDED_BY(mu_) = grpc::StatusCode::OK;
  std::string blob_ ABSL_GUARDED_BY(mu_);
  bool has_blob_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration delay_ ABSL_GUARDED_BY(mu_);
  int puts_ ABSL_GUARDED_BY(mu_) = 0;
  int deletes_ ABSL_GUARDED_BY(mu_) = 0;
  int gets_ ABSL_GUARDED_BY(mu_) = 0;
  bool last_consume_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::string> stored_ ABSL_GUARDED_BY(mu_);
  bool follow_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void(const v1::GetRequest&)> before_answer_ ABSL_GUARDED_BY(mu_);
  // The open Follow streams; writes to them and the log's numbering, under one lock.
  absl::Mutex streams_mu_;
  std::set<Stream*> streams_ ABSL_GUARDED_BY(streams_mu_);
  uint64_t seq_ ABSL_GUARDED_BY(streams_mu_) = 0;
};

}  // namespace tlscache::testing

#endif  // TLSCACHE_TESTS_TESTING_FAKE_SESSION_CACHE_H_
