// Authorizer: who is calling (from the client certificate the TLS handshake verified) and
// whether that identity may use a namespace, under the policy of the --authz_file. SIGHUP
// reloads the file; a file that does not parse leaves the policy in force unchanged.
//
// Thread-safety: Check() from any thread, concurrently with Reload().
#ifndef TLSCACHE_SERVER_SECURITY_AUTHORIZER_H_
#define TLSCACHE_SERVER_SECURITY_AUTHORIZER_H_

#include <grpcpp/security/auth_context.h>
#include <grpcpp/server_context.h>

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/security/authz_policy.h"

namespace tlscache::server {

// The verified client certificate's first URI SAN, else its first DNS SAN, else its subject
// CN; "" when the peer presented no verified certificate.
std::string PeerIdentity(const grpc::AuthContext& context);

class Authorizer {
 public:
  // Reads and parses `path`; errors name the file and the line.
  static absl::StatusOr<std::unique_ptr<Authorizer>> FromFile(const std::string& path);

  // Re-reads the file. On error the current policy stays and the error says why.
  absl::Status Reload();

  // Ok, or PermissionDenied naming the identity and the namespace.
  absl::Status Check(const grpc::CallbackServerContext& context, absl::string_view ns) const;
  // Ok if the caller is granted every namespace ('*'): the operator calls (Admin, rotating
  // ticket keys).
  absl::Status CheckOperator(const grpc::CallbackServerContext& context) const;

  // The same two checks for an identity already known (PeerIdentity; "" for a caller without
  // a verified certificate).
  absl::Status CheckIdentity(absl::string_view identity, absl::string_view ns) const;
  absl::Status CheckOperatorIdentity(absl::string_view identity) const;

  // Whether the policy in force grants `ns` to some identity by name (not only through '*'):
  // the namespaces a replica keeps state for.
  bool Grants(absl::string_view ns) const;

 private:
  explicit Authorizer(std::string path) : path_(std::move(path)) {}
  absl::StatusOr<std::shared_ptr<const AuthzPolicy>> Load() const;
  std::shared_ptr<const AuthzPolicy> policy() const;

  const std::string path_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const AuthzPolicy> policy_ ABSL_GUARDED_BY(mu_);
};

// The check every namespaced call makes first: InvalidArgument for a malformed namespace,
// then PermissionDenied unless the caller may use it (anyone may without an authorizer).
absl::Status AdmitNamespace(const Authorizer* authz, const grpc::CallbackServerContext& context,
                            absl::string_view ns);

}  // namespace tlscache::server

#endif  // TLSCACHE_SERVER_SECURITY_AUTHORIZER_H_
