#include "common/channel_tls.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/files.h"

namespace tlscache {
namespace {

absl::StatusOr<std::string> Read(const char* setting, const std::string& path) {
  absl::StatusOr<std::string> contents = ReadSmallFile(path);
  if (!contents.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(setting, ": ", contents.status().message()));
  }
  return contents;
}

}  // namespace

absl::Status CheckTlsFileSet(TlsEnd end, TlsSetting cert, TlsSetting key, TlsSetting ca) {
  if (cert.given != key.given) {
    return absl::InvalidArgumentError(absl::StrCat(cert.name, " and ", key.name, " go together"));
  }
  if (end == TlsEnd::kClient && cert.given && !ca.given) {
    return absl::InvalidArgumentError(
        absl::StrCat(cert.name, " needs ", ca.name, " (mTLS to the cache)"));
  }
  if (end == TlsEnd::kServer && ca.given && !cert.given) {
    return absl::InvalidArgumentError(
        absl::StrCat(ca.name, " needs ", cert.name, " and ", key.name));
  }
  return absl::OkStatus();
}

absl::StatusOr<ChannelTls> ReadChannelTls(const ChannelTlsFiles& files) {
  if (absl::Status s = CheckTlsFileSet(TlsEnd::kClient, {"cert_file", !files.cert_file.empty()},
                                       {"key_file", !files.key_file.empty()},
                                       {"ca_file", !files.ca_file.empty()});
      !s.ok()) {
    return s;
  }
  ChannelTls tls;
  if (files.ca_file.empty()) return tls;
  absl::StatusOr<std::string> ca = Read("ca_file", files.ca_file);
  if (!ca.ok()) return ca.status();
  tls.root_certs = *std::move(ca);
  if (files.cert_file.empty()) return tls;
  absl::StatusOr<std::string> cert = Read("cert_file", files.cert_file);
  if (!cert.ok()) return cert.status();
  tls.cert_chain = *std::move(cert);
  absl::StatusOr<std::string> key = Read("key_file", files.key_file);
  if (!key.ok()) return key.status();
  tls.private_key = SecretBytes(*key);
  CleanseString(&*key);
  return tls;
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const ChannelTls& tls) {
  if (tls.root_certs.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = tls.root_certs;
  ssl.pem_cert_chain = tls.cert_chain;
  ssl.pem_private_key = std::string(tls.private_key.view());
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::SslCredentials(ssl);
  CleanseString(&ssl.pem_private_key);
  return credentials;
}

}  // namespace tlscache
