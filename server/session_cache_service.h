// SessionCacheService: the tlscache.v1.SessionCache gRPC service on top of a Store.
//
// Validates each request (InvalidArgument naming the field), checks the caller may use the
// namespace (PermissionDenied), applies the TTL policy (0 means
// the default; above the maximum is clamped) and hands the call to the store without
// blocking the gRPC thread: the store finishes the call when it has the answer. Session
// bytes in requests and responses are wiped once the call is done.
//
// Thread-safety: the service is stateless past construction; `store` must outlive it.
#ifndef TLSCACHE_SERVER_SESSION_CACHE_SERVICE_H_
#define TLSCACHE_SERVER_SESSION_CACHE_SERVICE_H_

#include <cstddef>

#include "absl/time/time.h"
#include "server/security/authorizer.h"
#include "server/store/store.h"
#include "tlscache/v1/session_cache.grpc.pb.h"

namespace tlscache::server {

struct ServiceOptions {
  absl::Duration default_ttl = absl::Seconds(300);
  absl::Duration max_ttl = absl::Hours(24);
  size_t max_session_bytes = 16 << 10;
  // Who may use which namespace; null: every caller may use every namespace.
  const Authorizer* authz = nullptr;
};

class SessionFeed;

class SessionCacheService final : public tlscache::v1::SessionCache::CallbackService {
 public:
  // Every change made through the service goes to `feed` (null: none; then Follow is
  // UNIMPLEMENTED).
  SessionCacheService(Store* store, const ServiceOptions& options, SessionFeed* feed = nullptr)
      : store_(store), options_(options), feed_(feed) {}

  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* context,
                                const tlscache::v1::PutRequest* request,
                                tlscache::v1::PutResponse* response) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context,
                                const tlscache::v1::GetRequest* request,
                                tlscache::v1::GetResponse* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const tlscache::v1::DeleteRequest* request,
                                   tlscache::v1::DeleteResponse* response) override;
  grpc::ServerBidiReactor<tlscache::v1::FollowRequest, tlscache::v1::FollowResponse>* Follow(
      grpc::CallbackServerContext* context) override;

  // The TTL a Put with `ttl_seconds` gets.
  absl::Duration EffectiveTtl(uint32_t ttl_seconds) const;
  const ServiceOptions& options() const { return options_; }

 private:
  absl::Status Admit(const grpc::CallbackServerContext& context, absl::string_view ns,
                     absl::string_view session_id) const;

  // Tells the feed (if any) that `ns` changed: `session` stored for `ttl`, or (empty) deleted.
  void Changed(absl::string_view ns, absl::string_view session_id, absl::string_view session,
               absl::Duration ttl) const;

  Store* const store_;
  const ServiceOptions options_;
  SessionFeed* const feed_;
};

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_SESSION_CACHE_SERVICE_H_
