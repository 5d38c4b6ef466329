// SessionCacheService: the tlscache.v1.SessionCache gRPC service.
//
// Checks the caller may use the namespace (PermissionDenied) and hands each call to
// SessionWrites (server/sessions/session_writes.h: validation, TTLs, the store and the change log)
// without blocking the gRPC thread: the store finishes the call when it has the answer. Follow
// streams are server/sessions/follow_stream.h. Session bytes in requests and responses are wiped once
// the call is done.
//
// Thread-safety: the service is stateless past construction; `store` and `feed` outlive it.
#ifndef TLSCACHE_SERVER_SESSIONS_SESSION_CACHE_SERVICE_H_
#define TLSCACHE_SERVER_SESSIONS_SESSION_CACHE_SERVICE_H_

#include "server/sessions/session_feed.h"
#include "server/sessions/session_writes.h"
#include "server/store/store.h"
#include "tlscache/v1/session_cache.grpc.pb.h"

namespace tlscache::server {

class SessionCacheService final : public tlscache::v1::SessionCache::CallbackService {
 public:
  // Every change made through the service goes to `feed` (null: none; then Follow is
  // UNIMPLEMENTED).
  SessionCacheService(Store* store, const ServiceOptions& options, SessionFeed* feed = nullptr)
      : writes_(store, feed, options), feed_(feed) {}

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

  SessionWrites& writes() { return writes_; }
  const ServiceOptions& options() const { return writes_.options(); }

 private:
  SessionWrites writes_;
  SessionFeed* const feed_;
};

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_SESSIONS_SESSION_CACHE_SERVICE_H_
