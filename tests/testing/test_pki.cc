#include "tests/testing/test_pki.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tlscache::testing {
namespace {

absl::Status WritePem(X509* cert, EVP_PKEY* key, const CertFiles& files) {
  FILE* c = std::fopen(files.cert.c_str(), "w");
  FILE* k = key == nullptr ? nullptr : std::fopen(files.key.c_str(), "w");
  const bool ok =
      c != nullptr && PEM_write_X509(c, cert) == 1 &&
      (key == nullptr ||
       (k != nullptr && PEM_write_PrivateKey(k, key, nullptr, nullptr, 0, nullptr, nullptr) == 1));
  if (c != nullptr) std::fclose(c);
  if (k != nullptr) std::fclose(k);
  return ok ? absl::OkStatus() : absl::InternalError(absl::StrCat("cannot write ", files.cert));
}

}  // namespace

X509Ptr MakeCertificate(EVP_PKEY* key, const std::string& cn, const std::string& san, bool ca,
                        X509* issuer, EVP_PKEY* issuer_key) {
  static int serial = 1;
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  if (issuer == nullptr) {
    issuer = cert.get();
    issuer_key = key;
  }
  X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer));
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert.get(), nullptr, nullptr, 0);
  std::vector<std::pair<int, std::string>> extensions = {
      {NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE"}};
  if (!san.empty()) extensions.emplace_back(NID_subject_alt_name, san);
  if (ca) extensions.emplace_back(NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
  for (const auto& [nid, value] : extensions) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(cert.get(), issuer_key, EVP_sha256());
  return cert;
}

absl::StatusOr<std::unique_ptr<TestPki>> TestPki::Create() {
  std::unique_ptr<TestPki> owned(new TestPki());
  TestPki& pki = *owned;
  if (pki.dir_.path().empty()) return absl::InternalError("mkdtemp failed");
  pki.ca_file_ = pki.dir_.Path("ca.pem");
  pki.ca_key_.reset(EVP_EC_gen("P-256"), EVP_PKEY_free);
  pki.ca_.reset(
      MakeCertificate(pki.ca_key_.get(), "tlscache test CA", "", /*ca=*/true, nullptr, nullptr)
          .release(),
      X509_free);
  if (absl::Status s = WritePem(pki.ca_.get(), nullptr, {pki.ca_file_, ""}); !s.ok()) return s;
  PkeyPtr key(EVP_EC_gen("P-256"));
  X509Ptr cert = MakeCertificate(key.get(), "localhost", "DNS:localhost,IP:127.0.0.1",
                                 /*ca=*/false, pki.ca_.get(), pki.ca_key_.get());
  pki.server_ = {pki.dir_.Path("server.pem"), pki.dir_.Path("server.key")};
  if (absl::Status s = WritePem(cert.get(), key.get(), pki.server_); !s.ok()) return s;
  return owned;
}

absl::StatusOr<CertFiles> TestPki::IssueClient(const std::string& name, const std::string& cn,
                                               const std::string& san) const {
  PkeyPtr key(EVP_EC_gen("P-256"));
  X509Ptr cert = MakeCertificate(key.get(), cn, san, /*ca=*/false, ca_.get(), ca_key_.get());
  CertFiles files{dir_.Path(name + ".pem"), dir_.Path(name + ".key")};
  if (absl::Status s = WritePem(cert.get(), key.get(), files); !s.ok()) return s;
  return files;
}

}  // namespace tlscache::testing
