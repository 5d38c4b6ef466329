// AdminService: tlscache.v1.Admin, the operator's view of a replica (tlscachectl stats). With
// an authorizer, only an identity granted every namespace may call it.
//
// Thread-safety: stateless past construction; `stats` is called on gRPC threads.
#ifndef TLSCACHE_SERVER_ADMIN_SERVICE_H_
#define TLSCACHE_SERVER_ADMIN_SERVICE_H_

#include <functional>

#include "server/security/authorizer.h"
#include "tlscache/v1/admin.grpc.pb.h"

namespace tlscache::server {

class AdminService final : public v1::Admin::CallbackService {
 public:
  AdminService(const Authorizer* authz, std::function<v1::Stats()> stats)
      : authz_(authz), stats_(std::move(stats)) {}

  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* context,
                                     const v1::StatsRequest* request, v1::Stats* response) override;

 private:
  const Authorizer* const authz_;
  const std::function<v1::Stats()> stats_;
};

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_ADMIN_SERVICE_H_
