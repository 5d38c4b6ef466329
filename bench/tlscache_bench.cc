// tlscache-bench: load for a tlscache farm, and its figures.
//
//   tlscache-bench rpc --addr=HOST:PORT   SessionCache calls against one cache service
//   tlscache-bench tls --target=HOST:PORT TLS handshakes against a TLS server or a balancer
//
// Both keep --concurrency operations in flight for --duration, print a progress line on
// stderr every second, and print the result as text, or as one JSON object with --json.
// The exit status is 0 when the load ran and at least one operation succeeded, 1 otherwise,
// 2 for bad flags.
#include <openssl/ssl.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/absl_runtime.h"
#include "common/channel_tls.h"
#include "common/host_port.h"
#include "common/usage.h"
#include "bench/report.h"
#include "bench/rpc_load.h"
#include "bench/stream_load.h"
#include "bench/tls_load.h"

ABSL_FLAG(int32_t, concurrency, 16, "operations kept in flight");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "how long the measured load runs");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(1),
          "deadline of each call (rpc) or of each step of a connection (tls)");
ABSL_FLAG(bool, json, false, "print the result as one JSON object");
ABSL_FLAG(bool, progress, true, "print a progress line on stderr every second");
// rpc
ABSL_FLAG(std::string, addr, "127.0.0.1:7700", "rpc, stream: the cache service, HOST:PORT");
ABSL_FLAG(std::string, namespace, "bench", "rpc, stream: the namespace the load uses");
ABSL_FLAG(int32_t, value_size, 256, "rpc, stream: bytes of each stored session");
ABSL_FLAG(std::string, mix, "9:1", "rpc: GET:PUT, the odds of each call (1:0 only Gets)");
ABSL_FLAG(int32_t, keys, 10000, "rpc: distinct session IDs, each Put once before the load");
ABSL_FLAG(double, rate, 0,
          "rpc, stream: calls (stores) per second, sent on schedule (0: each slot's next call "
          "as soon as its reply comes)");
ABSL_FLAG(int32_t, connections, 1, "rpc: HTTP/2 connections the calls are spread over");
ABSL_FLAG(std::string, ca_file, "", "rpc: PEM CA bundle to verify the service with (TLS)");
ABSL_FLAG(std::string, cert_file, "", "rpc: PEM client certificate (mTLS)");
ABSL_FLAG(std::string, key_file, "", "rpc: PEM private key of --cert_file");
// tls
ABSL_FLAG(int32_t, followers, 0,
          "stream: more clients following the namespace, each receiving every store");

ABSL_FLAG(std::string, target, "",
          "tls: the TLS server or balancer, HOST:PORT; several, comma-separated: each client "
          "connects to them in turn");
ABSL_FLAG(std::string, tls, "1.3", "tls: the TLS version, 1.2 or 1.3");
ABSL_FLAG(std::string, resume, "newest",
          "tls: newest (offer the newest session held, as browsers do) or none");
ABSL_FLAG(std::string, server_name, "", "tls: SNI to send (default: none)");
ABSL_FLAG(absl::Duration, pause, absl::ZeroDuration(),
          "tls: how long each client waits between its connections");
ABSL_FLAG(std::vector<std::string>, chains, {},
          "tls: for each --target, which session it is offered: targets with the same number "
          "share the newest any of them made (default: all one)");

namespace tlscache::bench {
namespace {

constexpr char kUsage[] =
    "load for a tlscache farm, and its figures.\n"
    "usage: tlscache-bench rpc [--addr=HOST:PORT] [--concurrency=16] [--duration=10s]\n"
    "                          [--value_size=256] [--mix=GET:PUT] [--json]\n"
    "       tlscache-bench stream [--addr=HOST:PORT] [--concurrency=16] [--followers=0]\n"
    "                          [--rate=0] [--duration=10s] [--value_size=256] [--json]\n"
    "       tlscache-bench tls --target=HOST:PORT[,HOST:PORT...] [--concurrency=16]\n"
    "                          [--duration=10s] [--chains=N,...]\n"
    "                          [--tls=1.2|1.3] [--resume=newest|none] [--json]";

int Usage(const std::string& message) {
  std::fprintf(stderr, "tlscache-bench: %s\n", message.c_str());
  return 2;
}

int Failed(const absl::Status& status) {
  std::fprintf(stderr, "tlscache-bench: %s\n", std::string(status.message()).c_str());
  return 1;
}

void Print(const std::string& text) { std::fwrite(text.data(), 1, text.size(), stdout); }

// The flags the rpc and stream loads share, into `options`; a usage error, or empty.
template <typename Options>
std::string ServiceLoadFlags(Options& options) {
  options.addr = absl::GetFlag(FLAGS_addr);
  options.ns = absl::GetFlag(FLAGS_namespace);
  options.concurrency = absl::GetFlag(FLAGS_concurrency);
  options.duration = absl::GetFlag(FLAGS_duration);
  options.timeout = absl::GetFlag(FLAGS_timeout);
  options.rate = absl::GetFlag(FLAGS_rate);
  options.progress = absl::GetFlag(FLAGS_progress);
  if (absl::GetFlag(FLAGS_value_size) < 1) return "--value_size: must be positive";
  options.value_size = static_cast<size_t>(absl::GetFlag(FLAGS_value_size));
  if (!SplitHostPort(options.addr).ok()) {
    return absl::StrCat("--addr=", options.addr, ": expected HOST:PORT");
  }
  return "";
}

int RunRpc() {
  RpcLoadOptions options;
  if (std::string bad = ServiceLoadFlags(options); !bad.empty()) return Usage(bad);
  options.connections = absl::GetFlag(FLAGS_connections);
  options.keys = absl::GetFlag(FLAGS_keys);
  const std::vector<std::string> mix = absl::StrSplit(absl::GetFlag(FLAGS_mix), ':');
  if (mix.size() != 2 || !absl::SimpleAtoi(mix[0], &options.get_weight) ||
      !absl::SimpleAtoi(mix[1], &options.put_weight)) {
    return Usage(absl::StrCat("--mix=", absl::GetFlag(FLAGS_mix),
                              ": expected GET:PUT weights, e.g. 9:1"));
  }
  const absl::StatusOr<ChannelTls> tls = ReadChannelTls({absl::GetFlag(FLAGS_ca_file),
                                                         absl::GetFlag(FLAGS_cert_file),
                                                         absl::GetFlag(FLAGS_key_file)});
  if (!tls.ok()) return Usage(std::string(tls.status().message()));
  options.credentials = ChannelCredentials(*tls);

  const absl::StatusOr<RpcLoadResult> result = RunRpcLoad(options);
  if (!result.ok()) return Failed(result.status());
  const RpcLoadResult& r = *result;
  if (absl::GetFlag(FLAGS_json)) {
    JsonObject errors;
    for (const auto& [code, count] : r.errors_by_code) errors.Add(code, count);
    JsonObject json;
    json.Add("mode", "rpc")
        .Add("addr", options.addr)
        .Add("concurrency", options.concurrency)
        .Add("connections", options.connections)
        .Add("value_size", static_cast<uint64_t>(options.value_size))
        .Add("mix", absl::GetFlag(FLAGS_mix))
        .Add("keys", options.keys)
        .Add("rate", options.rate)
        .Add("late", r.late)
        .Add("prefilled", r.prefilled)
        .Add("seconds", absl::ToDoubleSeconds(r.elapsed))
        .Add("calls", r.calls())
        .Add("calls_per_second", PerSecond(r.calls(), r.elapsed))
        .Add("gets", r.gets)
        .Add("puts", r.puts)
        .Add("hits", r.hits)
        .Add("misses", r.misses)
        .Add("errors", r.errors)
        .Add("wrong", r.wrong)
        .Add("errors_by_code", errors)
        .Add("first_error", r.first_error)
        .Add("latency", LatencyJson(r.latency))
        .Add("get_latency", LatencyJson(r.get_latency))
        .Add("put_latency", LatencyJson(r.put_latency));
    Print(json.ToString() + "\n");
  } else {
    Print(absl::StrFormat(
        "rpc %s: %d calls in %.1f s, %.0f calls/s, concurrency %d, %d-byte values\n"
        "  gets %d (hits %d, misses %d), puts %d, errors %d, wrong data %d, late %d\n"
        "  latency   %s\n  get       %s\n  put       %s\n",
        options.addr, r.calls(), absl::ToDoubleSeconds(r.elapsed), PerSecond(r.calls(), r.elapsed),
        options.concurrency, options.value_size, r.gets, r.hits, r.misses, r.puts, r.errors,
        r.wrong, r.late, LatencyText(r.latency), LatencyText(r.get_latency), LatencyText(r.put_latency)));
    if (!r.first_error.empty()) Print(absl::StrCat("  first error: ", r.first_error, "\n"));
  }
  return r.calls() > r.errors ? 0 : 1;
}

int RunStream() {
  StreamLoadOptions options;
  if (std::string bad = ServiceLoadFlags(options); !bad.empty()) return Usage(bad);
  options.followers = absl::GetFlag(FLAGS_followers);
  const absl::StatusOr<StreamLoadResult> result = RunStreamLoad(options);
  if (!result.ok()) return Failed(result.status());
  const StreamLoadResult& r = *result;
  if (absl::GetFlag(FLAGS_json)) {
    JsonObject json;
    json.Add("mode", "stream")
        .Add("addr", options.addr)
        .Add("concurrency", options.concurrency)
        .Add("followers", options.followers)
        .Add("value_size", static_cast<uint64_t>(options.value_size))
        .Add("rate", options.rate)
        .Add("seconds", absl::ToDoubleSeconds(r.elapsed))
        .Add("puts", r.puts)
        .Add("acknowledged", r.acknowledged)
        .Add("puts_per_second", PerSecond(r.acknowledged, r.elapsed))
        .Add("put_latency", LatencyJson(r.put_latency))
        .Add("received", r.received)
        .Add("gaps", r.gaps)
        .Add("complete", static_cast<uint64_t>(r.complete ? 1 : 0))
        .Add("lag_p50_us", static_cast<double>(absl::ToInt64Microseconds(r.lag_p50)))
        .Add("lag_p99_us", static_cast<double>(absl::ToInt64Microseconds(r.lag_p99)))
        .Add("near_entries", r.near_entries)
        .Add("near_bytes", r.near_bytes);
    Print(json.ToString() + "\n");
  } else {
    Print(absl::StrFormat(
        "stream %s: %d stores acknowledged of %d in %.1f s, %.0f/s, concurrency %d\n"
        "  put       %s\n  %d followers received %d (%d gaps%s); push lag p50 %s, p99 %s\n",
        options.addr, r.acknowledged, r.puts, absl::ToDoubleSeconds(r.elapsed),
        PerSecond(r.acknowledged, r.elapsed), options.concurrency, LatencyText(r.put_latency),
        options.followers, r.received, r.gaps, r.complete ? "" : ", not all arrived",
        absl::FormatDuration(r.lag_p50), absl::FormatDuration(r.lag_p99)));
  }
  return r.acknowledged > 0 ? 0 : 1;
}

int RunTls() {
  TlsLoadOptions options;
  const std::string targets = absl::GetFlag(FLAGS_target);
  for (absl::string_view each : absl::StrSplit(targets, ',')) {
    const absl::StatusOr<HostPort> target = SplitHostPort(each);
    if (each.empty() || !target.ok() || target->port == 0) {
      return Usage(absl::StrCat("--target=", targets, ": expected HOST:PORT[,HOST:PORT...]"));
    }
    if (options.port == 0) {
      options.host = target->host;
      options.port = target->port;
    } else {
      options.more_targets.emplace_back(target->host, target->port);
    }
  }
  options.concurrency = absl::GetFlag(FLAGS_concurrency);
  options.duration = absl::GetFlag(FLAGS_duration);
  options.timeout = absl::GetFlag(FLAGS_timeout);
  options.server_name = absl::GetFlag(FLAGS_server_name);
  options.pause = absl::GetFlag(FLAGS_pause);
  for (const std::string& chain : absl::GetFlag(FLAGS_chains)) {
    int number = 0;
    if (!absl::SimpleAtoi(chain, &number)) {
      return Usage(absl::StrCat("--chains: ", chain, " is not a number"));
    }
    options.chains.push_back(number);
  }
  options.progress = absl::GetFlag(FLAGS_progress);
  const std::string version = absl::GetFlag(FLAGS_tls);
  if (version == "1.2") {
    options.tls_version = TLS1_2_VERSION;
  } else if (version == "1.3") {
    options.tls_version = TLS1_3_VERSION;
  } else {
    return Usage(absl::StrCat("--tls=", version, ": expected 1.2 or 1.3"));
  }
  const std::string resume = absl::GetFlag(FLAGS_resume);
  if (resume != "newest" && resume != "none") {
    return Usage(absl::StrCat("--resume=", resume, ": expected newest or none"));
  }
  options.resume = resume == "newest";

  const absl::StatusOr<TlsLoadResult> result = RunTlsLoad(options);
  if (!result.ok()) return Failed(result.status());
  const TlsLoadResult& r = *result;
  const double resumed_pct = r.offered == 0 ? 0.0 : 100.0 * r.resumed / r.offered;
  if (absl::GetFlag(FLAGS_json)) {
    JsonObject json;
    json.Add("mode", "tls")
        .Add("target", absl::GetFlag(FLAGS_target))
        .Add("tls", version)
        .Add("resume", resume)
        .Add("concurrency", options.concurrency)
        .Add("pause_ms", absl::ToDoubleMilliseconds(options.pause))
        .Add("seconds", absl::ToDoubleSeconds(r.elapsed))
        .Add("handshakes", r.handshakes)
        .Add("handshakes_per_second", PerSecond(r.handshakes, r.elapsed))
        .Add("offered", r.offered)
        .Add("resumed", r.resumed)
        .Add("resumption_pct", resumed_pct)
        .Add("resumed_per_second", PerSecond(r.resumed, r.elapsed))
        .Add("failures", r.failures)
        .Add("first_error", r.first_error)
        .Add("latency", LatencyJson(r.latency))
        .Add("resumed_latency", LatencyJson(r.resumed_latency))
        .Add("full_latency", LatencyJson(r.full_latency))
        .Add("resumed_here", r.resumed_here)
        .Add("resumed_here_latency", LatencyJson(r.resumed_here_latency))
        .Add("resumed_elsewhere", r.resumed_elsewhere)
        .Add("resumed_elsewhere_latency", LatencyJson(r.resumed_elsewhere_latency));
    Print(json.ToString() + "\n");
  } else {
    Print(absl::StrFormat(
        "tls %s: %d handshakes in %.1f s, %.0f handshakes/s, TLS %s, concurrency %d\n"
        "  resumed %d of %d offered (%.1f%%), %.0f resumed/s, failures %d\n"
        "  handshake %s\n  resumed   %s\n  full      %s\n",
        absl::GetFlag(FLAGS_target), r.handshakes, absl::ToDoubleSeconds(r.elapsed),
        PerSecond(r.handshakes, r.elapsed), version, options.concurrency, r.resumed, r.offered,
        resumed_pct, PerSecond(r.resumed, r.elapsed), r.failures, LatencyText(r.latency),
        LatencyText(r.resumed_latency), LatencyText(r.full_latency)));
    if (!options.more_targets.empty()) {
      Print(absl::StrFormat("  resumed, a session the same server made (%d): %s\n"
                            "  resumed, a session another server made (%d): %s\n",
                            r.resumed_here, LatencyText(r.resumed_here_latency),
                            r.resumed_elsewhere, LatencyText(r.resumed_elsewhere_latency)));
    }
    if (!r.first_error.empty()) Print(absl::StrCat("  first error: ", r.first_error, "\n"));
  }
  return r.handshakes > 0 ? 0 : 1;
}

}  // namespace
}  // namespace tlscache::bench

int main(int argc, char** argv) {
  tlscache::SetUsage(tlscache::bench::kUsage);
  const std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  tlscache::DisableMutexDeadlockDetection();
  if (args.size() != 2) {
    return tlscache::bench::Usage("expected one mode, rpc, stream or tls (--help for usage)");
  }
  const std::string mode = args[1];
  if (mode == "rpc") return tlscache::bench::RunRpc();
  if (mode == "stream") return tlscache::bench::RunStream();
  if (mode == "tls") return tlscache::bench::RunTls();
  return tlscache::bench::Usage(absl::StrCat("unknown mode ", mode, ": expected rpc or tls"));
}
