#include "server/ticket_key_service.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/secret_bytes.h"
#include "common/status_util.h"
#include "common/validation.h"
#include "server/reactors.h"
#include "server/store_sync.h"

namespace tlscache::server {
namespace {

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
  explicit Watch(TicketKeyService* service) : service_(service) {}

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
  absl::Mutex mu_;
  v1::TicketKeySet pending_ ABSL_GUARDED_BY(mu_);
  v1::TicketKeySet sent_ ABSL_GUARDED_BY(mu_);  // owned by gRPC while a write is out
  uint64_t queued_version_ ABSL_GUARDED_BY(mu_) = 0;
  bool has_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

TicketKeyService::TicketKeyService(Store* store, const TicketKeyOptions& options)
    : store_(store), options_(options) {
  loop_ = std::thread([this] { Loop(); });
}

TicketKeyService::~TicketKeyService() {
  stop_.Notify();
  loop_.join();
}

void TicketKeyService::Loop() {
  while (!stop_.WaitForNotificationWithTimeout(options_.check_interval)) CheckRings();
}

void TicketKeyService::FetchRing(const std::string& ns, RingDone done) {
  {
    absl::MutexLock lock(&mu_);
    namespaces_.insert(ns);
  }
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
                       return std::move(done)(std::move(ring));
                     }
                     WipeRing(&ring);
                     if (!swapped.ok()) return std::move(done)(swapped.status());
                     FetchRing(ns, std::move(done));
                   });
}

void TicketKeyService::CheckRings() {
  std::set<std::string> namespaces;
  {
    absl::MutexLock lock(&mu_);
    namespaces = namespaces_;
  }
  for (const std::string& ns : namespaces) {
    absl::StatusOr<v1::TicketKeySet> ring = Refresh(ns, /*force=*/false);
    if (ring.ok()) WipeRing(&*ring);
  }
}

absl::StatusOr<v1::TicketKeySet> TicketKeyService::Refresh(const std::string& ns, bool force) {
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
    absl::StatusOr<v1::TicketKeySet> next = Rotate(*ring, now, options_.policy);
    if (!next.ok()) {
      WipeRing(&*ring);
      return next.status();
    }
    absl::StatusOr<SecretBytes> bytes = Serialize(*next);
    absl::StatusOr<bool> swapped = bytes.ok()
                                       ? SwapRingSync(*store_, ns, ring->version(), next->version(),
                                                      bytes->view(), options_.store_timeout)
                                       : absl::StatusOr<bool>(bytes.status());
    WipeRing(&*ring);
    if (swapped.ok() && *swapped) {
      LogInfo("ticket keys: namespace %s rotated to version %d%s", ns, next->version(),
              force ? " (on request)" : "");
      Publish(ns, *next);
      return next;
    }
    WipeRing(&*next);
    if (!swapped.ok()) return swapped.status();
    if (!force) return Refresh(ns, false);  // another replica rotated first: serve its ring
  }
  return absl::AbortedError(
      absl::StrCat("ticket keys of namespace ", ns, " changed under two rotations in a row"));
}

void TicketKeyService::Publish(const std::string& ns, const v1::TicketKeySet& ring) {
  absl::MutexLock lock(&mu_);
  ServedRing& served = served_[ns];
  served.ns = ns;
  served.version = ring.version();
  for (const v1::TicketKey& key : ring.keys()) {
    if (key.state() == v1::TicketKey::ACTIVE)
      served.active_since_unix_ms = key.not_before_unix_ms();
  }
  auto range = watches_.equal_range(ns);
  for (auto it = range.first; it != range.second; ++it) it->second->Push(ring);
}

std::vector<TicketKeyService::ServedRing> TicketKeyService::ServedRings() const {
  absl::MutexLock lock(&mu_);
  std::vector<ServedRing> rings;
  for (const auto& [ns, ring] : served_) rings.push_back(ring);
  return rings;
}

void TicketKeyService::Forget(Watch* watch) {
  absl::MutexLock lock(&mu_);
  for (auto it = watches_.begin(); it != watches_.end(); ++it) {
    if (it->second == watch) {
      watches_.erase(it);
      return;
    }
  }
}

void TicketKeyService::StopWatches() {
  absl::MutexLock lock(&mu_);
  for (auto& [ns, watch] : watches_) watch->End(grpc::Status::OK);
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
  auto* reactor = new CleanupReactor([response] { WipeRing(response); });
  // Make sure the ring exists, then rotate it off the gRPC thread: Refresh blocks on the store.
  const std::string ns = request->namespace_();
  FetchRing(ns, [this, ns, reactor, response](absl::StatusOr<v1::TicketKeySet> ring) {
    if (!ring.ok()) return reactor->Finish(ToGrpcStatus(ring.status()));
    WipeRing(&*ring);
    std::thread([this, ns, reactor, response] {
      absl::StatusOr<v1::TicketKeySet> rotated = Refresh(ns, /*force=*/true);
      if (!rotated.ok()) return reactor->Finish(ToGrpcStatus(rotated.status()));
      *response = *std::move(rotated);
      reactor->Finish(grpc::Status::OK);
    }).detach();
  });
  return reactor;
}

grpc::ServerWriteReactor<v1::TicketKeySet>* TicketKeyService::WatchTicketKeys(
    grpc::CallbackServerContext* context, const v1::TicketKeysRequest* request) {
  auto* watch = new Watch(this);
  const std::string ns = request->namespace_();
  if (absl::Status s = AdmitNamespace(options_.authz, *context, ns); !s.ok()) {
    watch->End(ToGrpcStatus(s));
    return watch;
  }
  {
    absl::MutexLock lock(&mu_);
    watches_.emplace(ns, watch);
  }
  // The first message: the ring as it is now (through Publish, so that a stream that ended
  // meanwhile is not touched).
  FetchRing(ns, [this, ns](absl::StatusOr<v1::TicketKeySet> ring) {
    if (!ring.ok()) return;  // the loop publishes it once the store answers
    Publish(ns, *ring);
    WipeRing(&*ring);
  });
  return watch;
}

}  // namespace tlscache::server
