#include "common/json_object.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tlscache {
namespace {

std::string Quote(absl::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

}  // namespace

void JsonObject::Key(absl::string_view key) {
  if (!fields_.empty()) fields_ += ",";
  absl::StrAppend(&fields_, Quote(key), ":");
}

JsonObject& JsonObject::Add(absl::string_view key, absl::string_view value) {
  Key(key);
  fields_ += Quote(value);
  return *this;
}

JsonObject& JsonObject::Add(absl::string_view key, uint64_t value) {
  Key(key);
  absl::StrAppend(&fields_, value);
  return *this;
}

JsonObject& JsonObject::Add(absl::string_view key, int64_t value) {
  Key(key);
  absl::StrAppend(&fields_, value);
  return *this;
}

JsonObject& JsonObject::Add(absl::string_view key, double value) {
  Key(key);
  absl::StrAppendFormat(&fields_, "%.3f", value);
  return *this;
}

JsonObject& JsonObject::Add(absl::string_view key, const JsonObject& value) {
  Key(key);
  fields_ += value.ToString();
  return *this;
}

}  // namespace tlscache
