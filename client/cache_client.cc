#include "client/cache_client.h"

#include <grpc/grpc.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/process_registry.h"
#include "client/session_follower.h"
#include "client/store_sender.h"
#include "common/log.h"
#include "common/secret_bytes.h"
#include "common/status_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tlscache/v1/session_cache.grpc.pb.h"

namespace tlscache::client {
namespace {

// The largest message accepted: a Follow response (the service sends at most 1 MiB of changes
// in one, server/sessions/follow_stream.h), with room to spare. Unary replies are far smaller (a
// session, a ticket key ring) and every field of them is checked where it is used.
constexpr int kMaxReplyBytes = 4 << 20;
// Keepalive pings on a connection with calls open, so that one that died silently (a replica
// host lost, a network cut without a reset) is noticed within about 15 s, Follow streams
// included. The service accepts pings this often (server/cache_server.cc).
constexpr int kKeepaliveMs = 10000;
constexpr int kKeepaliveTimeoutMs = 5000;
// How often the sender thread watches the Follow streams (SessionFollower::Watch).
constexpr absl::Duration kWatchInterval = absl::Milliseconds(250);
// How long an awaited store's acknowledgement may take before the wait is judged (see
// AwaitAck); a tenth of the default lookup timeout.
constexpr absl::Duration kUnjudgedWait = absl::Milliseconds(2);

std::shared_ptr<grpc::Channel> MakeChannel(const CacheTarget& target, const ChannelTls& tls) {
  grpc::ChannelArguments args;
  // A cache that comes back is used again within a fraction of a second. Each connection
  // attempt gets 2 s (gRPC's minimum connect timeout is this "min backoff"): a replica busy
  // accepting (a farm's workers all connecting after a rollout) answers late, not never.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 2000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Calls and streams go round robin over every replica the target names (a list, or
  // every address of a name), and a name is resolved again when a connection ends (at
  // most once a second), so replicas that come and go are followed. The TXT records of
  // gRPC service configs are not asked for: this is the whole config.
  args.SetServiceConfigJSON(R"({"loadBalancingConfig": [{"round_robin": {}}]})");
  args.SetInt(GRPC_ARG_SERVICE_CONFIG_DISABLE_RESOLUTION, 1);
  args.SetInt(GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS, 1000);
  args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, target.authority);
  // A lookup has a few milliseconds: no retry policy fits, and the breaker handles
  // outages. gRPC's transparent retries stay: a call a replica never saw (it had said it
  // was going away, GOAWAY) goes to another at once, so a draining replica costs nothing.
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 1);
  args.SetMaxReceiveMessageSize(kMaxReplyBytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // No bandwidth probes: a ping and its answer on each burst of reads, for messages of a
  // few hundred bytes (bench/notes.md, part 2). Windows then keep their initial 64 KiB:
  // 64 KiB of pushes per round trip, far above what a farm sends one process.
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  // Processes of one node start at different replicas of a list.
  return grpc::CreateCustomChannel(RotatedUri(target, static_cast<size_t>(getpid())),
                                   ChannelCredentials(tls), args);
}

// The node of a client with the near cache on: the one given, the one prepared before this
// process was forked, or one of its own; null when none can be made.
std::shared_ptr<Node> NodeOf(const ClientOptions& options) {
  if (options.near_cache_bytes == 0) return nullptr;
  if (options.node != nullptr) return options.node;
  if (std::shared_ptr<Node> prepared = Node::Prepared()) return prepared;
  absl::StatusOr<std::shared_ptr<Node>> node = Node::Create(options.near_cache_bytes);
  if (node.ok()) return *std::move(node);
  LogWarning("tlscache: no near cache (%s): lookups go to the service", node.status().message());
  return nullptr;
}

}  // namespace

// What one client owns in one process (client/process_registry.h): the channel and its
// breaker and connect allowance, the namespaces' Follow streams and ticket key rings, and the
// sender of unary stores (whose thread also warms the channel up and watches the streams).
class CacheClient::ProcessState final : public ProcessPart {
 public:
  explicit ProcessState(CacheClient& client)
      : connect_until_(absl::Now() + client.options_.connect_timeout),
        withdrawn_(client.withdrawn_),
        breaker_(client.options_.breaker),
        channel_(MakeChannel(client.target_, client.tls_)),
        stub_(v1::SessionCache::NewStub(channel_)),
        node_(NodeOf(client.options_)) {
    channel_->GetState(/*try_to_connect=*/true);  // connect before the first lookup needs it
    StoreSenderOptions sender;
    sender.queue_capacity = client.options_.queue_capacity;
    sender.max_in_flight = client.options_.max_in_flight;
    sender.start = [this](const StoreSender& self) { WarmUp(self); };
    sender.tick = [this](absl::Time now) { WatchFollowers(now); };
    sender.tick_interval = kWatchInterval;
    sender_ = std::make_unique<StoreSender>(stub_.get(), std::move(sender), &client.counters_);
  }

  ~ProcessState() override { Stop(); }

  // Ends every thread of this state (the followers', the sender's, the completion thread) and
  // joins them; what handshakes still call afterwards answers as with the cache down: lookups
  // still go out, stores are dropped and counted. Idempotent.
  void Stop() override {
    std::vector<TicketKeyFollower*> rings;
    {
      absl::MutexLock lock(&rings_mu_);
      rings_stopped_ = true;  // no ring is followed after this
      for (auto& [ns, follower] : rings_) rings.push_back(follower.get());
    }
    std::vector<SessionFollower*> sessions;
    {
      absl::MutexLock lock(&sessions_mu_);
      sessions_stopped_ = true;  // no stream starts after this
      for (auto& [ns, follower] : sessions_) sessions.push_back(follower.get());
    }
    for (TicketKeyFollower* follower : rings) follower->Stop();  // ends its watch, joins
    for (SessionFollower* follower : sessions) follower->Stop();
    sender_->Stop();
  }

  v1::SessionCache::Stub& stub() { return *stub_; }
  CircuitBreaker& breaker() { return breaker_; }
  StoreSender& sender() { return *sender_; }

  // The deadline of a call that may take `timeout`: later while this process's connection
  // has not answered yet and its connect allowance lasts.
  absl::Time Deadline(absl::Duration timeout) const {
    const absl::Time deadline = absl::Now() + timeout;
    if (ready_.load(std::memory_order_acquire)) return deadline;
    return std::max(deadline, connect_until_);
  }
  void MarkReady() { ready_.store(true, std::memory_order_release); }

  // The namespace's Follow stream and near cache, started on first use; null when the near
  // cache is off, or once stopped for a namespace not followed before.
  SessionFollower* Sessions(absl::string_view ns) {
    if (node_ == nullptr) return nullptr;
    {
      // On every lookup and store: a shared lock, apart from the sender's.
      absl::ReaderMutexLock lock(&sessions_mu_);
      auto it = sessions_.find(ns);
      if (it != sessions_.end()) return it->second.get();
    }
    absl::MutexLock lock(&sessions_mu_);
    auto it = sessions_.find(ns);
    if (it != sessions_.end()) return it->second.get();
    if (sessions_stopped_) return nullptr;
    std::string name(ns);
    auto follower = std::make_unique<SessionFollower>(
        channel_, name, node_,
        [this, name](v1::PutRequest put) {
          put.set_namespace_(name);
          sender_->Put(std::move(put), nullptr);
        },
        [this, name](v1::DeleteRequest removal) {
          removal.set_namespace_(name);
          sender_->Delete(std::move(removal));
        },
        [this, name](absl::string_view session_id, absl::string_view tls_session_id) {
          if (withdrawn_) withdrawn_(name, session_id, tls_session_id);
        });
    return sessions_.emplace(std::move(name), std::move(follower)).first->second.get();
  }

  // The namespace's ticket key ring as last received (followed from the first call); within
  // the connect allowance, a call finding none yet waits for it.
  std::shared_ptr<const TicketKeySnapshot> TicketKeys(absl::string_view ns) {
    TicketKeyFollower* follower = Rings(ns);
    if (follower == nullptr) return nullptr;
    std::shared_ptr<const TicketKeySnapshot> ring = follower->Current();
    if (ring != nullptr) return ring;
    // A new process's first handshakes wait, within its connect allowance, for the ring they
    // cannot issue a ticket without.
    const absl::Duration left = connect_until_ - absl::Now();
    return left > absl::ZeroDuration() ? follower->AwaitFirst(left) : nullptr;
  }
  void FollowRing(absl::string_view ns) { Rings(ns); }

  // This process's part of the client's stats: the breaker, the node's near cache (once:
  // every namespace shares it) and every stream's counters.
  void AddStats(ClientStats* stats) {
    stats->breaker = breaker_.state();
    if (node_ != nullptr) *stats += node_->cache().stats();
    absl::ReaderMutexLock lock(&sessions_mu_);
    for (const auto& [ns, follower] : sessions_) *stats += follower->stats();
  }

  bool Flush(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    std::vector<SessionFollower*> streams;
    {
      absl::ReaderMutexLock lock(&sessions_mu_);
      for (auto& [ns, follower] : sessions_) streams.push_back(follower.get());
    }
    for (SessionFollower* follower : streams) {
      if (!follower->Flush(deadline - absl::Now())) return false;
    }
    return sender_->Flush(deadline);
  }

 private:
  // Null once stopped, for a namespace not followed before.
  TicketKeyFollower* Rings(absl::string_view ns) {
    absl::MutexLock lock(&rings_mu_);
    auto it = rings_.find(ns);  // on every ticket: no allocation once following
    if (it != rings_.end()) return it->second.get();
    if (rings_stopped_) return nullptr;
    return rings_
        .emplace(std::string(ns), std::make_unique<TicketKeyFollower>(channel_, std::string(ns),
                                                                   ProcessFollowerName()))
        .first->second.get();
  }

  // Off the handshake path: waits for the connection and makes one call (a health check),
  // so that neither the first lookup nor the first store of this process pays for setting up
  // gRPC's connection.
  // Runs on `sender`'s thread, which may start before sender_ is set.
  void WarmUp(const StoreSender& sender) {
    const absl::Time give_up = absl::Now() + absl::Seconds(1);
    while (!channel_->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Milliseconds(50)))) {
      if (sender.stopping() || absl::Now() >= give_up) return;  // lookups fail fast meanwhile
    }
    auto health = grpc::health::v1::Health::NewStub(channel_);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(200)));
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    health->Check(&context, request, &response);
    if (channel_->GetState(false) == GRPC_CHANNEL_READY) MarkReady();
  }

  // The Follow streams' writers may be blocked in a write: their watch runs on the sender's
  // thread, which never is.
  void WatchFollowers(absl::Time now) {
    absl::ReaderMutexLock lock(&sessions_mu_);
    for (auto& [ns, follower] : sessions_) follower->Watch(now);
  }

  const absl::Time connect_until_;
  std::atomic<bool> ready_{false};  // the connection has answered a call
  const CacheClient::WithdrawnListener& withdrawn_;
  CircuitBreaker breaker_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::SessionCache::Stub> stub_;
  const std::shared_ptr<Node> node_;  // null: no near cache
  std::unique_ptr<StoreSender> sender_;

  absl::Mutex sessions_mu_;
  std::map<std::string, std::unique_ptr<SessionFollower>, std::less<>> sessions_
      ABSL_GUARDED_BY(sessions_mu_);
  bool sessions_stopped_ ABSL_GUARDED_BY(sessions_mu_) = false;
  absl::Mutex rings_mu_;
  std::map<std::string, std::unique_ptr<TicketKeyFollower>, std::less<>> rings_
      ABSL_GUARDED_BY(rings_mu_);
  bool rings_stopped_ ABSL_GUARDED_BY(rings_mu_) = false;
};

absl::StatusOr<std::shared_ptr<CacheClient>> CacheClient::Create(const ClientOptions& options) {
  absl::StatusOr<CacheTarget> target = ParseCacheTarget(options.addr);
  if (!target.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("addr: ", target.status().message()));
  }
  if (options.lookup_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("lookup timeout must be positive");
  }
  if (options.queue_capacity < 1 || options.max_in_flight < 1) {
    return absl::InvalidArgumentError("queue capacity and in-flight limit must be positive");
  }
  absl::StatusOr<ChannelTls> tls =
      ReadChannelTls({options.ca_file, options.cert_file, options.key_file});
  if (!tls.ok()) return tls.status();
  return std::shared_ptr<CacheClient>(
      new CacheClient(options, *std::move(target), *std::move(tls)));
}

CacheClient::CacheClient(const ClientOptions& options, CacheTarget target, ChannelTls tls)
    : options_(options), target_(std::move(target)), tls_(std::move(tls)) {}

CacheClient::~CacheClient() {
  ProcessPart* part = state_.load();
  // A part inherited through fork() belongs to the parent: its threads do not exist here.
  if (part != nullptr && part->pid() == getpid()) {
    ProcessRegistry::Leave(part);
    delete part;
  }
}

CacheClient::ProcessState* CacheClient::State() {
  return static_cast<ProcessState*>(
      ProcessRegistry::Join(state_, [this]() -> ProcessPart* { return new ProcessState(*this); }));
}

absl::StatusOr<SecretBytes> CacheClient::Get(absl::string_view ns, absl::string_view session_id,
                                             bool consume) {
  ProcessState* process = State();
  if (process == nullptr) {
    counters_.errors++;
    return ProcessRegistry::ForkedAfterUse();
  }
  ProcessState& state = *process;
  // A consuming lookup must consume in the service: a copy here would let a ticket resume
  // twice across the farm.
  SessionFollower* sessions = consume ? nullptr : state.Sessions(ns);
  if (sessions != nullptr) {
    if (std::optional<SecretBytes> near = sessions->Lookup(session_id)) {
      counters_.near_hits++;
      return *std::move(near);
    }
  }
  if (!state.breaker().Allow()) {
    counters_.skipped++;
    return absl::UnavailableError("circuit breaker open: cache not asked");
  }
  const uint64_t removal_mark = sessions != nullptr ? sessions->RemovalMark() : 0;
  v1::GetRequest request;
  request.set_namespace_(std::string(ns));
  request.set_session_id(std::string(session_id));
  request.set_consume(consume);
  v1::GetResponse response;
  grpc::ClientContext context;
  const absl::Time start = absl::Now();
  const std::optional<absl::Duration> waited = options_.run_queue_wait();
  context.set_deadline(absl::ToChronoTime(state.Deadline(options_.lookup_timeout)));
  const grpc::Status status = state.stub().Get(&context, request, &response);
  if (status.ok() || status.error_code() == grpc::StatusCode::NOT_FOUND) state.MarkReady();
  switch (status.error_code()) {
    case grpc::StatusCode::OK: {
      state.breaker().RecordSuccess();
      counters_.hits++;
      SecretBytes session(response.session());
      CleanseString(response.mutable_session());
      // Found once, looked up again soon: kept near (and covered by a check after a gap).
      if (sessions != nullptr) {
        sessions->Keep(session_id, session, absl::Seconds(response.ttl_remaining_seconds()),
                       removal_mark);
      }
      return session;
    }
    case grpc::StatusCode::NOT_FOUND:
      state.breaker().RecordSuccess();
      counters_.misses++;
      return absl::NotFoundError("no such session");
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      // Against the cache only if the cache made it late (see NodeWasBusy).
      if (NodeWasBusy(options_.run_queue_wait, waited, absl::Now() - start)) {
        state.breaker().RecordInconclusive();
        counters_.busy_timeouts++;
      } else {
        state.breaker().RecordFailure();
      }
      counters_.timeouts++;
      return FromGrpcStatus(status);
    default:
      state.breaker().RecordFailure();
      counters_.errors++;
      ReportError(status);
      return FromGrpcStatus(status);
  }
}

void CacheClient::ReportError(const grpc::Status& status) {
  // A refusal (a certificate the cache does not trust, a namespace it does not grant) repeats
  // on every handshake: say why once a minute, or an operator sees only full handshakes.
  if (!error_report_.Allow()) return;
  LogWarning("tlscache: the cache at %s answered %s (handshakes go on without it)", options_.addr,
             FromGrpcStatus(status).ToString());
}

bool CacheClient::Put(absl::string_view ns, absl::string_view session_id, SecretBytes session,
                      uint32_t ttl_seconds, bool await_ack) {
  ProcessState* process = State();
  if (process != nullptr) {
    if (SessionFollower* sessions = process->Sessions(ns)) {
      auto ack = await_ack ? std::make_shared<Acknowledgement>() : nullptr;
      if (sessions->Put(session_id, session, ttl_seconds, ack)) {
        // Not awaited while the breaker is open: a failing cache costs a handshake nothing.
        return ack != nullptr && process->breaker().Allow() && AwaitAck(*process, *ack);
      }
      // The stream is down: the unary path.
    }
  }
  v1::PutRequest put;
  put.set_namespace_(std::string(ns));
  put.set_session_id(std::string(session_id));
  put.set_session(session.data(), session.size());
  put.set_ttl_seconds(ttl_seconds);
  session.Clear();
  if (process == nullptr) {
    CleanseString(put.mutable_session());
    counters_.queue_drops++;
    return false;
  }
  // Not awaited while the breaker is open: a failing cache costs a handshake nothing.
  std::shared_ptr<Acknowledgement> ack;
  if (await_ack && process->breaker().Allow()) ack = std::make_shared<Acknowledgement>();
  process->sender().Put(std::move(put), ack);
  return ack != nullptr && AwaitAck(*process, *ack);
}

bool CacheClient::AwaitAck(ProcessState& state, Acknowledgement& ack) {
  const absl::Time deadline = state.Deadline(options_.lookup_timeout);
  // Most acknowledgements come within a fraction of a millisecond: only a longer wait reads
  // the thread's run-queue wait (a read from /proc), and judges by the rest of the wait.
  bool acknowledged = ack.Await(std::min(deadline, absl::Now() + kUnjudgedWait));
  const absl::Time start = absl::Now();
  std::optional<absl::Duration> waited;
  if (!acknowledged && start < deadline) {
    waited = options_.run_queue_wait();
    acknowledged = ack.Await(deadline);
  }
  if (acknowledged) {
    state.MarkReady();
    state.breaker().RecordSuccess();
    return true;
  }
  counters_.ack_timeouts++;
  if (NodeWasBusy(options_.run_queue_wait, waited, absl::Now() - start)) {  // see Get
    state.breaker().RecordInconclusive();
    counters_.busy_timeouts++;
  } else {
    state.breaker().RecordFailure();
  }
  return false;
}

void CacheClient::Delete(absl::string_view ns, absl::string_view session_id,
                         absl::string_view tls_session_id, absl::Duration hold) {
  v1::DeleteRequest removal;
  removal.set_namespace_(std::string(ns));
  removal.set_session_id(std::string(session_id));
  if (!tls_session_id.empty()) removal.set_tls_session_id(std::string(tls_session_id));
  removal.set_hold_seconds(static_cast<uint32_t>(
      std::clamp<int64_t>(absl::ToInt64Seconds(absl::Ceil(hold, absl::Seconds(1))), 0, UINT32_MAX)));
  ProcessState* process = State();
  if (process == nullptr) {
    counters_.queue_drops++;
    return;
  }
  if (SessionFollower* sessions = process->Sessions(ns)) {
    if (sessions->Delete(removal)) return;
  }
  process->sender().Delete(std::move(removal));
}

void CacheClient::Prepare(absl::string_view ns, bool follow_tickets) {
  ProcessState* state = State();
  if (state == nullptr) return;
  state->Sessions(ns);
  if (follow_tickets) state->FollowRing(ns);
}

uint64_t CacheClient::WithdrawalMark(absl::string_view ns) {
  ProcessState* state = State();
  SessionFollower* sessions = state == nullptr ? nullptr : state->Sessions(ns);
  return sessions == nullptr ? 0 : sessions->RemovalMark();
}

bool CacheClient::WithdrawnSince(absl::string_view ns, absl::string_view session_id,
                                 uint64_t mark) {
  ProcessState* state = State();
  SessionFollower* sessions = state == nullptr ? nullptr : state->Sessions(ns);
  return sessions != nullptr && sessions->WithdrawnSince(session_id, mark);
}

std::shared_ptr<const TicketKeySnapshot> CacheClient::TicketKeys(absl::string_view ns) {
  ProcessState* state = State();
  return state == nullptr ? nullptr : state->TicketKeys(ns);
}

bool CacheClient::Flush(absl::Duration timeout) {
  ProcessState* state = State();
  return state == nullptr || state->Flush(timeout);
}

ClientStats CacheClient::stats() const {
  ClientStats stats = counters_.Read();
  ProcessPart* part = state_.load(std::memory_order_acquire);
  if (part != nullptr && part->pid() == getpid()) static_cast<ProcessState*>(part)->AddStats(&stats);
  return stats;
}

}  // namespace tlscache::client
