#include "client/cache_client.h"

#include <fcntl.h>
#include <grpc/grpc.h>
#include <grpcpp/completion_queue.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/session_follower.h"
#include "common/files.h"
#include "common/log.h"
#include "common/secret_bytes.h"
#include "common/status_util.h"
#include "common/threads.h"
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
// A unary Delete that failed is sent again after this (doubling up to the most), until its
// hold has passed.
constexpr absl::Duration kDeleteRetryMin = absl::Milliseconds(100);
constexpr absl::Duration kDeleteRetryMax = absl::Seconds(5);
// How often the sender thread watches the Follow streams (SessionFollower::Watch).
constexpr absl::Duration kWatchInterval = absl::Milliseconds(250);
// Bound on a background Put or Delete; they are off the handshake path, so this only keeps
// the in-flight window moving when the cache is slow.
constexpr absl::Duration kStoreTimeout = absl::Seconds(1);
// How long an awaited store's acknowledgement may take before the wait is judged (see
// AwaitAck); a tenth of the default lookup timeout.
constexpr absl::Duration kUnjudgedWait = absl::Milliseconds(2);
// How long the unary stores' completion thread stays once none is in flight.
constexpr absl::Duration kCompleterIdle = absl::Seconds(1);

// This thread's /proc/thread-self/schedstat, opened on its first lookup, closed at its exit.
struct SchedStat {
  SchedStat() : fd(open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC)) {}
  ~SchedStat() {
    if (fd >= 0) close(fd);
  }
  const int fd;
};

}  // namespace

std::optional<absl::Duration> ThreadRunQueueWait() {
  thread_local SchedStat stat;
  if (stat.fd < 0) return std::nullopt;
  char buf[96];
  const ssize_t n = pread(stat.fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return std::nullopt;
  buf[n] = '\0';
  unsigned long long on_cpu = 0, waiting = 0;
  if (std::sscanf(buf, "%llu %llu", &on_cpu, &waiting) != 2) return std::nullopt;
  return absl::Nanoseconds(waiting);
}

namespace {

// Whether a call that took `elapsed` ran out of time because this node's CPU is saturated
// rather than because the cache was slow: the calling thread spent a tenth of the call or
// more runnable but waiting for a core. On an idle node that wait is microseconds; a lookup
// that times out there is the cache's doing (a black-holed or slow cache), and counts. See
// docs/benchmarks.md, part 4.
bool NodeWasBusy(const RunQueueWaitFn& run_queue_wait, std::optional<absl::Duration> wait_before,
                 absl::Duration elapsed) {
  if (!wait_before) return false;
  std::optional<absl::Duration> wait_after = run_queue_wait();
  return wait_after && (*wait_after - *wait_before) * 10 >= elapsed;
}

// Guards the creation of every client's per-process state. Held across fork() by the
// handlers below, so that a child never inherits it locked by a thread it does not have.
std::mutex& StateMutex() {
  static std::mutex* const mu = [] {
    auto* m = new std::mutex();
    pthread_atfork([] { StateMutex().lock(); }, [] { StateMutex().unlock(); },
                   [] { StateMutex().unlock(); });
    return m;
  }();
  return *mu;
}

// The process in which this library first created gRPC state (0: none yet). gRPC cannot be
// used in a process forked from one that used it (its threads and pollers stay behind in the
// parent), so such a child runs without the cache rather than risk a hang in a handshake.
std::atomic<pid_t> grpc_user{0};

absl::Status ForkedAfterUse() {
  return absl::UnavailableError(absl::StrCat(
      "the cache was used in process ", grpc_user.load(),
      " before it forked this one; a forked process can only use the cache if its parent "
      "never did"));
}

}  // namespace

struct CacheClient::QueuedCall {
  ~QueuedCall() {
    CleanseString(put.mutable_session());
    if (ack != nullptr) ack->Complete(answered_ok);
  }

  bool is_put = false;
  bool answered_ok = false;
  std::shared_ptr<Acknowledgement> ack;  // null unless awaited
  // A deletion: sent again while it fails and `give_up` has not passed, `backoff` later.
  absl::Time give_up = absl::InfinitePast();
  absl::Duration backoff = kDeleteRetryMin;
  grpc::ClientContext context;
  grpc::Status status;
  v1::PutRequest put;
  v1::PutResponse put_response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::PutResponse>> put_call;
  v1::DeleteRequest del;
  v1::DeleteResponse del_response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::DeleteResponse>> del_call;
};

// What one process owns: the channel, the breaker and the background sender. Never shared
// across fork(): a child builds its own and leaves the parent's untouched.
class CacheClient::ProcessState {
 public:
  explicit ProcessState(CacheClient& client)
      : pid_(getpid()),
        connect_until_(absl::Now() + client.options_.connect_timeout),
        counters_(client.counters_),
        withdrawn_(client.withdrawn_),
        options_(client.options_),
        breaker_(client.options_.breaker) {
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
    args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, client.target_.authority);
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
    channel_ = grpc::CreateCustomChannel(RotatedUri(client.target_, static_cast<size_t>(pid_)),
                                         ChannelCredentials(client.tls_), args);
    stub_ = v1::SessionCache::NewStub(channel_);
    channel_->GetState(/*try_to_connect=*/true);  // connect before the first lookup needs it
    if (options_.near_cache_bytes > 0) {
      node_ = options_.node != nullptr ? options_.node : Node::Prepared();
      if (node_ == nullptr) {
        absl::StatusOr<std::shared_ptr<Node>> node = Node::Create(options_.near_cache_bytes);
        if (node.ok()) {
          node_ = *std::move(node);
        } else {
          LogWarning("tlscache: no near cache (%s): lookups go to the service",
                     node.status().message());
        }
      }
    }
    sender_ = std::thread([this] { SendLoop(); });
  }

  ~ProcessState() {
    Stop();
    void* tag = nullptr;
    bool ok = false;
    while (cq_.Next(&tag, &ok)) {
    }
  }

  // Ends every thread of this state (the followers', the sender, the completion thread) and
  // joins them; what handshakes still call afterwards answers as with the cache down: lookups
  // still go out, stores are dropped and counted. Idempotent. At exit, the library's threads
  // stop here, while the server's own threads may still be in a handshake.
  void Stop() {
    stopped_.store(true, std::memory_order_release);  // no follower starts after this
    std::vector<TicketKeyFollower*> followers;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [ns, follower] : followers_) followers.push_back(follower.get());
    }
    std::vector<SessionFollower*> session_followers;
    {
      absl::ReaderMutexLock lock(&sessions_mu_);
      for (auto& [ns, follower] : session_followers_) session_followers.push_back(follower.get());
    }
    for (TicketKeyFollower* follower : followers) follower->Stop();  // ends its watch, joins
    for (SessionFollower* follower : session_followers) follower->Stop();
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_) return;  // stopped before
    stopping_ = true;
    counters_.queue_drops += queue_.size() + retries_.size();
    queue_.clear();
    retries_.clear();
    cv_.notify_all();
    lock.unlock();
    sender_.join();
    lock.lock();
    // Calls in flight end by their deadline; their completions touch this object.
    idle_cv_.wait(lock, [this] { return in_flight_ == 0; });
    lock.unlock();
    cq_.Shutdown();  // an idle completion thread sees it at once
    if (completer_.joinable()) completer_.join();
  }

  pid_t pid() const { return pid_; }
  v1::SessionCache::Stub& stub() { return *stub_; }
  CircuitBreaker& breaker() { return breaker_; }

  // The deadline of a call that may take `timeout`: later while this process's connection
  // has not answered yet and its connect allowance lasts.
  absl::Time Deadline(absl::Duration timeout) const {
    const absl::Time deadline = absl::Now() + timeout;
    if (ready_.load(std::memory_order_acquire)) return deadline;
    return std::max(deadline, connect_until_);
  }
  void MarkReady() { ready_.store(true, std::memory_order_release); }

  // The namespace's Follow stream and near cache, started on first use; null when the near
  // cache is off.
  SessionFollower* Sessions(absl::string_view ns) {
    if (node_ == nullptr) return nullptr;
    {
      // On every lookup and store: a shared lock, apart from the sender's.
      absl::ReaderMutexLock lock(&sessions_mu_);
      auto it = session_followers_.find(ns);
      if (it != session_followers_.end()) return it->second.get();
    }
    absl::MutexLock lock(&sessions_mu_);
    if (stopped_.load(std::memory_order_acquire)) return nullptr;
    auto it = session_followers_.find(ns);
    if (it == session_followers_.end()) {
      std::string name(ns);
      auto follower = std::make_unique<SessionFollower>(
          channel_, name, node_,
          [this, name](v1::PutRequest put) {
            auto call = std::make_unique<QueuedCall>();
            call->is_put = true;
            call->put = std::move(put);
            call->put.set_namespace_(name);
            Enqueue(std::move(call));
          },
          [this, name](v1::DeleteRequest removal) {
            removal.set_namespace_(name);
            EnqueueDelete(std::move(removal));
          },
          [this, name](absl::string_view session_id, absl::string_view tls_session_id) {
            if (withdrawn_) withdrawn_(name, session_id, tls_session_id);
          });
      it = session_followers_.emplace(std::move(name), std::move(follower)).first;
    }
    return it->second.get();
  }

  // Every follower's counters, added up.
  void AddFollowerStats(ClientStats* stats) {
    if (node_ != nullptr) {  // the node's, once: every namespace shares it
      const NearCacheStats near = node_->cache().stats();
      stats->near_entries += near.entries;
      stats->near_bytes += near.bytes;
      stats->near_evictions += near.evictions;
      stats->near_repairs += near.repairs;
    }
    absl::ReaderMutexLock lock(&sessions_mu_);
    for (const auto& [ns, follower] : session_followers_) {
      const FollowerStats f = follower->stats();
      stats->leading += f.leading ? 1 : 0;
      stats->pushed += f.received;
      stats->gaps += f.gaps;
      stats->withdrawn += f.withdrawn;
      stats->streams += f.streams;
      stats->streams_up += f.up ? 1 : 0;
      stats->resent += f.resent;
      stats->batches += f.batches;
      stats->stores += f.stored;
      stats->store_failures += f.store_failures;
      // The slowest namespace's: one figure for the process.
      stats->push_lag_p50 = std::max(stats->push_lag_p50, f.lag_p50);
      stats->push_lag_p99 = std::max(stats->push_lag_p99, f.lag_p99);
    }
  }

  // Starts the call at once when the in-flight window has room (starting an asynchronous
  // call does not wait for the network), so that a session is in the cache before its client
  // can come back; otherwise queues it for the sender, or drops it when the queue is full.
  void Enqueue(std::unique_ptr<QueuedCall> call) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      // Deletions get twice the room: a session a node dropped must not stay in the farm.
      const size_t room = call->is_put ? options_.queue_capacity : 2 * options_.queue_capacity;
      if (stopping_ || queue_.size() >= room) {
        counters_.queue_drops++;
        return;
      }
      if (!queue_.empty() || in_flight_ >= options_.max_in_flight) {
        queue_.push_back(std::move(call));
        cv_.notify_one();
        return;
      }
      StartingCall();
    }
    Start(call.release());
  }

  // A deletion, sent (and sent again while it fails) until acknowledged or its hold passed.
  void EnqueueDelete(v1::DeleteRequest removal) {
    auto call = std::make_unique<QueuedCall>();
    call->give_up = absl::Now() + std::max(absl::Seconds(removal.hold_seconds()), kStoreTimeout);
    call->del = std::move(removal);
    Enqueue(std::move(call));
  }

  // Null once stopped, for a namespace not followed before.
  TicketKeyFollower* Follow(absl::string_view ns) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = followers_.find(ns);  // on every ticket: no allocation once following
    if (it == followers_.end()) {
      if (stopped_.load(std::memory_order_acquire)) return nullptr;
      it = followers_
               .emplace(std::string(ns),
                        std::make_unique<TicketKeyFollower>(channel_, std::string(ns)))
               .first;
    }
    return it->second.get();
  }

  std::shared_ptr<const TicketKeySnapshot> TicketKeys(absl::string_view ns) {
    TicketKeyFollower* follower = Follow(ns);
    if (follower == nullptr) return nullptr;
    std::shared_ptr<const TicketKeySnapshot> ring = follower->Current();
    if (ring != nullptr) return ring;
    // A new process's first handshakes wait, within its connect allowance, for the ring they
    // cannot issue a ticket without.
    const absl::Duration left = connect_until_ - absl::Now();
    return left > absl::ZeroDuration() ? follower->AwaitFirst(left) : nullptr;
  }

  bool Flush(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    std::vector<SessionFollower*> streams;
    {
      absl::ReaderMutexLock lock(&sessions_mu_);
      for (auto& [ns, follower] : session_followers_) streams.push_back(follower.get());
    }
    for (SessionFollower* follower : streams) {
      if (!follower->Flush(deadline - absl::Now())) return false;
    }
    std::unique_lock<std::mutex> lock(mu_);
    return idle_cv_.wait_for(lock, absl::ToChronoNanoseconds(deadline - absl::Now()), [this] {
      return queue_.empty() && in_flight_ == 0 && retries_.empty();
    });
  }

 private:
  // Sends what Enqueue had to queue, as the in-flight window allows.
  // Also sends the deletions due again, and watches the Follow streams (their writers may be
  // blocked in a write: the watch must not depend on them).
  void SendLoop() {
    NameThisThread("tlscache-send");
    WarmUp();
    std::unique_lock<std::mutex> lock(mu_);
    absl::Time next_watch = absl::Now();
    while (true) {
      absl::Time wake = next_watch;
      if (!retries_.empty()) wake = std::min(wake, retries_.begin()->first);
      cv_.wait_for(lock, absl::ToChronoNanoseconds(std::max(absl::ZeroDuration(), wake - absl::Now())),
                   [this] {
                     return stopping_ || (!queue_.empty() && in_flight_ < options_.max_in_flight);
                   });
      if (stopping_) return;
      const absl::Time now = absl::Now();
      while (!retries_.empty() && retries_.begin()->first <= now) {
        queue_.push_back(std::move(retries_.begin()->second));
        retries_.erase(retries_.begin());
      }
      if (now >= next_watch) {
        next_watch = now + kWatchInterval;
        lock.unlock();
        WatchFollowers(now);
        lock.lock();
        if (stopping_) return;
      }
      if (queue_.empty() || in_flight_ >= options_.max_in_flight) continue;
      QueuedCall* call = queue_.front().release();
      queue_.pop_front();
      StartingCall();
      lock.unlock();
      Start(call);
      lock.lock();
    }
  }

  void WatchFollowers(absl::Time now) {
    absl::ReaderMutexLock lock(&sessions_mu_);
    for (auto& [ns, follower] : session_followers_) follower->Watch(now);
  }

  // Off the handshake path: waits for the connection and makes one call (a health check),
  // so that neither the first lookup nor the first store of this process pays for setting up
  // gRPC's connection.
  void WarmUp() {
    const absl::Time give_up = absl::Now() + absl::Seconds(1);
    while (!channel_->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Milliseconds(50)))) {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || absl::Now() >= give_up) return;  // lookups will fail fast meanwhile
    }
    auto health = grpc::health::v1::Health::NewStub(channel_);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(200)));
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    health->Check(&context, request, &response);
    if (channel_->GetState(false) == GRPC_CHANNEL_READY) MarkReady();
  }

  // One more call in flight, and a thread to complete it. The completion thread runs only
  // while unary stores are in flight (the stream down, or the near cache off): a thread
  // waiting in gRPC polls the channel, and one always there would take the stream's
  // messages from its reader, a thread hand-off and a wake-up each. Caller holds mu_.
  void StartingCall() {
    ++in_flight_;
    if (completing_) return;
    if (completer_.joinable()) completer_.join();  // the last one has left its loop
    completing_ = true;
    completer_ = std::thread([this] { CompleteLoop(); });
  }

  // Started on the calling thread: starting an asynchronous call does not wait for the
  // network, so a store is on its way before the handshake goes on.
  void Start(QueuedCall* call) {
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + kStoreTimeout));
    if (call->is_put) {
      call->put_call = stub_->AsyncPut(&call->context, call->put, &cq_);
      call->put_call->Finish(&call->put_response, &call->status, call);
    } else {
      call->del_call = stub_->AsyncDelete(&call->context, call->del, &cq_);
      call->del_call->Finish(&call->del_response, &call->status, call);
    }
  }

  void CompleteLoop() {
    NameThisThread("tlscache-done");
    while (true) {
      void* tag = nullptr;
      bool ok = false;
      switch (cq_.AsyncNext(&tag, &ok, absl::ToChronoTime(absl::Now() + kCompleterIdle))) {
        case grpc::CompletionQueue::SHUTDOWN:
          return;
        case grpc::CompletionQueue::GOT_EVENT:
          Finished(static_cast<QueuedCall*>(tag));
          break;
        case grpc::CompletionQueue::TIMEOUT: {
          std::lock_guard<std::mutex> lock(mu_);
          if (in_flight_ == 0) {
            completing_ = false;
            return;
          }
          break;
        }
      }
    }
  }

  void Finished(QueuedCall* call) {
    (call->status.ok() ? counters_.stores : counters_.store_failures)++;
    call->answered_ok = call->status.ok();
    // A deletion that failed for a reason that may pass goes again (a fresh call: a context
    // serves one call), unless it no longer needs to.
    std::unique_ptr<QueuedCall> again;
    const grpc::StatusCode code = call->status.error_code();
    if (!call->is_put && !call->status.ok() && code != grpc::StatusCode::INVALID_ARGUMENT &&
        code != grpc::StatusCode::PERMISSION_DENIED && absl::Now() < call->give_up) {
      again = std::make_unique<QueuedCall>();
      again->del = std::move(call->del);
      again->give_up = call->give_up;
      again->backoff = std::min(call->backoff * 2, kDeleteRetryMax);
    }
    const absl::Duration backoff = call->backoff;
    delete call;
    std::lock_guard<std::mutex> lock(mu_);
    --in_flight_;
    if (again != nullptr && !stopping_) retries_.emplace(absl::Now() + backoff, std::move(again));
    cv_.notify_one();
    if (queue_.empty() && in_flight_ == 0 && retries_.empty()) idle_cv_.notify_all();
  }

  const pid_t pid_;
  const absl::Time connect_until_;
  std::atomic<bool> ready_{false};  // the connection has answered a call
  Counters& counters_;
  const CacheClient::WithdrawnListener& withdrawn_;
  const ClientOptions& options_;
  CircuitBreaker breaker_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::SessionCache::Stub> stub_;
  std::shared_ptr<Node> node_;  // null: no near cache

  std::atomic<bool> stopped_{false};  // Stop() began
  std::mutex mu_;
  std::condition_variable cv_;       // work to send, or room in flight, or stopping
  std::condition_variable idle_cv_;  // nothing queued or in flight
  std::deque<std::unique_ptr<QueuedCall>> queue_;
  std::multimap<absl::Time, std::unique_ptr<QueuedCall>> retries_;  // deletions due again
  int in_flight_ = 0;
  bool stopping_ = false;
  std::thread sender_;
  grpc::CompletionQueue cq_;  // the unary stores'
  bool completing_ = false;   // completer_ is in its loop; guarded by mu_
  std::thread completer_;
  std::map<std::string, std::unique_ptr<TicketKeyFollower>, std::less<>>
      followers_;  // guarded by mu_
  absl::Mutex sessions_mu_;
  std::map<std::string, std::unique_ptr<SessionFollower>, std::less<>> session_followers_
      ABSL_GUARDED_BY(sessions_mu_);
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

// Every state of this process image; the handler below stops those of the exiting process.
std::vector<CacheClient::ProcessState*>& CacheClient::LiveStates() {
  static auto* states = new std::vector<ProcessState*>();
  return *states;
}

void CacheClient::StopThreadsAtExit() {
  std::lock_guard<std::mutex> lock(StateMutex());
  for (ProcessState* state : LiveStates()) {
    if (state->pid() == getpid()) state->Stop();  // a parent's, inherited, has no threads here
  }
}

CacheClient::~CacheClient() {
  ProcessState* state = state_.load();
  // A state inherited through fork() belongs to the parent: its threads do not exist here.
  if (state != nullptr && state->pid() == getpid()) {
    {
      std::lock_guard<std::mutex> lock(StateMutex());
      std::vector<ProcessState*>& states = LiveStates();
      states.erase(std::remove(states.begin(), states.end(), state), states.end());
    }
    delete state;
  }
}

CacheClient::ProcessState* CacheClient::State() {
  const pid_t pid = getpid();
  ProcessState* state = state_.load(std::memory_order_acquire);
  if (state != nullptr && state->pid() == pid) return state;
  std::lock_guard<std::mutex> lock(StateMutex());
  state = state_.load(std::memory_order_acquire);
  if (state != nullptr && state->pid() == pid) return state;
  const pid_t user = grpc_user.load();
  if (user != 0 && user != pid) {
    static std::atomic<pid_t> warned{0};
    if (warned.exchange(pid) != pid) LogWarning("tlscache: %s", ForkedAfterUse().message());
    return nullptr;
  }
  // The first use in this process. A state inherited from a parent is deliberately leaked:
  // destroying it would join threads this process does not have.
  grpc_user.store(pid);
  state = new ProcessState(*this);
  state_.store(state, std::memory_order_release);
  LiveStates().push_back(state);
  // After gRPC's own start-up, so that at exit this runs before gRPC's teardown. Once per
  // process image: a forked child inherits the registration, and its pid picks its states.
  static const bool registered = std::atexit(StopThreadsAtExit) == 0;
  (void)registered;
  return state;
}

absl::StatusOr<SecretBytes> CacheClient::Get(absl::string_view ns, absl::string_view session_id,
                                             bool consume) {
  ProcessState* process = State();
  if (process == nullptr) {
    counters_.errors++;
    return ForkedAfterUse();
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
  auto call = std::make_unique<QueuedCall>();
  call->is_put = true;
  call->put.set_namespace_(std::string(ns));
  call->put.set_session_id(std::string(session_id));
  call->put.set_session(session.data(), session.size());
  call->put.set_ttl_seconds(ttl_seconds);
  session.Clear();
  ProcessState* state = State();
  if (state == nullptr) {
    counters_.queue_drops++;
    return false;
  }
  // Not awaited while the breaker is open: a failing cache costs a handshake nothing.
  std::shared_ptr<Acknowledgement> ack;
  if (await_ack && state->breaker().Allow()) {
    ack = std::make_shared<Acknowledgement>();
    call->ack = ack;
  }
  state->Enqueue(std::move(call));
  return ack != nullptr && AwaitAck(*state, *ack);
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
  process->EnqueueDelete(std::move(removal));
}

void CacheClient::Enqueue(std::unique_ptr<QueuedCall> call) {
  ProcessState* state = State();
  if (state == nullptr) {
    counters_.queue_drops++;
    return;
  }
  state->Enqueue(std::move(call));
}

void CacheClient::Prepare(absl::string_view ns, bool follow_tickets) {
  ProcessState* state = State();
  if (state == nullptr) return;
  state->Sessions(ns);
  if (follow_tickets) state->Follow(ns);
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
  ClientStats stats;
  stats.hits = counters_.hits;
  stats.misses = counters_.misses;
  stats.errors = counters_.errors;
  stats.timeouts = counters_.timeouts;
  stats.skipped = counters_.skipped;
  stats.stores = counters_.stores;
  stats.store_failures = counters_.store_failures;
  stats.queue_drops = counters_.queue_drops;
  stats.ack_timeouts = counters_.ack_timeouts;
  stats.near_hits = counters_.near_hits;
  stats.busy_timeouts = counters_.busy_timeouts;
  ProcessState* state = state_.load(std::memory_order_acquire);
  if (state != nullptr && state->pid() == getpid()) {
    stats.breaker = state->breaker().state();
    state->AddFollowerStats(&stats);
  }
  return stats;
}

}  // namespace tlscache::client
