// tlscache's SSL_CTX ex_data slots: each index is allocated before the server makes its
// contexts (plugin.h: ReserveContextSlots), and every context made afterwards has room for
// the slot from the start, so that setting it later, while other threads serve connections on
// the context, only writes the slot: ex_data that grew then would move under the threads
// reading it (the server's own slots included).
#ifndef TLSCACHE_PLUGINS_OPENSSL_EX_DATA_H_
#define TLSCACHE_PLUGINS_OPENSSL_EX_DATA_H_

#include <openssl/crypto.h>

namespace tlscache::openssl {

// A new SSL_CTX ex_data index whose slot every context made afterwards has from the start;
// `free_slot` (may be null) frees what a slot holds.
int NewContextIndex(CRYPTO_EX_free* free_slot);

}  // namespace tlscache::openssl

#endif  // TLSCACHE_PLUGINS_OPENSSL_EX_DATA_H_
