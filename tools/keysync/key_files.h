// The files a TLS server reads its session-ticket keys from, made from a farm key ring
// (client/ticket_key_follower.h), in each product's exact format:
//
//   nginx    one 80-byte file per key, name | HMAC-SHA256 key | AES-256 key (the layout Envoy
//            reads too), and ssl_session_ticket_keys.conf: an `ssl_session_ticket_key`
//            directive per key, the ACTIVE key first (nginx encrypts with the first and
//            decrypts with all), then the PENDING key, then the keys that only decrypt,
//            newest first. A server block includes the .conf, so the number of keys can
//            change without editing nginx.conf.
//   haproxy  tls-ticket-keys: one base64 line per 80-byte key, name | AES-256 key | HMAC key.
//            HAProxy keeps the last three lines, encrypts with the penultimate and takes the
//            last as the next key: the newest DECRYPT_ONLY key (the ACTIVE one again while the
//            ring has none), the ACTIVE key, the PENDING key.
//   apache   ticket.key: mod_ssl's one 48-byte key, name | 16-byte HMAC secret | AES-128 key,
//            made from the ACTIVE key (its first 16 bytes of each). Apache encrypts and
//            decrypts with that key alone: at every rotation, tickets made under the previous
//            key no longer resume (a full handshake each), and nodes agree again once all
//            have reloaded.
//
// Every byte but the key names is secret: the contents are SecretBytes, wiped when dropped.
#ifndef TLSCACHE_TOOLS_KEYSYNC_KEY_FILES_H_
#define TLSCACHE_TOOLS_KEYSYNC_KEY_FILES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/ticket_key_follower.h"
#include "common/secret_bytes.h"
#include "common/ticket_key.h"

namespace tlscache::keysync {

enum class Format { kNginx, kHaproxy, kApache };

// "nginx", "haproxy" or "apache"; InvalidArgument naming the choices otherwise.
absl::StatusOr<Format> ParseFormat(absl::string_view name);

struct KeyFile {
  std::string name;  // within the keysync's directory
  SecretBytes contents;
};

// The files `ring` becomes; paths inside them (nginx's .conf) are under `dir`.
std::vector<KeyFile> RenderRing(const client::TicketKeySnapshot& ring, Format format,
                                const std::string& dir);

// The keys in the order HAProxy takes them (see above): three, the last one next.
std::vector<const TicketKeyRecord*> HaproxyKeys(const client::TicketKeySnapshot& ring);
// One key as a line of HAProxy's file, or as `set ssl tls-key` takes it: base64, no newline.
SecretBytes HaproxyKey(const TicketKeyRecord& key);

// The file names a format writes for a ring, every other file in the directory being an old
// key's (nginx: "<hex name>.key").
bool IsKeyFileName(absl::string_view file_name, Format format);

}  // namespace tlscache::keysync

#endif  // TLSCACHE_TOOLS_KEYSYNC_KEY_FILES_H_
