// TicketKeyReporter: tells the service which version of a namespace's ticket key ring this
// follower holds (TicketKeys.ReportTicketKeys), at once when it changes and again within every
// lease the service grants, so that a rotation makes a key ACTIVE only once this follower can
// decrypt with it (server/tickets/rotation_barrier.h). A background thread makes the calls,
// each with a deadline, retried after a pause when the service does not answer; nothing the
// reporter does blocks its caller.
//
// Thread-safety: all methods may be called from any thread.
#ifndef TLSCACHE_CLIENT_TICKET_KEY_REPORTER_H_
#define TLSCACHE_CLIENT_TICKET_KEY_REPORTER_H_

#include <grpcpp/channel.h>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tlscache/v1/ticket_keys.grpc.pb.h"

namespace tlscache::client {

// The program's name as it started: read when the library loads, before a server such as
// nginx writes its process titles ("nginx: worker process") over its arguments.
const std::string& ProgramName();

// "HOST/`what`", made a valid follower name (common/validation.h): other characters become
// '_', and a name too long keeps its end.
std::string HostFollowerName(absl::string_view what);

// "HOST/PROGRAM[PID]": a process's name as a follower.
std::string ProcessFollowerName();

class TicketKeyReporter {
 public:
  TicketKeyReporter(std::shared_ptr<grpc::Channel> channel, std::string ns, std::string follower);
  ~TicketKeyReporter();  // Stop(/*leave=*/false)

  // This follower now holds `version` (every key of it in place to decrypt).
  void Hold(uint64_t version);

  // Ends the reports; with `leave`, first tells the service (within half a second) that this
  // follower stops following, so that no rotation waits for its lease to end. Idempotent.
  void Stop(bool leave);

  // The version last acknowledged by the service; 0 before.
  uint64_t reported() const;

 private:
  void Run();
  // One call; the lease granted, or zero when the call failed.
  absl::Duration Report(uint64_t version, bool leaving, absl::Duration timeout);

  const std::string ns_;
  const std::string follower_;
  const std::unique_ptr<v1::TicketKeys::Stub> stub_;
  mutable absl::Mutex mu_;
  uint64_t held_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t reported_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::CondVar wake_;
  absl::Mutex join_mu_;
  std::thread thread_;
};

}  // namespace tlscache::client

#endif  // TLSCACHE_CLIENT_TICKET_KEY_REPORTER_H_
