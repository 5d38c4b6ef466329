#include "client/ticket_key_follower.h"

#include <openssl/crypto.h>

#include <utility>

#include "absl/time/clock.h"
#include "common/log.h"
#include "common/threads.h"
#include "tlscache/v1/ticket_keys.grpc.pb.h"

namespace tlscache::client {
namespace {

// A ring as received, checked like any bytes from the network; null if it is not usable. The
// message's key bytes are wiped either way.
std::shared_ptr<const TicketKeySnapshot> Convert(v1::TicketKeySet& ring) {
  std::shared_ptr<TicketKeySnapshot> snapshot;
  if (absl::Status valid = ValidateRing(ring); valid.ok()) {
    snapshot = std::make_shared<TicketKeySnapshot>();
    snapshot->version = ring.version();
    snapshot->keys.reserve(ring.keys_size());
    for (const v1::TicketKey& key : ring.keys()) {
      if (key.state() == v1::TicketKey::ACTIVE) snapshot->active = snapshot->keys.size();
      snapshot->keys.push_back(ToRecord(key));
      snapshot->not_after_unix_ms.push_back(key.not_after_unix_ms());
    }
  } else {
    LogError("ticket keys: ignoring a ring from the service: %s", valid.message());
  }
  WipeRing(&ring);
  return snapshot;
}

}  // namespace

TicketKeySnapshot::~TicketKeySnapshot() {
  if (!keys.empty()) OPENSSL_cleanse(keys.data(), keys.size() * sizeof(TicketKeyRecord));
}

const TicketKeyRecord* TicketKeySnapshot::Find(const uint8_t name[kTicketKeyNameBytes],
                                                absl::Time now) const {
  size_t found = keys.size();
  for (size_t i = 0; i < keys.size(); ++i) {  // every name compared: no early exit
    if (CRYPTO_memcmp(keys[i].name.data(), name, keys[i].name.size()) == 0) found = i;
  }
  if (found == keys.size()) return nullptr;
  const int64_t not_after = not_after_unix_ms[found];
  if (not_after != 0 && absl::ToUnixMillis(now) > not_after) return nullptr;
  return &keys[found];
}

TicketKeyFollower::TicketKeyFollower(std::shared_ptr<grpc::Channel> channel, std::string ns,
                                     std::string report_as, absl::Duration poll_interval)
    : channel_(std::move(channel)), ns_(std::move(ns)), poll_interval_(poll_interval) {
  if (!report_as.empty()) {
    reporter_ = std::make_unique<TicketKeyReporter>(channel_, ns_, std::move(report_as));
  }
  thread_ = std::thread([this] { Run(); });
}

TicketKeyFollower::~TicketKeyFollower() { Stop(); }

void TicketKeyFollower::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (watch_ != nullptr) watch_->TryCancel();
    stop_cv_.SignalAll();
  }
  absl::MutexLock lock(&join_mu_);
  if (thread_.joinable()) thread_.join();
  if (reporter_ != nullptr) reporter_->Stop(/*leave=*/true);
}

std::shared_ptr<const TicketKeySnapshot> TicketKeyFollower::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

std::shared_ptr<const TicketKeySnapshot> TicketKeyFollower::AwaitFirst(
    absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  const absl::Time deadline = absl::Now() + timeout;
  while (current_ == nullptr && !ring_cv_.WaitWithDeadline(&mu_, deadline)) {
  }
  return current_;
}

std::shared_ptr<const TicketKeySnapshot> TicketKeyFollower::AwaitNewer(
    uint64_t version, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  const absl::Time deadline = absl::Now() + timeout;
  while ((current_ == nullptr || current_->version <= version) &&
         !ring_cv_.WaitWithDeadline(&mu_, deadline)) {
  }
  if (current_ == nullptr || current_->version <= version) return nullptr;
  return current_;
}

void TicketKeyFollower::Accept(std::shared_ptr<const TicketKeySnapshot> snapshot) {
  if (snapshot == nullptr) return;
  uint64_t taken = 0;
  {
    absl::MutexLock lock(&mu_);
    if (current_ == nullptr || snapshot->version > current_->version) {
      taken = snapshot->version;
      current_ = std::move(snapshot);
    }
    ring_cv_.SignalAll();
  }
  // Handshakes read it from here on: this process can decrypt with every key of it.
  if (taken != 0 && reporter_ != nullptr) reporter_->Hold(taken);
}

void TicketKeyFollower::Run() {
  NameThisThread("tlscache-keys");
  auto stub = v1::TicketKeys::NewStub(channel_);
  v1::TicketKeysRequest request;
  request.set_namespace_(ns_);
  while (true) {
    // Poll once (a ring at once, even when the stream cannot start), then follow the stream
    // until it ends, then wait and start over.
    {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
      v1::TicketKeySet ring;
      if (stub->GetTicketKeys(&context, request, &ring).ok()) Accept(Convert(ring));
    }
    grpc::ClientContext watch;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      watch_ = &watch;
    }
    std::unique_ptr<grpc::ClientReader<v1::TicketKeySet>> stream =
        stub->WatchTicketKeys(&watch, request);
    v1::TicketKeySet ring;
    while (stream->Read(&ring)) Accept(Convert(ring));
    (void)stream->Finish();
    absl::MutexLock lock(&mu_);
    watch_ = nullptr;
    const absl::Time until = absl::Now() + poll_interval_;
    while (!stopping_ && !stop_cv_.WaitWithDeadline(&mu_, until)) {
    }
    if (stopping_) return;
  }
}

}  // namespace tlscache::client
