#include "server/security/authz_policy.h"

#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/validation.h"

namespace tlscache::server {

absl::StatusOr<AuthzPolicy> AuthzPolicy::Parse(absl::string_view text) {
  if (text.size() > kMaxAuthzFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat("larger than ", kMaxAuthzFileBytes, " bytes"));
  }
  AuthzPolicy policy;
  absl::flat_hash_map<std::string, int> first_line;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    const auto error = [line_number](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": ", why));
    };
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 2) {
      return error("expected IDENTITY NAMESPACE[,NAMESPACE...]");
    }
    const std::string identity(fields[0]);
    if (identity.size() > kMaxAuthzIdentityBytes) {
      return error(absl::StrCat("identity longer than ", kMaxAuthzIdentityBytes, " bytes"));
    }
    for (char c : identity) {
      if (!absl::ascii_isgraph(static_cast<unsigned char>(c))) {
        return error("identity has a control or non-ASCII character");
      }
    }
    if (auto [it, inserted] = first_line.emplace(identity, line_number); !inserted) {
      return error(absl::StrCat("identity ", identity, " is already on line ", it->second));
    }
    Grant grant;
    for (absl::string_view ns : absl::StrSplit(fields[1], ',')) {
      if (ns == "*") {
        grant.every_namespace = true;
        continue;
      }
      if (absl::Status s = ValidateNamespace(ns); !s.ok()) return error(s.message());
      grant.namespaces.emplace(ns);
      policy.named_.emplace(ns);
    }
    policy.grants_.emplace(identity, std::move(grant));
  }
  return policy;
}

bool AuthzPolicy::Allows(absl::string_view identity, absl::string_view ns) const {
  auto it = grants_.find(identity);
  if (it == grants_.end()) return false;
  return it->second.every_namespace || it->second.namespaces.contains(ns);
}

bool AuthzPolicy::AllowsEveryNamespace(absl::string_view identity) const {
  auto it = grants_.find(identity);
  return it != grants_.end() && it->second.every_namespace;
}

bool AuthzPolicy::NamesNamespace(absl::string_view ns) const { return named_.contains(ns); }

}  // namespace tlscache::server
