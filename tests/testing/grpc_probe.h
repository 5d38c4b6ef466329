// Client-side probes of a running cache server for tests: health, reflection, and a running
// tlscache-server process.
#ifndef TLSCACHE_TESTS_TESTING_GRPC_PROBE_H_
#define TLSCACHE_TESTS_TESTING_GRPC_PROBE_H_

#include <grpcpp/channel.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.pb.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_pki.h"

namespace tlscache::testing {

using ServingStatus = ::grpc::health::v1::HealthCheckResponse::ServingStatus;

std::shared_ptr<grpc::Channel> Connect(int port);
// TLS to 127.0.0.1:port, trusting `ca_file`, with a client certificate when `client` is set.
std::shared_ptr<grpc::Channel> ConnectTls(int port, const std::string& ca_file,
                                          const CertFiles* client = nullptr);

// SessionCache Put and Get for tests, each with a deadline.
grpc::Status PutSession(const std::shared_ptr<grpc::Channel>& channel, const std::string& ns,
                        const std::string& id, const std::string& session);
// The session, or why not (NotFound for a miss).
absl::StatusOr<std::string> GetSession(const std::shared_ptr<grpc::Channel>& channel,
                                       const std::string& ns, const std::string& id,
                                       absl::Duration deadline = absl::Seconds(5));

// grpc.health.v1.Health/Check for `service` ("" for the whole server).
absl::StatusOr<ServingStatus> CheckHealth(grpc::Channel& channel, const std::string& service);

// Waits until Check(service) answers `want`.
bool AwaitHealth(grpc::Channel& channel, const std::string& service, ServingStatus want,
                 absl::Duration timeout = absl::Seconds(15));

// The service names the server's reflection service lists.
absl::StatusOr<std::vector<std::string>> ListServicesByReflection(
    const std::shared_ptr<grpc::Channel>& channel);

// A tlscache-server process on 127.0.0.1 and a port of its choosing.
struct ServerProcess {
  std::unique_ptr<Subprocess> process;
  int port = 0;
};
// Starts build/bin/tlscache-server with `flags` (plus --listen=127.0.0.1:0) and waits until it
// says which port it listens on.
absl::StatusOr<ServerProcess> StartServerProcess(const std::vector<std::string>& flags);

}  // namespace tlscache::testing

#endif  // TLSCACHE_TESTS_TESTING_GRPC_PROBE_H_
