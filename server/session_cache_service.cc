#include "server/session_cache_service.h"

#include <chrono>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/secret_bytes.h"
#include "common/status_util.h"
#include "common/validation.h"
#include "absl/time/clock.h"
#include "server/follow_stream.h"
#include "server/reactors.h"
#include "server/session_feed.h"

namespace tlscache::server {
namespace {

absl::Time Deadline(const grpc::CallbackServerContext* context) {
  const std::chrono::system_clock::time_point deadline = context->deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

}  // namespace

absl::Status SessionCacheService::Admit(const grpc::CallbackServerContext& context,
                                        absl::string_view ns, absl::string_view session_id) const {
  if (absl::Status s = AdmitNamespace(options_.authz, context, ns); !s.ok()) return s;
  return ValidateSessionId(session_id);
}

void SessionCacheService::Changed(absl::string_view ns, absl::string_view session_id,
                                  absl::string_view session, absl::Duration ttl) const {
  if (feed_ == nullptr) return;
  v1::SessionChange change;
  change.set_session_id(std::string(session_id));
  if (!session.empty()) {
    change.set_session(std::string(session));
    change.set_ttl_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(ttl)));
    change.set_origin_unix_micros(absl::ToUnixMicros(absl::Now()));
  }
  feed_->Changed(ns, &change, nullptr);  // wipes the copy
}

absl::Duration SessionCacheService::EffectiveTtl(uint32_t ttl_seconds) const {
  if (ttl_seconds == 0) return options_.default_ttl;
  return std::min(absl::Seconds(ttl_seconds), options_.max_ttl);
}

grpc::ServerUnaryReactor* SessionCacheService::Put(grpc::CallbackServerContext* context,
                                                   const tlscache::v1::PutRequest* request,
                                                   tlscache::v1::PutResponse* /*response*/) {
  // The request is ours until OnDone; wiping the session there is the last use of it.
  auto* session = const_cast<std::string*>(&request->session());
  if (absl::Status s = Admit(*context, request->namespace_(), request->session_id()); !s.ok()) {
    CleanseString(session);
    return FinishNow(context, ToGrpcStatus(s));
  }
  if (absl::Status s = ValidateSession(*session, options_.max_session_bytes); !s.ok()) {
    CleanseString(session);
    return FinishNow(context, ToGrpcStatus(s));
  }
  auto* reactor = new CleanupReactor([session] { CleanseString(session); });
  const absl::Duration ttl = EffectiveTtl(request->ttl_seconds());
  store_->Put({request->namespace_(), request->session_id()}, *session, ttl, Deadline(context),
              [this, reactor, request, ttl](absl::Status status) {
                // The request lives until the reactor is done: Finish comes last.
                if (status.ok()) {
                  Changed(request->namespace_(), request->session_id(), request->session(), ttl);
                }
                reactor->Finish(ToGrpcStatus(status));
              });
  return reactor;
}

grpc::ServerUnaryReactor* SessionCacheService::Get(grpc::CallbackServerContext* context,
                                                   const tlscache::v1::GetRequest* request,
                                                   tlscache::v1::GetResponse* response) {
  if (absl::Status s = Admit(*context, request->namespace_(), request->session_id()); !s.ok()) {
    return FinishNow(context, ToGrpcStatus(s));
  }
  auto* reactor = new CleanupReactor([response] { CleanseString(response->mutable_session()); });
  const int64_t max_ttl_seconds = absl::ToInt64Seconds(options_.max_ttl);
  store_->Get({request->namespace_(), request->session_id()}, request->consume(), Deadline(context),
              [this, reactor, request, response,
               max_ttl_seconds](absl::StatusOr<StoreEntry> entry) {
                if (!entry.ok()) return reactor->Finish(ToGrpcStatus(entry.status()));
                // Consumed: no near cache may offer it again.
                if (request->consume()) {
                  Changed(request->namespace_(), request->session_id(), {}, absl::ZeroDuration());
                }
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
  if (absl::Status s = Admit(*context, request->namespace_(), request->session_id()); !s.ok()) {
    return FinishNow(context, ToGrpcStatus(s));
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  store_->Delete({request->namespace_(), request->session_id()}, Deadline(context),
                 [this, reactor, request, response](absl::StatusOr<bool> existed) {
                   if (!existed.ok()) return reactor->Finish(ToGrpcStatus(existed.status()));
                   Changed(request->namespace_(), request->session_id(), {},
                           absl::ZeroDuration());
                   response->set_existed(*existed);
                   reactor->Finish(grpc::Status::OK);
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
  return new FollowStream(context, store_, feed_, this);
}

}  // namespace tlscache::server
