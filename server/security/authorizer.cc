#include "server/security/authorizer.h"

#include <grpc/grpc_security_constants.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/validation.h"

namespace tlscache::server {
namespace {

std::string FirstProperty(const grpc::AuthContext& context, const char* name) {
  std::vector<grpc::string_ref> values = context.FindPropertyValues(name);
  if (values.empty()) return "";
  return std::string(values.front().data(), values.front().size());
}

absl::Status NoCertificate() {
  return absl::PermissionDeniedError("the caller presented no client certificate");
}

}  // namespace

std::string PeerIdentity(const grpc::AuthContext& context) {
  if (!context.IsPeerAuthenticated()) return "";
  for (const char* property :
       {GRPC_PEER_URI_PROPERTY_NAME, GRPC_PEER_DNS_PROPERTY_NAME, GRPC_X509_CN_PROPERTY_NAME}) {
    std::string identity = FirstProperty(context, property);
    if (!identity.empty()) return identity;
  }
  return "";
}

namespace {

std::string CallerIdentity(const grpc::CallbackServerContext& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  return auth == nullptr ? "" : PeerIdentity(*auth);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::FromFile(const std::string& path) {
  std::unique_ptr<Authorizer> authorizer(new Authorizer(path));
  absl::StatusOr<std::shared_ptr<const AuthzPolicy>> policy = authorizer->Load();
  if (!policy.ok()) return policy.status();
  absl::MutexLock lock(&authorizer->mu_);
  authorizer->policy_ = *std::move(policy);
  return authorizer;
}

absl::StatusOr<std::shared_ptr<const AuthzPolicy>> Authorizer::Load() const {
  absl::StatusOr<std::string> text = ReadSmallFile(path_, kMaxAuthzFileBytes);
  if (!text.ok()) return text.status();
  absl::StatusOr<AuthzPolicy> policy = AuthzPolicy::Parse(*text);
  if (!policy.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": ", policy.status().message()));
  }
  return std::make_shared<const AuthzPolicy>(*std::move(policy));
}

absl::Status Authorizer::Reload() {
  absl::StatusOr<std::shared_ptr<const AuthzPolicy>> policy = Load();
  if (!policy.ok()) return policy.status();
  absl::MutexLock lock(&mu_);
  policy_ = *std::move(policy);
  return absl::OkStatus();
}

std::shared_ptr<const AuthzPolicy> Authorizer::policy() const {
  absl::MutexLock lock(&mu_);
  return policy_;
}

absl::Status Authorizer::Check(const grpc::CallbackServerContext& context,
                               absl::string_view ns) const {
  return CheckIdentity(CallerIdentity(context), ns);
}

absl::Status Authorizer::CheckOperator(const grpc::CallbackServerContext& context) const {
  return CheckOperatorIdentity(CallerIdentity(context));
}

absl::Status Authorizer::CheckIdentity(absl::string_view identity, absl::string_view ns) const {
  if (identity.empty()) return NoCertificate();
  if (policy()->Allows(identity, ns)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("identity ", identity, " may not use namespace ", ns));
}

absl::Status Authorizer::CheckOperatorIdentity(absl::string_view identity) const {
  if (identity.empty()) return NoCertificate();
  if (policy()->AllowsEveryNamespace(identity)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("identity ", identity, " is not an operator (granted every namespace, '*')"));
}

bool Authorizer::Grants(absl::string_view ns) const { return policy()->NamesNamespace(ns); }

absl::Status AdmitNamespace(const Authorizer* authz, const grpc::CallbackServerContext& context,
                            absl::string_view ns) {
  if (absl::Status s = ValidateNamespace(ns); !s.ok()) return s;
  return authz == nullptr ? absl::OkStatus() : authz->Check(context, ns);
}

}  // namespace tlscache::server
