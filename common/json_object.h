// JsonObject: the one writer of tlscache's JSON (the plugin's stats, tlscache-bench's
// results): a flat object built field by field, compact, nested objects added as built ones.
//
// Thread-safety: none; a value.
#ifndef TLSCACHE_COMMON_JSON_OBJECT_H_
#define TLSCACHE_COMMON_JSON_OBJECT_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace tlscache {

class JsonObject {
 public:
  JsonObject& Add(absl::string_view key, absl::string_view value);
  JsonObject& Add(absl::string_view key, const char* value) {
    return Add(key, absl::string_view(value));
  }
  JsonObject& Add(absl::string_view key, uint64_t value);
  JsonObject& Add(absl::string_view key, int64_t value);
  JsonObject& Add(absl::string_view key, int value) { return Add(key, static_cast<int64_t>(value)); }
  // Three decimals.
  JsonObject& Add(absl::string_view key, double value);
  JsonObject& Add(absl::string_view key, const JsonObject& value);
  std::string ToString() const { return "{" + fields_ + "}"; }

 private:
  void Key(absl::string_view key);
  std::string fields_;
};

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_JSON_OBJECT_H_
