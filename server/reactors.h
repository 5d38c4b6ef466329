// A unary reactor that runs a cleanup (wiping secrets from the request or response) once gRPC
// is done with the call: OnDone runs after the response was sent and before the messages are
// freed.
#ifndef TLSCACHE_SERVER_REACTORS_H_
#define TLSCACHE_SERVER_REACTORS_H_

#include <grpcpp/support/server_callback.h>

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

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_REACTORS_H_
