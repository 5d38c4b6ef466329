// CacheClient: the TLS-server side of tlscache, a client of tlscache.v1.SessionCache built
// for the handshake path.
//
//   - Get blocks for at most `lookup_timeout` (default 20 ms) and is skipped while the circuit
//     breaker is open: a slow or dead cache costs a handshake a few milliseconds at worst.
//   - A process connects on its first use (or Prepare). Until that connection has answered
//     once, and for at most `connect_timeout` after the first use, a Get (and a first
//     TicketKeys, and a Put's acknowledgement) may wait until the connection is up instead of
//     its lookup timeout: a new process's first handshakes wait once, boundedly, rather
//     than miss. A cache that refuses connections ends that wait at once.
//   - Put and Delete never block: each starts as an asynchronous call at once while fewer
//     than `max_in_flight` are unanswered, and otherwise waits in a bounded queue that a
//     background thread drains. When the queue is full the call is dropped and counted.
//     A Put may be awaited instead: it then returns once the cache acknowledged it, or after
//     the lookup timeout (skipped while the breaker is open; a late or failed
//     acknowledgement counts against the cache like a failed lookup).
//   - Nothing gRPC exists until the first call in a process: a server may create the client
//     in a master process and use it only in the workers it forks, each of which then builds
//     its own channel and thread. gRPC cannot follow a fork() once used, so in a process
//     forked from one that did call the cache, every call is a fast miss (and a warning).
//
//   - With a near cache (the default, `near_cache_bytes`), each namespace the process uses
//     gets a Follow stream and a share of its node's near cache (client/session_follower.h,
//     client/node.h): a Get asks the near cache first (never when consuming: a consuming Get
//     must consume in the service), a session the service returns is kept there, and while
//     the stream is up Puts and Deletes go up it, coalesced, instead of as unary calls. One
//     process of the node receives what the farm pushes, for all of them.
//   - A Delete is sent until acknowledged (a unary one failing is sent again with a back-off
//     for as long as its hold lasts): the farm must not keep a session a node dropped.
//   - The breaker counts against the cache what the cache is responsible for: a Get that ran
//     out of time (or an awaited Put acknowledged late) while the calling thread spent a
//     tenth of the wait or more runnable but without a CPU is this node's own saturation, and
//     leaves the breaker as it was. On an idle node a timeout (a slow or black-holed cache)
//     counts, and enough of them open the breaker.
//
// Thread-safety: all methods are thread-safe.
#ifndef TLSCACHE_CLIENT_CACHE_CLIENT_H_
#define TLSCACHE_CLIENT_CACHE_CLIENT_H_

#include <grpcpp/support/status.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/acknowledgement.h"
#include "client/cache_target.h"
#include "client/circuit_breaker.h"
#include "client/client_stats.h"
#include "client/node_load.h"
#include "client/process_registry.h"
#include "client/session_follower.h"
#include "client/ticket_key_follower.h"
#include "common/channel_tls.h"
#include "common/log.h"
#include "common/secret_bytes.h"

namespace tlscache::client {

struct ClientOptions {
  // The replicas: HOST:PORT, a list of IP:PORT, or a dns: target (client/cache_target.h).
  std::string addr;
  // 20 ms: a node whose CPU is busy waits for a core as well as for the cache, and at 5 ms
  // such waits alone made lookups time out (docs/benchmarks.md, part 4).
  absl::Duration lookup_timeout = absl::Milliseconds(20);
  // The most a process's first calls wait, once, for its connection (see above).
  absl::Duration connect_timeout = absl::Milliseconds(500);
  // TLS to the cache: with ca_file the channel is TLS; cert_file + key_file add a client
  // certificate (mTLS). The files are read by Create().
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // The near cache of each namespace this process uses, and the Follow stream that fills it
  // and carries the process's stores (client/session_follower.h); 0: neither, every lookup
  // and store is a unary call.
  size_t near_cache_bytes = size_t{16} << 20;
  // The node this process belongs to (client/node.h: its near cache and followers shared with
  // the other processes of a pre-fork server); null: the one Node::Prepare made before this
  // process was forked, or else one of the client's own, of `near_cache_bytes`, made in the
  // process that first uses it.
  std::shared_ptr<Node> node;
  size_t queue_capacity = 4096;
  int max_in_flight = 64;
  BreakerOptions breaker;
  // Read before and after a call that may time out (see the breaker above); tests replace it.
  RunQueueWaitFn run_queue_wait = ThreadRunQueueWait;
};

class CacheClient {
 public:
  // Checks the options and reads the TLS files; creates nothing gRPC.
  static absl::StatusOr<std::shared_ptr<CacheClient>> Create(const ClientOptions& options);
  ~CacheClient();

  CacheClient(const CacheClient&) = delete;
  CacheClient& operator=(const CacheClient&) = delete;

  // The session, NotFound on a miss, Unavailable when skipped (breaker open), or the error
  // of the call (DeadlineExceeded, Unavailable, ...). Every error means: no session.
  absl::StatusOr<SecretBytes> Get(absl::string_view ns, absl::string_view session_id, bool consume);
  // Sent at once or queued; `session` is wiped after it was sent. With `await_ack`, waits for
  // the cache's acknowledgement (see above) and says whether it came; otherwise never blocks
  // and returns false.
  bool Put(absl::string_view ns, absl::string_view session_id, SecretBytes session,
           uint32_t ttl_seconds, bool await_ack = false);
  // Sent until the cache acknowledges it (as its lifetime `hold` lasts at most): a deletion is
  // never dropped, whatever fails on the way. `tls_session_id`: the TLS session ID when
  // `session_id` is a key derived from it (DeleteRequest.tls_session_id).
  void Delete(absl::string_view ns, absl::string_view session_id,
              absl::string_view tls_session_id = {}, absl::Duration hold = absl::ZeroDuration());

  // Connects this process now, off the handshake path: starts the Follow stream of `ns`
  // (unless the near cache is off) and with `follow_tickets` follows its ticket key ring.
  // Never blocks. A pre-fork server calls it in each worker (never in the master: see above).
  void Prepare(absl::string_view ns, bool follow_tickets);

  // The namespace's farm ticket key ring as this process last received it; null until the
  // first one arrives. The first call in a process starts following the ring; while the
  // process is within its connect allowance, a call finding no ring yet waits for it until
  // the allowance ends. Later calls never block.
  std::shared_ptr<const TicketKeySnapshot> TicketKeys(absl::string_view ns);

  // Called on a background thread with each session the farm withdrew (deleted or consumed
  // through another process, or found dead by a check after a gap): the near cache has
  // dropped it; the listener drops the process's own copies. `tls_session_id`: as the
  // deleting process gave it (empty when it did not). An empty `key`: withdrawals of `ns`
  // were lost for this process: the listener drops every copy of `ns` it holds. Set it
  // before the first call.
  using WithdrawnListener = std::function<void(absl::string_view ns, absl::string_view key,
                                               absl::string_view tls_session_id)>;
  void SetWithdrawnListener(WithdrawnListener listener) { withdrawn_ = std::move(listener); }

  // Where this process stands in the withdrawals of `ns` it has heard of: taken before a
  // lookup, it lets WithdrawnSince tell whether the session found was withdrawn while the
  // caller put it to use (after the lookup returned, before the caller kept it anywhere).
  uint64_t WithdrawalMark(absl::string_view ns);
  // Whether `session_id` of `ns` was withdrawn here after `mark` (true too when that can no
  // longer be told); false where the process follows no withdrawals (near cache off).
  bool WithdrawnSince(absl::string_view ns, absl::string_view session_id, uint64_t mark);

  // Waits until everything queued so far was answered; false after `timeout`.
  bool Flush(absl::Duration timeout);

  ClientStats stats() const;
  const ClientOptions& options() const { return options_; }

 private:
  class ProcessState;

  // Waits for an awaited Put's acknowledgement, within the lookup deadline, and tells the
  // breaker how it went.
  bool AwaitAck(ProcessState& state, Acknowledgement& ack);

  // Logs, at most once a minute, why the cache failed a call.
  void ReportError(const grpc::Status& status);
  CacheClient(const ClientOptions& options, CacheTarget target, ChannelTls tls);
  // This process's state, built on its first use; null in a process forked from one that
  // used the cache (client/process_registry.h).
  ProcessState* State();

  const ClientOptions options_;
  const CacheTarget target_;
  const ChannelTls tls_;
  LogLimiter error_report_{absl::Minutes(1)};
  ClientCounters counters_;
  WithdrawnListener withdrawn_;
  std::atomic<ProcessPart*> state_{nullptr};
};

}  // namespace tlscache::client

#endif  // TLSCACHE_CLIENT_CACHE_CLIENT_H_
