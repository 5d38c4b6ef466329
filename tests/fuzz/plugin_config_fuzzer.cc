// Fuzzes the plugin configuration string (plugins/openssl/config.h ParsePluginConfig), given
// to tlscache_attach() by a server's code or built from TLSCACHE_* variables: a bad string must
// be an error naming the key, never a crash.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "plugins/openssl/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)tlscache::openssl::ParsePluginConfig(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
