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
#include "server/reactors.h"

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
  store_->Put({request->namespace_(), request->session_id()}, *session,
              EffectiveTtl(request->ttl_seconds()), Deadline(context),
              [reactor](absl::Status status) { reactor->Finish(ToGrpcStatus(status)); });
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
  if (absl::Status s = Admit(*context, request->namespace_(), request->session_id()); !s.ok()) {
    return FinishNow(context, ToGrpcStatus(s));
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  store_->Delete({request->namespace_(), request->session_id()}, Deadline(context),
                 [reactor, response](absl::StatusOr<bool> existed) {
                   if (!existed.ok()) return reactor->Finish(ToGrpcStatus(existed.status()));
                   response->set_existed(*existed);
                   reactor->Finish(grpc::Status::OK);
                 });
  return reactor;
}

}  // namespace tlscache::server
