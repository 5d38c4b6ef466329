#include "server/sessions/session_cache_service.h"

#include <chrono>
#include <cmath>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "common/secret_bytes.h"
#include "common/status_util.h"
#include "server/sessions/follow_stream.h"
#include "common/cleanup_reactor.h"

namespace tlscache::server {
namespace {

absl::Time Deadline(const grpc::CallbackServerContext* context) {
  const std::chrono::system_clock::time_point deadline = context->deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

}  // namespace

grpc::ServerUnaryReactor* SessionCacheService::Put(grpc::CallbackServerContext* context,
                                                   const tlscache::v1::PutRequest* request,
                                                   tlscache::v1::PutResponse* response) {
  // The request is ours until OnDone; wiping the session there is the last use of it.
  auto* session = const_cast<std::string*>(&request->session());
  if (absl::Status s = AdmitNamespace(options().authz, *context, request->namespace_()); !s.ok()) {
    CleanseString(session);
    return FinishNow(context, ToGrpcStatus(s));
  }
  auto* reactor = new CleanupReactor([session] { CleanseString(session); });
  writes_.Put(request->namespace_(), request->session_id(), *session, request->ttl_seconds(), 0,
              Deadline(context), [reactor, response](absl::StatusOr<bool> stored) {
                if (stored.ok()) response->set_stored(*stored);
                reactor->Finish(ToGrpcStatus(stored.status()));
              });
  return reactor;
}

grpc::ServerUnaryReactor* SessionCacheService::Get(grpc::CallbackServerContext* context,
                                                   const tlscache::v1::GetRequest* request,
                                                   tlscache::v1::GetResponse* response) {
  if (absl::Status s = AdmitNamespace(options().authz, *context, request->namespace_()); !s.ok()) {
    return FinishNow(context, ToGrpcStatus(s));
  }
  auto* reactor = new CleanupReactor([response] { CleanseString(response->mutable_session()); });
  const int64_t max_ttl_seconds = absl::ToInt64Seconds(options().max_ttl);
  writes_.Get(request->namespace_(), request->session_id(), request->consume(), Deadline(context),
              [reactor, response, max_ttl_seconds](absl::StatusOr<StoreEntry> entry) {
                if (!entry.ok()) return reactor->Finish(ToGrpcStatus(entry.status()));
                response->set_session(entry->session.data(), entry->session.size());
                // Rounded up: an entry that is still there never reports 0 seconds left.
                const double left = std::ceil(absl::ToDoubleSeconds(entry->ttl_remaining));
                response->set_ttl_remaining_seconds(
                    static_cast<uint32_t>(std::min<double>(std::max(left, 1.0), max_ttl_seconds)));
                reactor->Finish(grpc::Status::OK);
              });
  return reactor;
}

grpc::ServerUnaryReactor* SessionCacheService::Delete(grpc::CallbackServerContext* context,
                                                      const tlscache::v1::DeleteRequest* request,
                                                      tlscache::v1::DeleteResponse* response) {
  if (absl::Status s = AdmitNamespace(options().authz, *context, request->namespace_()); !s.ok()) {
    return FinishNow(context, ToGrpcStatus(s));
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  writes_.Delete(request->namespace_(), request->session_id(), request->hold_seconds(),
                 request->tls_session_id(), Deadline(context),
                 [reactor, response](absl::StatusOr<bool> existed) {
                   if (existed.ok()) response->set_existed(*existed);
                   reactor->Finish(ToGrpcStatus(existed.status()));
                 });
  return reactor;
}

grpc::ServerBidiReactor<tlscache::v1::FollowRequest, tlscache::v1::FollowResponse>*
SessionCacheService::Follow(grpc::CallbackServerContext* context) {
  if (feed_ == nullptr) {
    // Not reached in tlscache-server (it always has a feed); a test may build the service bare.
    class Refuse final
        : public grpc::ServerBidiReactor<tlscache::v1::FollowRequest, tlscache::v1::FollowResponse> {
     public:
      Refuse() { Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no session feed")); }
      void OnDone() override { delete this; }
    };
    return new Refuse();
  }
  return new FollowStream(context, &writes_, feed_, options().authz);
}

}  // namespace tlscache::server
