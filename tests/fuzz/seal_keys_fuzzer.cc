// Fuzzes the seal key file parser (server/security/sealer.h ParseSealKeys), which reads the file an
// operator points --seal_key_file at. Every accepted key is 32 bytes, and a Sealer takes them.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <utility>

#include "absl/strings/string_view.h"
#include "server/security/sealer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto keys =
      tlscache::server::ParseSealKeys(absl::string_view(reinterpret_cast<const char*>(data), size));
  if (!keys.ok()) return 0;
  if (keys->empty() || keys->size() > tlscache::server::kMaxSealKeys) abort();
  for (const tlscache::SecretBytes& key : *keys) {
    if (key.size() != tlscache::server::kSealKeyBytes) abort();
  }
  (void)tlscache::server::Sealer::Create(*std::move(keys));
  return 0;
}
