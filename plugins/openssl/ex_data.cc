#include "plugins/openssl/ex_data.h"

#include <openssl/ssl.h>

namespace tlscache::openssl {
namespace {

// Makes room for the slot when a context is made.
void ReserveSlot(void* /*parent*/, void* /*ptr*/, CRYPTO_EX_DATA* ad, int idx, long /*argl*/,
                 void* /*argp*/) {
  CRYPTO_set_ex_data(ad, idx, nullptr);
}

}  // namespace

int NewContextIndex(CRYPTO_EX_free* free_slot) {
  return SSL_CTX_get_ex_new_index(0, nullptr, ReserveSlot, nullptr, free_slot);
}

}  // namespace tlscache::openssl
