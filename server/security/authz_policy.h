// AuthzPolicy: which client identities may use which namespaces, as read from the server's
// --authz_file.
//
//   # IDENTITY                    NAMESPACE[,NAMESPACE...]
//   spiffe://farm/frontend-eu     shop,shop-staging
//   ops.example.com               *
//
// One identity per line, then its namespaces separated by commas (no spaces), or '*' for every
// namespace. The identity is the client certificate's first URI SAN, else its first DNS SAN,
// else its subject CN. Blank lines and lines starting with '#' are skipped. An identity not in
// the file may use nothing.
//
// Thread-safety: immutable once parsed.
#ifndef TLSCACHE_SERVER_SECURITY_AUTHZ_POLICY_H_
#define TLSCACHE_SERVER_SECURITY_AUTHZ_POLICY_H_

#include <cstddef>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tlscache::server {

inline constexpr size_t kMaxAuthzIdentityBytes = 1024;
inline constexpr size_t kMaxAuthzFileBytes = 1 << 20;

class AuthzPolicy {
 public:
  // InvalidArgument naming the line and what is wrong with it.
  static absl::StatusOr<AuthzPolicy> Parse(absl::string_view text);

  bool Allows(absl::string_view identity, absl::string_view ns) const;
  // Whether `identity` is granted every namespace ('*').
  bool AllowsEveryNamespace(absl::string_view identity) const;
  // Whether some identity is granted `ns` by name (a '*' grant does not count).
  bool NamesNamespace(absl::string_view ns) const;
  size_t identity_count() const { return grants_.size(); }

 private:
  struct Grant {
    bool every_namespace = false;
    absl::flat_hash_set<std::string> namespaces;
  };
  absl::flat_hash_map<std::string, Grant> grants_;
  absl::flat_hash_set<std::string> named_;  // every namespace some grant names
};

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_SECURITY_AUTHZ_POLICY_H_
