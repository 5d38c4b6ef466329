#include "client/ticket_key_reporter.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/threads.h"
#include "common/validation.h"
#include "tlscache/v1/ticket_keys.grpc.pb.h"

namespace tlscache::client {
namespace {

// When the service does not say how long a report counts.
constexpr absl::Duration kDefaultLease = absl::Seconds(30);
constexpr absl::Duration kCallTimeout = absl::Seconds(2);
constexpr absl::Duration kRetryPause = absl::Seconds(1);

// Initialized when the library loads (a static initializer), before main().
const std::string* const program_name = new std::string(program_invocation_short_name);

}  // namespace

const std::string& ProgramName() { return *program_name; }

std::string HostFollowerName(absl::string_view what) {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
    std::snprintf(host, sizeof(host), "unknown-host");
  }
  std::string name = absl::StrCat(host, "/", what);
  for (char& c : name) {
    if (!IsFollowerNameChar(c)) c = '_';
  }
  if (name.size() > kMaxFollowerBytes) name.erase(0, name.size() - kMaxFollowerBytes);
  return name;
}

std::string ProcessFollowerName() {
  return HostFollowerName(absl::StrCat(ProgramName(), "[", getpid(), "]"));
}

TicketKeyReporter::TicketKeyReporter(std::shared_ptr<grpc::Channel> channel, std::string ns,
                                     std::string follower)
    : ns_(std::move(ns)), follower_(std::move(follower)), stub_(v1::TicketKeys::NewStub(channel)) {
  thread_ = std::thread([this] { Run(); });
}

TicketKeyReporter::~TicketKeyReporter() { Stop(/*leave=*/false); }

void TicketKeyReporter::Hold(uint64_t version) {
  absl::MutexLock lock(&mu_);
  if (version <= held_) return;
  held_ = version;
  wake_.Signal();
}

uint64_t TicketKeyReporter::reported() const {
  absl::MutexLock lock(&mu_);
  return reported_;
}

void TicketKeyReporter::Stop(bool leave) {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    wake_.Signal();
  }
  absl::MutexLock lock(&join_mu_);
  if (!thread_.joinable()) return;
  thread_.join();
  if (leave && reported() != 0) Report(0, /*leaving=*/true, absl::Milliseconds(500));
}

absl::Duration TicketKeyReporter::Report(uint64_t version, bool leaving, absl::Duration timeout) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  v1::TicketKeysReport request;
  request.set_namespace_(ns_);
  request.set_follower(follower_);
  request.set_version(version);
  request.set_leaving(leaving);
  v1::TicketKeysReportResponse response;
  const grpc::Status status = stub_->ReportTicketKeys(&context, request, &response);
  if (!status.ok()) return absl::ZeroDuration();
  return response.lease_ms() > 0 ? absl::Milliseconds(response.lease_ms()) : kDefaultLease;
}

void TicketKeyReporter::Run() {
  NameThisThread("tlscache-report");
  absl::Time due = absl::InfiniteFuture();       // the next renewal; none before a first ring
  absl::Time not_before = absl::InfinitePast();  // after a failed call, a pause
  bool failing = false;
  absl::MutexLock lock(&mu_);
  while (true) {
    // Report when the held version changed, and a third of a lease after the last report.
    while (!stopping_) {
      const absl::Time at = std::max(held_ != reported_ ? absl::InfinitePast() : due, not_before);
      if (absl::Now() >= at) break;
      wake_.WaitWithDeadline(&mu_, at);
    }
    if (stopping_) return;
    const uint64_t version = held_;
    mu_.Unlock();
    const absl::Duration lease = Report(version, /*leaving=*/false, kCallTimeout);
    mu_.Lock();
    if (lease > absl::ZeroDuration()) {
      reported_ = version;
      due = absl::Now() + lease / 3;
      not_before = absl::InfinitePast();
      if (failing) LogInfo("ticket keys: reporting the ring held to the service again");
      failing = false;
    } else {
      if (!failing) LogWarning("ticket keys: cannot report the ring held to the service; retrying");
      failing = true;
      due = absl::Now();
      not_before = absl::Now() + kRetryPause;
    }
  }
}

}  // namespace tlscache::client
