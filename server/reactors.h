// Unary reactors of tlscache's services.
//
// CleanupReactor: a unary reactor that runs a cleanup (wiping secrets from the request or response)
// once gRPC is done with the call: OnDone runs after the response was sent and before the messages
// are freed.
#ifndef TLSCACHE_SERVER_REACTORS_H_
#define TLSCACHE_SERVER_REACTORS_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>
#include <grpcpp/support/status.h>

#include <utility>

#include "absl/functional/any_invocable.h"

namespace tlscache::server {

class CleanupReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit CleanupReactor(absl::AnyInvocable<void()> cleanup) : cleanup_(std::move(cleanup)) {}

  void OnDone() override {
    cleanup_();
    delete this;
  }

 private:
  absl::AnyInvocable<void()> cleanup_;
};

// A call answered at once (bad input): gRPC's default reactor, already finished.
inline grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                           const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_REACTORS_H_
