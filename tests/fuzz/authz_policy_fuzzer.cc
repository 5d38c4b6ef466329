// Fuzzes the authorization file parser (server/security/authz_policy.h), which reads --authz_file
// at startup and on every SIGHUP: a bad file must be an error, never a crash, and what parses must
// answer Allows() for any identity.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "server/security/authz_policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto policy = tlscache::server::AuthzPolicy::Parse(text);
  if (!policy.ok()) return 0;
  (void)policy->Allows("spiffe://farm/a", "shop");
  (void)policy->Allows(text.substr(0, text.find(' ')), "shop");
  return 0;
}
