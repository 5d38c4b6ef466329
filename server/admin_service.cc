#include "server/admin_service.h"

#include "common/status_util.h"
#include "common/cleanup_reactor.h"

namespace tlscache::server {

grpc::ServerUnaryReactor* AdminService::GetStats(grpc::CallbackServerContext* context,
                                                 const v1::StatsRequest* /*request*/,
                                                 v1::Stats* response) {
  if (authz_ != nullptr) {
    if (absl::Status s = authz_->CheckOperator(*context); !s.ok()) {
      return FinishNow(context, ToGrpcStatus(s));
    }
  }
  *response = stats_();
  return FinishNow(context, grpc::Status::OK);
}

}  // namespace tlscache::server
