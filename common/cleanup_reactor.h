// CleanupReactor: a unary reactor of tlscache's services that runs a cleanup (wiping secrets from the request or response)
// once gRPC is done with the call: OnDone runs after the response was sent and before the messages
// are freed.
#ifndef TLSCACHE_COMMON_CLEANUP_REACTOR_H_
#define TLSCACHE_COMMON_CLEANUP_REACTOR_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>
#include <grpcpp/support/status.h>

#include <utility>

#include "absl/functional/any_invocable.h"

namespace tlscache {

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

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_CLEANUP_REACTOR_H_
