// HAProxy's runtime API (a stats socket at level admin), for its TLS ticket keys.
//
// HAProxy holds three keys per tls-ticket-keys file: `show tls-keys FILE` lists them, the one
// before the encryption key first, then the encryption key, then the next key; each
// `set ssl tls-key FILE KEY` overwrites the oldest with KEY, which becomes the next key, and the
// former next key encrypts. One rotation of the ring is one such step.
#ifndef TLSCACHE_TOOLS_KEYSYNC_HAPROXY_RUNTIME_H_
#define TLSCACHE_TOOLS_KEYSYNC_HAPROXY_RUNTIME_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/ticket_key_follower.h"
#include "common/secret_bytes.h"

namespace tlscache::keysync {

// Sends one command, returns HAProxy's whole answer (it may hold keys: secret).
absl::StatusOr<SecretBytes> HaproxyCommand(const std::string& socket_path,
                                           absl::string_view command);

// Brings the keys HAProxy holds for `file` to those of `ring` (HaproxyKeys), with as few
// `set ssl tls-key` steps as lead there (one per rotation it is behind, three at most); the
// number of steps. An error says what HAProxy answered.
absl::StatusOr<int> UpdateHaproxyKeys(const std::string& socket_path, const std::string& file,
                                      const client::TicketKeySnapshot& ring);

}  // namespace tlscache::keysync

#endif  // TLSCACHE_TOOLS_KEYSYNC_HAPROXY_RUNTIME_H_
