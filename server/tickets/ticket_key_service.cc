#include "server/tickets/ticket_key_service.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/secret_bytes.h"
#include "common/status_util.h"
#include "common/validation.h"
#include "common/cleanup_reactor.h"
#include "server/store/store_sync.h"

namespace tlscache::server {
namespace {

// The pub/sub channel of ring notices: a message is the name of a namespace whose ring changed.
// Not a valid namespace, so it never meets a namespace's session changes.
constexpr char kRingNotices[] = "@rings";

// A forced rotation waits for its PENDING key only if its answer still reaches the caller in time.
constexpr absl::Duration kAnswerMargin = absl::Milliseconds(250);

absl::StatusOr<SecretBytes> Serialize(const v1::TicketKeySet& ring) {
  SecretBytes bytes(ring.ByteSizeLong());
  if (!ring.SerializeToArray(bytes.mutable_data(), static_cast<int>(bytes.size()))) {
    return absl::InternalError("cannot serialize a ticket key ring");
  }
  return bytes;
}

absl::StatusOr<v1::TicketKeySet> Parse(absl::string_view ns, const StoredRing& stored) {
  absl::StatusOr<v1::TicketKeySet> ring = ParseStoredRing(stored.ring.view(), stored.version);
  if (!ring.ok()) {
    return absl::DataLossError(
        absl::StrCat("the ticket key ring of namespace ", ns, ": ", ring.status().message()));
  }
  return ring;
}

}  // namespace

// One WatchTicketKeys stream: sends the newest ring it was given, one write at a time.
class TicketKeyService::Watch final : public grpc::ServerWriteReactor<v1::TicketKeySet> {
 public:
  Watch(TicketKeyService* service, std::string identity)
      : service_(service), identity_(std::move(identity)) {}

  const std::string& identity() const { return identity_; }

  // Queues `ring` unless the stream already has it or a newer one.
  void Push(const v1::TicketKeySet& ring) {
    absl::MutexLock lock(&mu_);
    if (finished_ || ring.version() <= queued_version_) return;
    WipeRing(&pending_);
    pending_ = ring;
    queued_version_ = ring.version();
    has_pending_ = true;
    WriteNextLocked();
  }

  void End(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    WipeRing(&sent_);
    if (!ok) {
      if (!finished_) {
        finished_ = true;
        Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "watch stream broke"));
      }
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() override { End(grpc::Status::CANCELLED); }

  void OnDone() override {
    service_->Forget(this);
    WipeRing(&pending_);
    WipeRing(&sent_);
    delete this;
  }

 private:
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || !has_pending_ || finished_) return;
    sent_ = std::move(pending_);
    pending_.Clear();
    has_pending_ = false;
    writing_ = true;
    StartWrite(&sent_);
  }

  TicketKeyService* const service_;
  const std::string identity_;  // the caller's, for ReauthorizeWatches
  absl::Mutex mu_;
  v1::TicketKeySet pending_ ABSL_GUARDED_BY(mu_);
  v1::TicketKeySet sent_ ABSL_GUARDED_BY(mu_);  // owned by gRPC while a write is out
  uint64_t queued_version_ ABSL_GUARDED_BY(mu_) = 0;
  bool has_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

TicketKeyService::TicketKeyService(Store* store, const TicketKeyOptions& options)
    : store_(store), options_(options), barrier_(options.barrier) {
  notices_ = store_->SubscribeNotices(kRingNotices, [this](absl::string_view ns) {
    absl::MutexLock lock(&mu_);
    auto it = kept_.find(std::string(ns));
    if (it == kept_.end()) return;
    it->second.recheck = true;
    wake_.Signal();
  });
  loop_ = std::thread([this] { Loop(); });
}

TicketKeyService::~TicketKeyService() {
  notices_.reset();  // no notice after this returns
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    wake_.Signal();
  }
  loop_.join();
  absl::MutexLock lock(&mu_);
  for (Rotation& rotation : rotations_) {
    std::move(rotation.done)(absl::UnavailableError("the server is shutting down"));
  }
  rotations_.clear();
}

void TicketKeyService::Loop() {
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    absl::Duration wait = options_.check_interval;
    for (const Rotation& rotation : rotations_) {
      wait = std::min(wait, rotation.not_before - options_.clock->Now());
    }
    if (wait > absl::ZeroDuration()) wake_.WaitWithTimeout(&mu_, wait);
    if (stop_) break;
    const absl::Time now = options_.clock->Now();
    const int64_t now_ms = absl::ToUnixMillis(now);
    std::vector<Rotation> ready;
    for (auto it = rotations_.begin(); it != rotations_.end();) {
      if (it->not_before <= now) {
        ready.push_back(std::move(*it));
        it = rotations_.erase(it);
      } else {
        ++it;
      }
    }
    std::vector<std::string> recheck, resync;
    for (auto& [ns, kept] : kept_) {
      if (kept.recheck || now_ms >= kept.next_rotation_unix_ms) {
        kept.recheck = false;
        recheck.push_back(ns);
      } else if (!kept.reading && now >= kept.next_read) {
        kept.reading = true;
        kept.next_read = now + options_.resync_interval;
        resync.push_back(ns);
      }
    }
    // Store calls without the lock: watches, notices and requests go on meanwhile.
    mu_.Unlock();
    for (Rotation& rotation : ready) ForceRotation(std::move(rotation));
    for (const std::string& ns : recheck) {
      absl::StatusOr<v1::TicketKeySet> ring = Refresh(ns, /*force=*/false, nullptr);
      if (ring.ok()) WipeRing(&*ring);
    }
    for (const std::string& ns : resync) Resync(ns);
    mu_.Lock();
  }
}

bool TicketKeyService::KeepLocked(const std::string& ns) {
  const absl::Time now = options_.clock->Now();
  if (auto it = kept_.find(ns); it != kept_.end()) {
    it->second.last_used = now;
    return true;
  }
  if (options_.authz != nullptr && !options_.authz->Grants(ns)) return false;
  if (kept_.size() >= options_.max_namespaces) {
    auto idlest = kept_.end();
    for (auto it = kept_.begin(); it != kept_.end(); ++it) {
      if (it->second.watchers == 0 &&
          (idlest == kept_.end() || it->second.last_used < idlest->second.last_used)) {
        idlest = it;
      }
    }
    if (idlest == kept_.end()) {
      if (not_kept_report_.Allow()) {
        LogWarning(
            "ticket keys: %d namespaces are watched; namespace %s is served but its ring "
            "is not kept (raise --max_ticket_namespaces)",
            kept_.size(), ns);
      }
      return false;
    }
    barrier_.Forget(idlest->first);
    kept_.erase(idlest);
  }
  Kept& kept = kept_[ns];
  kept.last_used = now;
  kept.next_read = now + options_.resync_interval;
  return true;
}

size_t TicketKeyService::kept_namespaces() const {
  absl::MutexLock lock(&mu_);
  return kept_.size();
}

void TicketKeyService::FetchRing(const std::string& ns, RingDone served) {
  {
    absl::MutexLock lock(&mu_);
    KeepLocked(ns);
  }
  // Whatever ring is served, the rotation thread and the watchers hear of it.
  RingDone done = [this, ns,
                   served = std::move(served)](absl::StatusOr<v1::TicketKeySet> ring) mutable {
    if (ring.ok()) {
      Publish(ns, *ring);
    } else {
      // The store did not answer: read it again soon, for the namespace's watchers.
      absl::MutexLock lock(&mu_);
      if (auto kept = kept_.find(ns); kept != kept_.end()) {
        kept->second.next_read =
            std::min(kept->second.next_read, options_.clock->Now() + options_.check_interval);
      }
    }
    std::move(served)(std::move(ring));
  };
  store_->GetRing(ns, absl::Now() + options_.store_timeout,
                  [this, ns, done = std::move(done)](absl::StatusOr<StoredRing> stored) mutable {
                    if (absl::IsNotFound(stored.status())) {
                      return CreateRing(ns, 0, std::move(done));
                    }
                    if (!stored.ok()) return std::move(done)(stored.status());
                    absl::StatusOr<v1::TicketKeySet> ring = Parse(ns, *stored);
                    if (ring.ok()) return std::move(done)(std::move(ring));
                    LogError("%s: replacing it with a new ring", ring.status().message());
                    CreateRing(ns, stored->version, std::move(done));
                  });
}

void TicketKeyService::CreateRing(const std::string& ns, uint64_t replaces, RingDone done) {
  absl::StatusOr<v1::TicketKeySet> ring = NewRing(options_.clock->Now(), options_.policy);
  if (!ring.ok()) return std::move(done)(ring.status());
  ring->set_version(replaces + 1);
  absl::StatusOr<SecretBytes> bytes = Serialize(*ring);
  if (!bytes.ok()) return std::move(done)(bytes.status());
  // Of replicas creating the namespace's first ring at once, one swap lands; the others read
  // the ring that did.
  const uint64_t version = ring->version();  // read before the ring moves into the callback
  store_->SwapRing(ns, replaces, version, bytes->view(), absl::Now() + options_.store_timeout,
                   [this, ns, ring = *std::move(ring),
                    done = std::move(done)](absl::StatusOr<bool> swapped) mutable {
                     if (swapped.ok() && *swapped) {
                       LogInfo("ticket keys: namespace %s has a new key ring", ns);
                       if (ring.version() > 1) Announce(ns);  // it replaced one
                       return std::move(done)(std::move(ring));
                     }
                     WipeRing(&ring);
                     if (!swapped.ok()) return std::move(done)(swapped.status());
                     FetchRing(ns, std::move(done));
                   });
}

void TicketKeyService::Announce(const std::string& ns) {
  store_->PublishNotice(kRingNotices, ns, absl::Now() + options_.store_timeout,
                        [](absl::Status) {});  // best effort: the re-reads catch up
}

void TicketKeyService::Resync(const std::string& ns) {
  store_->GetRing(
      ns, absl::Now() + options_.store_timeout, [this, ns](absl::StatusOr<StoredRing> stored) {
        absl::StatusOr<v1::TicketKeySet> ring =
            stored.ok() ? Parse(ns, *stored) : absl::StatusOr<v1::TicketKeySet>(stored.status());
        bool changed = false;
        {
          absl::MutexLock lock(&mu_);
          auto it = kept_.find(ns);
          if (it == kept_.end()) {
            if (ring.ok()) WipeRing(&*ring);
            return;
          }
          it->second.reading = false;
          // Unreadable: the rotation thread replaces it (Refresh).
          if (!ring.ok()) {
            if (!absl::IsNotFound(ring.status()) && stored.ok()) {
              it->second.recheck = true;
              wake_.Signal();
            }
            return;
          }
          changed = ring->version() != it->second.served.version;
        }
        if (changed) Publish(ns, *ring);
        const uint64_t version = ring->version();
        WipeRing(&*ring);
        // What the followers hold, for the metrics between rotations.
        store_->ListFollowers(
            ns, absl::Now() + options_.store_timeout,
            [this, ns, version](absl::StatusOr<std::vector<FollowerReport>> reports) {
              if (reports.ok()) barrier_.Observe(ns, *reports, version, options_.clock->Now());
            });
      });
}

absl::StatusOr<v1::TicketKeySet> TicketKeyService::Refresh(const std::string& ns, bool force,
                                                           absl::Time* not_before) {
  // Two tries: a forced rotation that loses its swap to another replica's rotation retries on
  // the ring that won (an operator asked for one more rotation, not for none).
  for (int attempt = 0; attempt < 2; ++attempt) {
    absl::StatusOr<StoredRing> stored = GetRingSync(*store_, ns, options_.store_timeout);
    if (!stored.ok()) return stored.status();  // not created yet, or the store is down
    absl::StatusOr<v1::TicketKeySet> ring = Parse(ns, *stored);
    if (!ring.ok()) {
      // FetchRing replaces an unreadable ring; serve what it settles on.
      absl::Notification fetched;
      absl::StatusOr<v1::TicketKeySet> replaced;
      FetchRing(ns, [&](absl::StatusOr<v1::TicketKeySet> r) {
        replaced = std::move(r);
        fetched.Notify();
      });
      fetched.WaitForNotification();
      if (replaced.ok()) Publish(ns, *replaced);
      return replaced;
    }
    const absl::Time now = options_.clock->Now();
    if (!force && !RotationDue(*ring, now)) {
      Publish(ns, *ring);
      return ring;
    }
    const absl::Time pending_ready =
        absl::FromUnixMillis(ring->pending_since_unix_ms()) + options_.min_distribution;
    if (force && pending_ready > now) {
      Publish(ns, *ring);
      WipeRing(&*ring);
      if (not_before != nullptr) *not_before = pending_ready;
      return absl::FailedPreconditionError(
          absl::StrCat("ticket keys of namespace ", ns, ": the PENDING key was published ",
                       absl::FormatDuration(now - (pending_ready - options_.min_distribution)),
                       " ago and nodes may not have it yet; it can become ACTIVE in ",
                       absl::FormatDuration(pending_ready - now), " (--ticket_min_distribution)"));
    }
    absl::StatusOr<BarrierVerdict> verdict = Judge(ns, *ring, now);
    if (!verdict.ok()) {
      Publish(ns, *ring);
      WipeRing(&*ring);
      if (not_before != nullptr) *not_before = now + options_.check_interval;
      return verdict.status();
    }
    absl::StatusOr<v1::TicketKeySet> next = Rotate(*ring, now, options_.policy);
    if (!next.ok()) {
      barrier_.Passed(ns, /*landed=*/false);
      WipeRing(&*ring);
      return next.status();
    }
    absl::StatusOr<SecretBytes> bytes = Serialize(*next);
    absl::StatusOr<bool> swapped = bytes.ok()
                                       ? SwapRingSync(*store_, ns, ring->version(), next->version(),
                                                      bytes->view(), options_.store_timeout)
                                       : absl::StatusOr<bool>(bytes.status());
    WipeRing(&*ring);
    barrier_.Passed(ns, swapped.ok() && *swapped);
    if (swapped.ok() && *swapped) {
      ForgetLapsed(ns, *verdict);
      LogInfo("ticket keys: namespace %s rotated to version %d%s", ns, next->version(),
              force ? " (on request)" : "");
      Publish(ns, *next);
      Announce(ns);
      return next;
    }
    WipeRing(&*next);
    if (!swapped.ok()) return swapped.status();
    if (!force) return Refresh(ns, false, nullptr);  // another replica rotated first: its ring
  }
  return absl::AbortedError(
      absl::StrCat("ticket keys of namespace ", ns, " changed under two rotations in a row"));
}

absl::StatusOr<BarrierVerdict> TicketKeyService::Judge(const std::string& ns,
                                                       const v1::TicketKeySet& ring,
                                                       absl::Time now) {
  absl::StatusOr<std::vector<FollowerReport>> reports =
      ListFollowersSync(*store_, ns, options_.store_timeout);
  if (!reports.ok()) return reports.status();
  BarrierVerdict verdict = barrier_.Judge(ns, *reports, ring.version(), now);
  if (verdict.rotate) return verdict;
  return absl::FailedPreconditionError(absl::StrCat(
      "ticket keys of namespace ", ns, ": ", verdict.lagging.size(),
      " followers do not hold version ", ring.version(), " yet: ",
      DescribeFollowers(verdict.lagging), "; waited ", absl::FormatDuration(verdict.waited),
      " (a follower stops counting when its lease ends, --ticket_follower_lease; the rotation "
      "goes ahead without them after --ticket_barrier_timeout)"));
}

void TicketKeyService::ForgetLapsed(const std::string& ns, const BarrierVerdict& verdict) {
  for (const std::vector<FollowerReport>* reports : {&verdict.lapsed, &verdict.gone}) {
    for (const FollowerReport& report : *reports) {
      // Unless it reported again meanwhile. Best effort: the next rotation tries again.
      store_->ForgetFollower(ns, report, absl::Now() + options_.store_timeout,
                             [](absl::Status) {});
    }
  }
}

void TicketKeyService::Reconsider(const std::string& ns) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = options_.clock->Now();
  bool waiting = false;
  for (Rotation& rotation : rotations_) {
    if (rotation.ns == ns && rotation.not_before > now) {
      rotation.not_before = now;  // Refresh checks the PENDING key's age again too
      waiting = true;
    }
  }
  if (auto kept = kept_.find(ns);
      kept != kept_.end() && absl::ToUnixMillis(now) >= kept->second.next_rotation_unix_ms) {
    kept->second.recheck = true;
    waiting = true;
  }
  if (waiting) wake_.Signal();
}

void TicketKeyService::ForceRotation(Rotation rotation) {
  absl::Time not_before = absl::InfinitePast();
  absl::StatusOr<v1::TicketKeySet> rotated = Refresh(rotation.ns, /*force=*/true, &not_before);
  if (!rotated.ok() && not_before != absl::InfinitePast() &&
      not_before + kAnswerMargin < rotation.deadline) {
    // Its PENDING key becomes old enough, or its followers catch up, before the caller gives
    // up: wait for it.
    rotation.not_before = not_before;
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      rotations_.push_back(std::move(rotation));
      return;
    }
    rotated = absl::UnavailableError("the server is shutting down");
  }
  std::move(rotation.done)(std::move(rotated));
}

void TicketKeyService::Publish(const std::string& ns, const v1::TicketKeySet& ring) {
  absl::MutexLock lock(&mu_);
  if (auto kept = kept_.find(ns); kept != kept_.end()) {
    ServedRing& served = kept->second.served;
    served.ns = ns;
    served.version = ring.version();
    kept->second.next_rotation_unix_ms = ring.next_rotation_unix_ms();
    for (const v1::TicketKey& key : ring.keys()) {
      if (key.state() == v1::TicketKey::ACTIVE) {
        served.active_since_unix_ms = key.not_before_unix_ms();
      }
    }
  }
  auto range = watches_.equal_range(ns);
  for (auto it = range.first; it != range.second; ++it) it->second->Push(ring);
}

std::vector<TicketKeyService::ServedRing> TicketKeyService::ServedRings() const {
  absl::MutexLock lock(&mu_);
  std::vector<ServedRing> rings;
  for (const auto& [ns, kept] : kept_) {
    if (kept.served.version != 0) rings.push_back(kept.served);
  }
  return rings;
}

void TicketKeyService::Forget(Watch* watch) {
  absl::MutexLock lock(&mu_);
  for (auto it = watches_.begin(); it != watches_.end(); ++it) {
    if (it->second == watch) {
      if (auto kept = kept_.find(it->first); kept != kept_.end() && kept->second.watchers > 0) {
        --kept->second.watchers;
      }
      watches_.erase(it);
      return;
    }
  }
}

void TicketKeyService::ReauthorizeWatches() {
  if (options_.authz == nullptr) return;
  absl::MutexLock lock(&mu_);
  for (auto& [ns, watch] : watches_) {
    absl::Status allowed = options_.authz->CheckIdentity(watch->identity(), ns);
    if (!allowed.ok()) watch->End(ToGrpcStatus(allowed));
  }
}

void TicketKeyService::StopWatches() {
  std::deque<Rotation> waiting;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [ns, watch] : watches_) watch->End(grpc::Status::OK);
    waiting.swap(rotations_);
  }
  for (Rotation& rotation : waiting) {
    std::move(rotation.done)(absl::UnavailableError("the server is shutting down"));
  }
}

grpc::ServerUnaryReactor* TicketKeyService::GetTicketKeys(grpc::CallbackServerContext* context,
                                                          const v1::TicketKeysRequest* request,
                                                          v1::TicketKeySet* response) {
  if (absl::Status s = AdmitNamespace(options_.authz, *context, request->namespace_()); !s.ok()) {
    return FinishNow(context, ToGrpcStatus(s));
  }
  auto* reactor = new CleanupReactor([response] { WipeRing(response); });
  FetchRing(request->namespace_(), [reactor, response](absl::StatusOr<v1::TicketKeySet> ring) {
    if (!ring.ok()) return reactor->Finish(ToGrpcStatus(ring.status()));
    *response = *std::move(ring);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* TicketKeyService::RotateTicketKeys(grpc::CallbackServerContext* context,
                                                             const v1::TicketKeysRequest* request,
                                                             v1::TicketKeySet* response) {
  if (absl::Status s = AdmitNamespace(options_.authz, *context, request->namespace_()); !s.ok()) {
    return FinishNow(context, ToGrpcStatus(s));
  }
  if (options_.authz != nullptr) {
    if (absl::Status s = options_.authz->CheckOperator(*context); !s.ok()) {
      return FinishNow(context, ToGrpcStatus(s));
    }
  }
  auto* reactor = new CleanupReactor([response] { WipeRing(response); });
  const auto finish = [reactor, response](absl::StatusOr<v1::TicketKeySet> rotated) {
    if (!rotated.ok()) return reactor->Finish(ToGrpcStatus(rotated.status()));
    *response = *std::move(rotated);
    reactor->Finish(grpc::Status::OK);
  };
  // Make sure the ring exists, then hand the rotation to the rotation thread: it blocks on the
  // store, and may wait for the PENDING key to be old enough.
  const std::string ns = request->namespace_();
  // The caller's deadline on the clock the PENDING key's age is read on, so that the two
  // compare (a test's fake clock included).
  const absl::Duration left = std::min(absl::FromChrono(context->deadline()) - absl::Now(),
                                       options_.min_distribution + absl::Minutes(1));
  const absl::Time deadline = options_.clock->Now() + left;
  FetchRing(ns, [this, ns, deadline, finish](absl::StatusOr<v1::TicketKeySet> ring) {
    if (!ring.ok()) return finish(ring.status());
    WipeRing(&*ring);
    absl::MutexLock lock(&mu_);
    if (stopping_) return finish(absl::UnavailableError("the server is shutting down"));
    rotations_.push_back(Rotation{ns, absl::InfinitePast(), deadline, finish});
    wake_.Signal();
  });
  return reactor;
}

grpc::ServerUnaryReactor* TicketKeyService::ReportTicketKeys(
    grpc::CallbackServerContext* context, const v1::TicketKeysReport* request,
    v1::TicketKeysReportResponse* response) {
  if (absl::Status s = AdmitNamespace(options_.authz, *context, request->namespace_()); !s.ok()) {
    return FinishNow(context, ToGrpcStatus(s));
  }
  if (absl::Status s = ValidateFollowerName(request->follower()); !s.ok()) {
    return FinishNow(context, ToGrpcStatus(s));
  }
  FollowerReport report{request->follower(), request->version(), 0};
  if (!request->leaving()) {
    report.lease_ends_unix_ms = absl::ToUnixMillis(options_.clock->Now() + options_.barrier.lease);
  }
  auto* reactor = new CleanupReactor([] {});
  response->set_lease_ms(absl::ToInt64Milliseconds(options_.barrier.lease));
  store_->ReportFollower(request->namespace_(), report, absl::Now() + options_.store_timeout,
                         [this, reactor, ns = request->namespace_()](absl::Status s) {
                           if (s.ok()) Reconsider(ns);
                           reactor->Finish(ToGrpcStatus(s));
                         });
  return reactor;
}

grpc::ServerUnaryReactor* TicketKeyService::ListTicketKeyFollowers(
    grpc::CallbackServerContext* context, const v1::TicketKeysRequest* request,
    v1::TicketKeyFollowers* response) {
  if (absl::Status s = AdmitNamespace(options_.authz, *context, request->namespace_()); !s.ok()) {
    return FinishNow(context, ToGrpcStatus(s));
  }
  auto* reactor = new CleanupReactor([] {});
  const std::string ns = request->namespace_();
  FetchRing(ns, [this, ns, reactor, response](absl::StatusOr<v1::TicketKeySet> ring) {
    if (!ring.ok()) return reactor->Finish(ToGrpcStatus(ring.status()));
    response->set_ring_version(ring->version());
    WipeRing(&*ring);
    store_->ListFollowers(ns, absl::Now() + options_.store_timeout,
                          [reactor, response](absl::StatusOr<std::vector<FollowerReport>> reports) {
                            if (!reports.ok()) return reactor->Finish(ToGrpcStatus(reports.status()));
                            for (const FollowerReport& report : *reports) {
                              v1::TicketKeyFollower* f = response->add_followers();
                              f->set_follower(report.follower);
                              f->set_version(report.version);
                              f->set_lease_ends_unix_ms(report.lease_ends_unix_ms);
                            }
                            reactor->Finish(grpc::Status::OK);
                          });
  });
  return reactor;
}

grpc::ServerWriteReactor<v1::TicketKeySet>* TicketKeyService::WatchTicketKeys(
    grpc::CallbackServerContext* context, const v1::TicketKeysRequest* request) {
  auto* watch = new Watch(
      this, context->auth_context() != nullptr ? PeerIdentity(*context->auth_context()) : "");
  const std::string ns = request->namespace_();
  if (absl::Status s = AdmitNamespace(options_.authz, *context, ns); !s.ok()) {
    watch->End(ToGrpcStatus(s));
    return watch;
  }
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      watch->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down"));
      return watch;
    }
    watches_.emplace(ns, watch);
    if (KeepLocked(ns)) ++kept_[ns].watchers;
  }
  // The first message: the ring as it is now (FetchRing publishes it, so that a stream that
  // ended meanwhile is not touched).
  FetchRing(ns, [](absl::StatusOr<v1::TicketKeySet> ring) {
    if (ring.ok()) WipeRing(&*ring);  // else the rotation thread reads it again soon
  });
  return watch;
}

}  // namespace tlscache::server
