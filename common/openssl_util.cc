#include "common/openssl_util.h"

#include <openssl/err.h>

#include "absl/strings/str_cat.h"

namespace tlscache {

std::string ConsumeOpenSslErrors() {
  std::string out;
  unsigned long code;
  while ((code = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    absl::StrAppend(&out, out.empty() ? "" : "; ", buf);
  }
  return out.empty() ? "no OpenSSL error queued" : out;
}

}  // namespace tlscache
