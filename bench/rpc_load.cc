#include "bench/rpc_load.h"

#include <sys/prctl.h>

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/support/channel_arguments.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "tlscache/v1/session_cache.grpc.pb.h"
#include "bench/report.h"

namespace tlscache::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxValueSize = 1 << 20;
constexpr int kMaxConcurrency = 4096;
constexpr int kMaxConnections = 64;

// 32 bytes, the size of a real session ID, distinct per key.
std::string SessionId(uint64_t key) { return absl::StrFormat("tlscache-bench-%017d", key); }

// The first bytes of a key's value are the key, so that a hit can be checked.
void StampValue(uint64_t key, std::string* value) {
  std::memcpy(value->data(), &key, std::min(sizeof(key), value->size()));
}

bool ValueIsFor(uint64_t key, const std::string& value, size_t value_size) {
  return value.size() == value_size &&
         std::memcmp(value.data(), &key, std::min(sizeof(key), value.size())) == 0;
}

class RpcLoad {
 public:
  explicit RpcLoad(const RpcLoadOptions& options) : options_(options) {}

  absl::StatusOr<RpcLoadResult> Run();

 private:
  enum class Phase { kPrefill, kMeasure };

  struct Slot {
    v1::SessionCache::Stub* stub = nullptr;
    std::minstd_rand random;
    std::optional<grpc::ClientContext> context;
    Clock::time_point started;
    uint64_t key = 0;
    v1::GetRequest get;
    v1::GetResponse get_reply;
    v1::PutRequest put;
    v1::PutResponse put_reply;
    RpcLoadResult result;  // this slot's share
  };

  // Runs every slot until the phase has nothing left to do; returns the slots' results merged.
  RpcLoadResult RunPhase(Phase phase);
  // With a rate: sends calls on schedule from free slots until the end; returns the late ones.
  uint64_t Pace();
  // A call completed on `slot`: the next one, or (paced) the slot is free again.
  void Next(Slot* slot);
  void Issue(Slot* slot, Clock::time_point due);
  void IssueGet(Slot* slot, uint64_t key);
  void IssuePut(Slot* slot, uint64_t key);
  // A fresh context with the call's deadline, for `key`; the request is the caller's to fill.
  grpc::ClientContext* StartCall(Slot* slot, uint64_t key);
  void Failed(Slot* slot, const grpc::Status& status);
  void SlotDone();
  std::string ProgressLine(absl::Duration elapsed);

  const RpcLoadOptions options_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<v1::SessionCache::Stub>> stubs_;
  std::vector<std::unique_ptr<Slot>> slots_;

  Phase phase_ = Phase::kPrefill;  // written only while no slot runs
  Clock::time_point end_;
  std::atomic<uint64_t> next_prefill_key_{0};
  std::atomic<uint64_t> completed_{0};
  std::atomic<uint64_t> failed_{0};
  uint64_t last_completed_ = 0;  // the progress thread's

  absl::Mutex mu_;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool paced_ ABSL_GUARDED_BY(mu_) = false;
  bool pace_over_ ABSL_GUARDED_BY(mu_) = false;  // paced: no call is due any more
  std::vector<Slot*> free_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<RpcLoadResult> RpcLoad::Run() {
  const RpcLoadOptions& o = options_;
  if (absl::Status s = CheckWithin("concurrency", o.concurrency, 1, kMaxConcurrency); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckWithin("connections", o.connections, 1, kMaxConnections); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckWithin("value size", static_cast<int64_t>(o.value_size), 1,
                                   kMaxValueSize);
      !s.ok()) {
    return s;
  }
  if (o.get_weight < 0 || o.put_weight < 0 || o.get_weight + o.put_weight == 0) {
    return absl::InvalidArgumentError("the mix needs a positive weight for Get or Put");
  }
  if (o.keys < 1) return absl::InvalidArgumentError("keys must be positive");
  if (!(o.rate >= 0 && o.rate <= 1e7)) {
    return absl::InvalidArgumentError(absl::StrCat("rate ", o.rate, " is not within 0..1e7"));
  }
  if (o.duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("duration must be positive");
  }

  for (int i = 0; i < o.connections; ++i) {
    grpc::ChannelArguments args;
    // A channel of its own subchannel pool has a connection of its own.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channels_.push_back(grpc::CreateCustomChannel(o.addr, o.credentials, args));
    if (!channels_.back()->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(5)))) {
      return absl::UnavailableError(absl::StrCat("cannot connect to ", o.addr, " within 5 s"));
    }
    stubs_.push_back(v1::SessionCache::NewStub(channels_.back()));
  }
  const std::string value(o.value_size, 'v');
  for (int i = 0; i < o.concurrency; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->stub = stubs_[i % stubs_.size()].get();
    slot->random.seed(static_cast<uint32_t>(i + 1));
    slot->get.set_namespace_(o.ns);
    slot->put.set_namespace_(o.ns);
    slot->put.set_session(value);
    slots_.push_back(std::move(slot));
  }

  RpcLoadResult prefill;
  if (o.get_weight > 0) {
    prefill = RunPhase(Phase::kPrefill);
    if (prefill.errors > 0) {
      return absl::UnavailableError(absl::StrCat("prefill: ", prefill.errors, " of ",
                                                 prefill.puts, " Puts failed, the first with ",
                                                 prefill.first_error));
    }
  }
  const Clock::time_point start = Clock::now();
  end_ = start + absl::ToChronoNanoseconds(o.duration);
  completed_ = 0;
  failed_ = 0;
  RpcLoadResult result;
  {
    std::optional<Progress> progress;
    if (o.progress) progress.emplace([this](absl::Duration d) { return ProgressLine(d); });
    result = RunPhase(Phase::kMeasure);
  }
  result.elapsed = absl::FromChrono(Clock::now() - start);
  result.prefilled = prefill.puts;
  return result;
}

RpcLoadResult RpcLoad::RunPhase(Phase phase) {
  phase_ = phase;
  const bool paced = phase == Phase::kMeasure && options_.rate > 0;
  {
    absl::MutexLock lock(&mu_);
    running_ = static_cast<int>(slots_.size());
    paced_ = paced;
    pace_over_ = false;
  }
  for (auto& slot : slots_) slot->result = RpcLoadResult();
  uint64_t late = 0;
  if (paced) {
    late = Pace();
  } else {
    for (auto& slot : slots_) Issue(slot.get(), Clock::now());
  }
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* running) { return *running == 0; }, &running_));
  }
  RpcLoadResult total;
  total.late = late;
  for (auto& slot : slots_) total.Merge(slot->result);
  return total;
}

uint64_t RpcLoad::Pace() {
  {
    absl::MutexLock lock(&mu_);
    for (auto& slot : slots_) free_.push_back(slot.get());
  }
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(1.0 / options_.rate));
  // Wake on time: the default 50 us of timer slack would add to every paced call's latency.
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  uint64_t late = 0;
  for (Clock::time_point due = Clock::now(); due < end_; due += interval) {
    std::this_thread::sleep_until(due);
    Slot* slot = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (free_.empty()) {
        ++late;
        mu_.Await(absl::Condition(
            +[](std::vector<Slot*>* free) { return !free->empty(); }, &free_));
      }
      slot = free_.back();
      free_.pop_back();
    }
    Issue(slot, due);
  }
  absl::MutexLock lock(&mu_);
  running_ -= static_cast<int>(free_.size());  // the rest finish as their calls complete
  free_.clear();
  pace_over_ = true;
  return late;
}

void RpcLoad::Next(Slot* slot) {
  completed_.fetch_add(1, std::memory_order_relaxed);
  {
    absl::MutexLock lock(&mu_);
    if (paced_) {
      if (pace_over_) {
        --running_;
      } else {
        free_.push_back(slot);
      }
      return;
    }
  }
  Issue(slot, Clock::now());
}

void RpcLoad::Issue(Slot* slot, Clock::time_point due) {
  slot->started = due;
  if (phase_ == Phase::kPrefill) {
    const uint64_t key = next_prefill_key_.fetch_add(1, std::memory_order_relaxed);
    if (key >= static_cast<uint64_t>(options_.keys)) return SlotDone();
    return IssuePut(slot, key);
  }
  if (due >= end_) return SlotDone();
  const uint64_t key = slot->random() % static_cast<uint64_t>(options_.keys);
  const bool get = static_cast<int>(slot->random() % (options_.get_weight + options_.put_weight)) <
                   options_.get_weight;
  return get ? IssueGet(slot, key) : IssuePut(slot, key);
}

grpc::ClientContext* RpcLoad::StartCall(Slot* slot, uint64_t key) {
  slot->key = key;
  slot->context.emplace();
  slot->context->set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
  return &*slot->context;
}

void RpcLoad::IssueGet(Slot* slot, uint64_t key) {
  grpc::ClientContext* context = StartCall(slot, key);
  slot->get.set_session_id(SessionId(key));
  slot->stub->async()->Get(
      context, &slot->get, &slot->get_reply, [this, slot](grpc::Status status) {
        const absl::Duration latency = absl::FromChrono(Clock::now() - slot->started);
        RpcLoadResult& r = slot->result;
        ++r.gets;
        r.latency.Record(latency);
        r.get_latency.Record(latency);
        if (status.ok()) {
          ++r.hits;
          if (!ValueIsFor(slot->key, slot->get_reply.session(), options_.value_size)) ++r.wrong;
        } else if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
          ++r.misses;
        } else {
          Failed(slot, status);
        }
        Next(slot);
      });
}

void RpcLoad::IssuePut(Slot* slot, uint64_t key) {
  grpc::ClientContext* context = StartCall(slot, key);
  slot->put.set_session_id(SessionId(key));
  StampValue(key, slot->put.mutable_session());
  slot->stub->async()->Put(
      context, &slot->put, &slot->put_reply, [this, slot](grpc::Status status) {
        const absl::Duration latency = absl::FromChrono(Clock::now() - slot->started);
        RpcLoadResult& r = slot->result;
        ++r.puts;
        r.latency.Record(latency);
        r.put_latency.Record(latency);
        if (!status.ok()) Failed(slot, status);
        Next(slot);
      });
}

void RpcLoad::Failed(Slot* slot, const grpc::Status& status) {
  RpcLoadResult& r = slot->result;
  ++r.errors;
  const std::string code =
      absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()));
  ++r.errors_by_code[code];
  if (r.first_error.empty()) r.first_error = absl::StrCat(code, ": ", status.error_message());
  failed_.fetch_add(1, std::memory_order_relaxed);
}

void RpcLoad::SlotDone() {
  absl::MutexLock lock(&mu_);
  --running_;
}

std::string RpcLoad::ProgressLine(absl::Duration elapsed) {
  const uint64_t completed = completed_.load(std::memory_order_relaxed);
  const uint64_t last_second = completed - last_completed_;
  last_completed_ = completed;
  return absl::StrFormat("rpc %s: %3.0fs  %d calls/s  %d calls  %d errors", options_.addr,
                         absl::ToDoubleSeconds(elapsed), last_second, completed,
                         failed_.load(std::memory_order_relaxed));
}

}  // namespace

void RpcLoadResult::Merge(const RpcLoadResult& other) {
  gets += other.gets;
  puts += other.puts;
  hits += other.hits;
  misses += other.misses;
  errors += other.errors;
  wrong += other.wrong;
  latency.Merge(other.latency);
  get_latency.Merge(other.get_latency);
  put_latency.Merge(other.put_latency);
  for (const auto& [code, count] : other.errors_by_code) errors_by_code[code] += count;
  if (first_error.empty()) first_error = other.first_error;
}

absl::StatusOr<RpcLoadResult> RunRpcLoad(const RpcLoadOptions& options) {
  return RpcLoad(options).Run();
}

}  // namespace tlscache::bench
