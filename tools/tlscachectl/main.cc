// tlscachectl: the operator's command line for a tlscache service.
//
//   tlscachectl --addr=HOST:PORT --namespace=NS keys show
//   tlscachectl --addr=HOST:PORT --namespace=NS keys rotate
//
// Output names keys by their (public) names; key bytes are never printed.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/channel_tls.h"
#include "common/validation.h"
#include "tlscache/v1/ticket_keys.grpc.pb.h"

ABSL_FLAG(std::string, addr, "127.0.0.1:7700", "the cache service, HOST:PORT");
ABSL_FLAG(std::string, namespace, "default", "the namespace to act on");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(5), "deadline of each call");
ABSL_FLAG(std::string, ca_file, "", "PEM CA bundle to verify the service with (TLS)");
ABSL_FLAG(std::string, cert_file, "", "PEM client certificate, for a service that requires one");
ABSL_FLAG(std::string, key_file, "", "PEM private key of --cert_file");

namespace tlscache {
namespace {

constexpr char kUsage[] =
    "usage: tlscachectl [--addr=HOST:PORT] [--namespace=NS] [--ca_file=PEM [--cert_file=PEM "
    "--key_file=PEM]] keys show|rotate";

int Fail(const std::string& message, int code = 1) {
  std::fprintf(stderr, "tlscachectl: %s\n", message.c_str());
  return code;
}

std::string Time(int64_t unix_ms) {
  if (unix_ms == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMillis(unix_ms), absl::UTCTimeZone());
}

const char* State(v1::TicketKey::State state) {
  switch (state) {
    case v1::TicketKey::PENDING:
      return "PENDING";
    case v1::TicketKey::ACTIVE:
      return "ACTIVE";
    case v1::TicketKey::DECRYPT_ONLY:
      return "DECRYPT_ONLY";
    default:
      return "UNKNOWN";
  }
}

void Print(const std::string& ns, const v1::TicketKeySet& ring) {
  std::printf("namespace %s: ring version %llu, next rotation %s\n", ns.c_str(),
              static_cast<unsigned long long>(ring.version()),
              Time(ring.next_rotation_unix_ms()).c_str());
  std::printf("%-34s %-13s %-21s %s\n", "NAME", "STATE", "NOT BEFORE", "NOT AFTER");
  for (const v1::TicketKey& key : ring.keys()) {
    std::printf("%-34s %-13s %-21s %s\n", absl::BytesToHexString(key.name()).c_str(),
                State(key.state()), Time(key.not_before_unix_ms()).c_str(),
                Time(key.not_after_unix_ms()).c_str());
  }
}

int Keys(const std::string& verb) {
  const std::string ns = absl::GetFlag(FLAGS_namespace);
  if (absl::Status s = ValidateNamespace(ns); !s.ok()) return Fail(std::string(s.message()), 2);
  absl::StatusOr<ChannelTls> tls =
      ReadChannelTls({absl::GetFlag(FLAGS_ca_file), absl::GetFlag(FLAGS_cert_file),
                      absl::GetFlag(FLAGS_key_file)});
  if (!tls.ok()) return Fail(absl::StrCat("--", tls.status().message()), 2);
  auto stub = v1::TicketKeys::NewStub(
      grpc::CreateChannel(absl::GetFlag(FLAGS_addr), ChannelCredentials(*tls)));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_timeout)));
  v1::TicketKeysRequest request;
  request.set_namespace_(ns);
  v1::TicketKeySet ring;
  grpc::Status status = verb == "show" ? stub->GetTicketKeys(&context, request, &ring)
                                       : stub->RotateTicketKeys(&context, request, &ring);
  if (!status.ok()) {
    return Fail(absl::StrCat("keys ", verb, " at ", absl::GetFlag(FLAGS_addr), ": ",
                             status.error_message()));
  }
  Print(ns, ring);
  return 0;
}

int Main(const std::vector<std::string>& args) {
  if (args.size() == 2 && args[0] == "keys" && (args[1] == "show" || args[1] == "rotate")) {
    return Keys(args[1]);
  }
  return Fail(absl::StrCat(args.empty() ? "no command"
                                        : "unknown command '" + absl::StrJoin(args, " ") + "'",
                           "\n", kUsage),
              2);
}

}  // namespace
}  // namespace tlscache

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(tlscache::kUsage);
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  return tlscache::Main(std::vector<std::string>(rest.begin() + 1, rest.end()));
}
