#include "common/validation.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace tlscache {

absl::Status ValidateNamespace(absl::string_view ns) {
  if (ns.empty()) return absl::InvalidArgumentError("namespace is empty");
  if (ns.size() > kMaxNamespaceBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("namespace is ", ns.size(), " bytes long; the limit is ", kMaxNamespaceBytes));
  }
  for (char c : ns) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return absl::InvalidArgumentError(
          "namespace may only contain letters, digits, '.', '_' and '-'");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateSessionId(absl::string_view session_id) {
  if (session_id.empty()) return absl::InvalidArgumentError("session_id is empty");
  if (session_id.size() > kMaxSessionIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "session_id is ", session_id.size(), " bytes long; the limit is ", kMaxSessionIdBytes));
  }
  return absl::OkStatus();
}

bool IsFollowerNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         absl::string_view("._:/@+[]-").find(c) != absl::string_view::npos;
}

absl::Status ValidateFollowerName(absl::string_view follower) {
  if (follower.empty()) return absl::InvalidArgumentError("follower is empty");
  if (follower.size() > kMaxFollowerBytes) {
    return absl::InvalidArgumentError(absl::StrCat("follower is ", follower.size(),
                                                   " bytes long; the limit is ", kMaxFollowerBytes));
  }
  for (char c : follower) {
    if (!IsFollowerNameChar(c)) {
      return absl::InvalidArgumentError(
          "follower may only contain letters, digits and any of . _ : / @ + [ ] -");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateSession(absl::string_view session, size_t max_bytes) {
  if (session.empty()) return absl::InvalidArgumentError("session is empty");
  if (session.size() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("session is ", session.size(), " bytes long; the limit is ", max_bytes));
  }
  return absl::OkStatus();
}

}  // namespace tlscache
