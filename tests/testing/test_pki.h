// Certificates for tests of TLS to the cache: a throwaway CA that issues a server certificate
// (localhost, 127.0.0.1) and client certificates with the SANs a test asks for.
#ifndef TLSCACHE_TESTS_TESTING_TEST_PKI_H_
#define TLSCACHE_TESTS_TESTING_TEST_PKI_H_

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <string>

#include "absl/status/statusor.h"
#include "common/openssl_util.h"
#include "tests/testing/temp_dir.h"

namespace tlscache::testing {

// A certificate for `key` with subject CN `cn` and, unless empty, subjectAltName `san` (in
// openssl's syntax: "URI:spiffe://a,DNS:b"), signed by `issuer`/`issuer_key`, or self-signed
// when they are null. Valid from an hour ago for a day.
X509Ptr MakeCertificate(EVP_PKEY* key, const std::string& cn, const std::string& san, bool ca,
                        X509* issuer, EVP_PKEY* issuer_key);

struct CertFiles {
  std::string cert;  // PEM paths
  std::string key;
};

// A CA and its certificates in a directory of their own, removed with them; the test may keep
// other files there too (dir()).
class TestPki {
 public:
  // Writes ca.pem, server.pem and server.key into a new temporary directory.
  static absl::StatusOr<std::unique_ptr<TestPki>> Create();

  // <name>.pem and <name>.key: a client certificate from the CA.
  absl::StatusOr<CertFiles> IssueClient(const std::string& name, const std::string& cn,
                                        const std::string& san) const;

  const std::string& ca_file() const { return ca_file_; }
  const CertFiles& server() const { return server_; }
  const TempDir& dir() const { return dir_; }

 private:
  TestPki() = default;

  TempDir dir_{"pki"};
  std::string ca_file_;
  CertFiles server_;
  std::shared_ptr<X509> ca_;
  std::shared_ptr<EVP_PKEY> ca_key_;
};

}  // namespace tlscache::testing

#endif  // TLSCACHE_TESTS_TESTING_TEST_PKI_H_
