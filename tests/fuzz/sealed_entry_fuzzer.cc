// Fuzzes the sealed-entry format (server/security/sealer.h): every value read back from the store
// is opened by Sealer::Open, whoever wrote it. Arbitrary bytes must be refused without a crash, and
// a value sealed from the input must open to exactly the input, under its own (kind, namespace, id)
// only.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "server/security/sealer.h"

namespace {

using tlscache::SecretBytes;
using tlscache::server::SealedKind;
using tlscache::server::Sealer;

const Sealer& TheSealer() {
  static const Sealer* sealer = [] {
    std::vector<SecretBytes> keys;
    keys.emplace_back(std::string(32, '\x11'));
    keys.emplace_back(std::string(32, '\x22'));
    return Sealer::Create(std::move(keys))->release();
  }();
  return *sealer;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Sealer& sealer = TheSealer();
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  // The input as a stored value under a fixed key.
  (void)sealer.Open(SealedKind::kSession, "ns", "id", input);
  (void)sealer.Open(SealedKind::kRing, "ns", "", input);

  // The input as (namespace, id, plaintext): sealing and opening must round-trip.
  if (size < 2) return 0;
  const size_t ns_size = data[0] % 65;
  const size_t id_size = data[1] % 33;
  if (size < 2 + ns_size + id_size) return 0;
  const absl::string_view ns = input.substr(2, ns_size);
  const absl::string_view id = input.substr(2 + ns_size, id_size);
  const absl::string_view plaintext = input.substr(2 + ns_size + id_size);
  auto sealed = sealer.Seal(SealedKind::kSession, ns, id, plaintext);
  if (!sealed.ok()) abort();
  auto opened = sealer.Open(SealedKind::kSession, ns, id, *sealed);
  if (!opened.ok() || opened->view() != plaintext) abort();
  if (sealer.Open(SealedKind::kRing, ns, id, *sealed).ok()) abort();
  std::string moved_id(id);
  moved_id.push_back('x');
  if (sealer.Open(SealedKind::kSession, ns, moved_id, *sealed).ok()) abort();
  return 0;
}
