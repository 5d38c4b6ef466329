#include "tests/testing/grpc_probe.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/proto_buffer_writer.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/channel_tls.h"
#include "common/status_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "reflection_probe.pb.h"
#include "tlscache/v1/session_cache.grpc.pb.h"

namespace tlscache::testing {

std::shared_ptr<grpc::Channel> Connect(int port) {
  return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
}

std::shared_ptr<grpc::Channel> ConnectTls(int port, const std::string& ca_file,
                                          const CertFiles* client) {
  ChannelTlsFiles files{ca_file, "", ""};
  if (client != nullptr) files = {ca_file, client->cert, client->key};
  absl::StatusOr<ChannelTls> tls = ReadChannelTls(files);
  if (!tls.ok()) return nullptr;
  return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), ChannelCredentials(*tls));
}

grpc::Status PutSession(const std::shared_ptr<grpc::Channel>& channel, const std::string& ns,
                        const std::string& id, const std::string& session) {
  v1::PutRequest request;
  request.set_namespace_(ns);
  request.set_session_id(id);
  request.set_session(session);
  v1::PutResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  return v1::SessionCache::NewStub(channel)->Put(&context, request, &response);
}

absl::StatusOr<std::string> GetSession(const std::shared_ptr<grpc::Channel>& channel,
                                       const std::string& ns, const std::string& id,
                                       absl::Duration deadline) {
  v1::GetRequest request;
  request.set_namespace_(ns);
  request.set_session_id(id);
  v1::GetResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  grpc::Status status = v1::SessionCache::NewStub(channel)->Get(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response.session();
}

absl::StatusOr<ServingStatus> CheckHealth(grpc::Channel& channel, const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(
      std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }
  return response.status();
}

bool AwaitHealth(grpc::Channel& channel, const std::string& service, ServingStatus want,
                 absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    absl::StatusOr<ServingStatus> got = CheckHealth(channel, service);
    if (got.ok() && *got == want) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

absl::StatusOr<std::vector<std::string>> ListServicesByReflection(
    const std::shared_ptr<grpc::Channel>& channel) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  auto call = stub.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  auto await = [&cq]() {
    void* tag = nullptr;
    bool ok = false;
    return cq.Next(&tag, &ok) && ok;
  };
  call->StartCall(nullptr);
  if (!await()) return absl::UnavailableError("reflection: call did not start");
  ReflectionRequest request;
  request.set_list_services("*");
  grpc::ByteBuffer request_bytes;
  bool own_buffer = false;
  if (!grpc::SerializationTraits<ReflectionRequest>::Serialize(request, &request_bytes, &own_buffer)
           .ok()) {
    return absl::InternalError("reflection: cannot serialize the request");
  }
  call->Write(request_bytes, nullptr);
  if (!await()) return absl::UnavailableError("reflection: write failed");
  grpc::ByteBuffer response_bytes;
  call->Read(&response_bytes, nullptr);
  if (!await()) return absl::UnavailableError("reflection: no response");
  call->WritesDone(nullptr);
  await();
  grpc::Status status;
  call->Finish(&status, nullptr);
  await();
  if (!status.ok()) return absl::UnavailableError(status.error_message());
  ReflectionResponse response;
  if (!grpc::SerializationTraits<ReflectionResponse>::Deserialize(&response_bytes, &response)
           .ok()) {
    return absl::InternalError("reflection: cannot parse the response");
  }
  std::vector<std::string> names;
  for (const auto& service : response.list_services_response().service()) {
    names.push_back(service.name());
  }
  return names;
}

absl::StatusOr<ServerProcess> StartServerProcess(const std::vector<std::string>& flags) {
  std::vector<std::string> argv = {BuiltBinary("tlscache-server"), "--listen=127.0.0.1:0"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  absl::StatusOr<std::unique_ptr<Subprocess>> process = Subprocess::Start(argv);
  if (!process.ok()) return process.status();
  constexpr absl::string_view kMarker = "listening on 127.0.0.1:";
  absl::StatusOr<std::string> line =
      (*process)->WaitForOutput(std::string(kMarker), absl::Seconds(20));
  if (!line.ok()) return line.status();
  absl::string_view rest =
      absl::string_view(*line).substr(line->find(std::string(kMarker)) + kMarker.size());
  rest = rest.substr(0, rest.find_first_of(" ,"));
  ServerProcess server;
  if (!absl::SimpleAtoi(rest, &server.port)) {
    return absl::InternalError(absl::StrCat("no port in '", *line, "'"));
  }
  server.process = *std::move(process);
  return server;
}

}  // namespace tlscache::testing
