// tlscachectl: the operator's command line for a tlscache service.
//
//   tlscachectl [flags] stats               this replica's counters, store and key rings
//   tlscachectl [flags] get HEXID [--out=F] whether a session is cached (bytes only into F)
//   tlscachectl [flags] put HEXID FILE      stores FILE's bytes as the session [--ttl]
//   tlscachectl [flags] del HEXID           deletes a session
//   tlscachectl [flags] keys show|rotate    the namespace's ticket key ring
//
// Session bytes and key bytes are secrets: they are never printed; `get --out` writes a
// session to a file only its owner may read.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/channel_tls.h"
#include "common/files.h"
#include "common/secret_bytes.h"
#include "common/status_util.h"
#include "common/ticket_key.h"
#include "common/usage.h"
#include "common/validation.h"
#include "tlscache/v1/admin.grpc.pb.h"
#include "tlscache/v1/session_cache.grpc.pb.h"
#include "tlscache/v1/ticket_keys.grpc.pb.h"

ABSL_FLAG(std::string, addr, "127.0.0.1:7700", "the cache service, HOST:PORT");
ABSL_FLAG(std::string, namespace, "default", "the namespace to act on");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(5), "deadline of each call");
ABSL_FLAG(std::string, ca_file, "", "PEM CA bundle to verify the service with (TLS)");
ABSL_FLAG(std::string, cert_file, "", "PEM client certificate, for a service that requires one");
ABSL_FLAG(std::string, key_file, "", "PEM private key of --cert_file");
ABSL_FLAG(absl::Duration, ttl, absl::ZeroDuration(),
          "put: how long the session lives (0: the server's default)");
ABSL_FLAG(std::string, out, "", "get: write the session's bytes to this file (mode 0600)");

namespace tlscache {
namespace {

constexpr char kUsage[] =
    "the operator's command line for a tlscache service.\n"
    "usage: tlscachectl [--addr=HOST:PORT] [--namespace=NS] [--timeout=5s]\n"
    "                   [--ca_file=PEM [--cert_file=PEM --key_file=PEM]] COMMAND\n"
    "commands:\n"
    "  stats                 this replica's counters, its store and the key rings it serves\n"
    "  get HEXID [--out=F]   whether the session is cached, its size and TTL; --out writes it\n"
    "  put HEXID FILE [--ttl=D]  stores the bytes of FILE as the session\n"
    "  del HEXID             deletes the session\n"
    "  keys show             the namespace's ticket keys (names, states, times) and their\n"
    "                        followers (the version each holds)\n"
    "  keys rotate           rotates the namespace's ticket keys now";

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

void PrintFollowers(const v1::TicketKeyFollowers& followers) {
  std::printf("%d followers\n", followers.followers_size());
  if (followers.followers_size() == 0) return;
  std::printf("%-48s %-8s %s\n", "FOLLOWER", "VERSION", "LEASE");
  const int64_t now = absl::ToUnixMillis(absl::Now());
  for (const v1::TicketKeyFollower& f : followers.followers()) {
    const bool behind = f.version() < followers.ring_version();
    const double left = static_cast<double>(f.lease_ends_unix_ms() - now) / 1e3;
    const std::string lease = left > 0 ? absl::StrFormat("%.1fs left", left)
                                       : absl::StrFormat("ended %.1fs ago", -left);
    std::printf("%-48s %-8llu %s%s\n", f.follower().c_str(),
                static_cast<unsigned long long>(f.version()), lease.c_str(),
                behind ? " (behind: a rotation waits for it while its lease runs)" : "");
  }
}

// The channel to --addr, or why not (a message for Fail, exit code 2).
absl::StatusOr<std::shared_ptr<grpc::Channel>> Channel() {
  absl::StatusOr<ChannelTls> tls =
      ReadChannelTls({absl::GetFlag(FLAGS_ca_file), absl::GetFlag(FLAGS_cert_file),
                      absl::GetFlag(FLAGS_key_file)});
  if (!tls.ok()) return absl::InvalidArgumentError(absl::StrCat("--", tls.status().message()));
  return grpc::CreateChannel(absl::GetFlag(FLAGS_addr), ChannelCredentials(*tls));
}

void SetDeadline(grpc::ClientContext* context) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_timeout)));
}

int CallFailed(absl::string_view what, const grpc::Status& status) {
  return Fail(absl::StrCat(what, " at ", absl::GetFlag(FLAGS_addr), ": ",
                           FromGrpcStatus(status).ToString()));
}

int Keys(const std::string& verb) {
  const std::string ns = absl::GetFlag(FLAGS_namespace);
  if (absl::Status s = ValidateNamespace(ns); !s.ok()) return Fail(std::string(s.message()), 2);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = Channel();
  if (!channel.ok()) return Fail(std::string(channel.status().message()), 2);
  auto stub = v1::TicketKeys::NewStub(*channel);
  grpc::ClientContext context;
  SetDeadline(&context);
  v1::TicketKeysRequest request;
  request.set_namespace_(ns);
  v1::TicketKeySet ring;
  grpc::Status status = verb == "show" ? stub->GetTicketKeys(&context, request, &ring)
                                       : stub->RotateTicketKeys(&context, request, &ring);
  if (!status.ok()) return CallFailed(absl::StrCat("keys ", verb), status);
  Print(ns, ring);
  WipeRing(&ring);
  // Who follows the ring, and which version each holds: a rotation waits for those behind.
  grpc::ClientContext list_context;
  SetDeadline(&list_context);
  v1::TicketKeyFollowers followers;
  status = stub->ListTicketKeyFollowers(&list_context, request, &followers);
  if (!status.ok()) return CallFailed("keys followers", status);
  PrintFollowers(followers);
  return 0;
}

int Stats() {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = Channel();
  if (!channel.ok()) return Fail(std::string(channel.status().message()), 2);
  grpc::ClientContext context;
  SetDeadline(&context);
  v1::Stats stats;
  grpc::Status status = v1::Admin::NewStub(*channel)->GetStats(&context, {}, &stats);
  if (!status.ok()) return CallFailed("stats", status);
  std::printf("store       %s\nserving     %s\nuptime      %.0fs\n", stats.store().c_str(),
              stats.serving() ? "yes" : "NO", stats.uptime_seconds());
  const uint64_t lookups = stats.hits() + stats.misses();
  std::printf("lookups     %llu hits, %llu misses (%.1f%% hits)\n",
              static_cast<unsigned long long>(stats.hits()),
              static_cast<unsigned long long>(stats.misses()),
              lookups == 0 ? 0.0 : 100.0 * static_cast<double>(stats.hits()) / lookups);
  if (stats.has_memory_entries()) {
    std::printf("memory      %llu entries, %llu bytes\n",
                static_cast<unsigned long long>(stats.memory_entries()),
                static_cast<unsigned long long>(stats.memory_bytes()));
  }
  if (stats.has_redis_connects()) {
    std::printf("redis       %llu connects, %llu errors\n",
                static_cast<unsigned long long>(stats.redis_connects()),
                static_cast<unsigned long long>(stats.redis_errors()));
  }
  if (stats.has_redis_redirects()) {
    std::printf("redis       %llu cluster redirections followed\n",
                static_cast<unsigned long long>(stats.redis_redirects()));
  }
  if (stats.has_sealed_open_failures()) {
    std::printf("sealed      %llu values did not open\n",
                static_cast<unsigned long long>(stats.sealed_open_failures()));
  }
  std::printf("%-44s %-20s %s\n", "METHOD", "CODE", "CALLS");
  for (const v1::Stats::RequestCount& r : stats.requests()) {
    std::printf("%-44s %-20s %llu\n", r.method().c_str(), r.code().c_str(),
                static_cast<unsigned long long>(r.count()));
  }
  for (const v1::Stats::Ring& ring : stats.rings()) {
    std::printf("ring        namespace %s: version %llu, active key %.0fs old\n",
                ring.namespace_().c_str(), static_cast<unsigned long long>(ring.version()),
                ring.active_key_age_seconds());
  }
  return 0;
}

// The session ID of a command line: hex, 1 to 32 bytes.
absl::StatusOr<std::string> SessionId(const std::string& hex) {
  std::string id;
  if (hex.empty() || hex.size() % 2 != 0 ||
      !std::all_of(hex.begin(), hex.end(), [](char c) { return absl::ascii_isxdigit(c); })) {
    return absl::InvalidArgumentError(absl::StrCat("'", hex, "' is not a hex session ID"));
  }
  id = absl::HexStringToBytes(hex);
  if (absl::Status s = ValidateSessionId(id); !s.ok()) return s;
  return id;
}

int Session(const std::vector<std::string>& args) {
  const std::string& verb = args[0];
  const std::string ns = absl::GetFlag(FLAGS_namespace);
  if (absl::Status s = ValidateNamespace(ns); !s.ok()) return Fail(std::string(s.message()), 2);
  if (args.size() != (verb == "put" ? 3u : 2u)) {
    return Fail(
        absl::StrCat(verb, ": expected ", verb == "put" ? "HEXID FILE" : "HEXID", "\n", kUsage), 2);
  }
  absl::StatusOr<std::string> id = SessionId(args[1]);
  if (!id.ok()) return Fail(absl::StrCat(verb, ": ", id.status().message()), 2);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = Channel();
  if (!channel.ok()) return Fail(std::string(channel.status().message()), 2);
  auto stub = v1::SessionCache::NewStub(*channel);
  grpc::ClientContext context;
  SetDeadline(&context);
  if (verb == "put") {
    absl::StatusOr<std::string> bytes = ReadSmallFile(args[2]);
    if (!bytes.ok()) return Fail(absl::StrCat("put: ", bytes.status().message()), 2);
    const absl::Duration ttl = absl::GetFlag(FLAGS_ttl);
    if (ttl < absl::ZeroDuration() || ttl > absl::Seconds(UINT32_MAX)) {
      return Fail("put: --ttl must be between 0 and 136 years", 2);
    }
    v1::PutRequest request;
    request.set_namespace_(ns);
    request.set_session_id(*id);
    request.set_session(*bytes);
    request.set_ttl_seconds(static_cast<uint32_t>(absl::ToInt64Seconds(ttl)));
    const size_t size = bytes->size();
    CleanseString(&*bytes);
    v1::PutResponse response;
    grpc::Status status = stub->Put(&context, request, &response);
    CleanseString(request.mutable_session());
    if (!status.ok()) return CallFailed("put", status);
    std::printf("stored %s (%zu bytes) in namespace %s\n", args[1].c_str(), size, ns.c_str());
    return 0;
  }
  if (verb == "del") {
    v1::DeleteRequest request;
    request.set_namespace_(ns);
    request.set_session_id(*id);
    v1::DeleteResponse response;
    grpc::Status status = stub->Delete(&context, request, &response);
    if (!status.ok()) return CallFailed("del", status);
    std::printf("%s %s\n", args[1].c_str(), response.existed() ? "deleted" : "was not cached");
    return 0;
  }
  v1::GetRequest request;
  request.set_namespace_(ns);
  request.set_session_id(*id);
  v1::GetResponse response;
  grpc::Status status = stub->Get(&context, request, &response);
  if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
    return Fail(absl::StrCat("get: ", args[1], " is not cached in namespace ", ns));
  }
  if (!status.ok()) return CallFailed("get", status);
  const size_t size = response.session().size();
  if (const std::string out = absl::GetFlag(FLAGS_out); !out.empty()) {
    absl::Status written = WriteSecretFile(out, response.session());
    CleanseString(response.mutable_session());
    if (!written.ok()) return Fail(absl::StrCat("get: ", written.message()));
  }
  CleanseString(response.mutable_session());
  std::printf("%s: %zu bytes, %u seconds left\n", args[1].c_str(), size,
              response.ttl_remaining_seconds());
  return 0;
}

int Main(const std::vector<std::string>& args) {
  if (args.size() == 2 && args[0] == "keys" && (args[1] == "show" || args[1] == "rotate")) {
    return Keys(args[1]);
  }
  if (args.size() == 1 && args[0] == "stats") return Stats();
  if (!args.empty() && (args[0] == "get" || args[0] == "put" || args[0] == "del")) {
    return Session(args);
  }
  return Fail(absl::StrCat(args.empty() ? "no command"
                                        : "unknown command '" + absl::StrJoin(args, " ") + "'",
                           "\n", kUsage),
              2);
}

}  // namespace
}  // namespace tlscache

int main(int argc, char** argv) {
  tlscache::SetUsage(tlscache::kUsage);
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  return tlscache::Main(std::vector<std::string>(rest.begin() + 1, rest.end()));
}
