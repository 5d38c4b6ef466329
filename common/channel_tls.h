// TLS (and mTLS) from a client to the cache service: the PEM files a client is configured
// with, read and checked once, and the gRPC credentials built from them.
#ifndef TLSCACHE_COMMON_CHANNEL_TLS_H_
#define TLSCACHE_COMMON_CHANNEL_TLS_H_

#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/secret_bytes.h"

namespace tlscache {

// The rule of TLS files, written once for every end that takes them: a certificate comes with
// its key; a client's certificate (mTLS) comes with the CA it checks the service by, and a
// server's client CA with the certificate the server presents. Each setting is named as the
// caller spells it ("cert_file", "--tls_cert"), for the InvalidArgument message.
enum class TlsEnd { kClient, kServer };
struct TlsSetting {
  absl::string_view name;
  bool given = false;
};
absl::Status CheckTlsFileSet(TlsEnd end, TlsSetting cert, TlsSetting key, TlsSetting ca);

struct ChannelTlsFiles {
  std::string ca_file;    // empty: plaintext
  std::string cert_file;  // with key_file: a client certificate (mTLS)
  std::string key_file;
};

// The contents of the files; the private key in a buffer that wipes itself.
struct ChannelTls {
  std::string root_certs;  // empty: plaintext
  std::string cert_chain;
  SecretBytes private_key;
};

// Reads the files. InvalidArgument naming the setting (ca_file, cert_file, key_file) when a
// file cannot be read, or when they break CheckTlsFileSet.
absl::StatusOr<ChannelTls> ReadChannelTls(const ChannelTlsFiles& files);

// Insecure credentials without root certificates, TLS ones otherwise.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const ChannelTls& tls);

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_CHANNEL_TLS_H_
