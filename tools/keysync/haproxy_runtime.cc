#include "tools/keysync/haproxy_runtime.h"

#include <openssl/crypto.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tools/keysync/key_files.h"

namespace tlscache::keysync {
namespace {

constexpr size_t kMaxAnswer = 1 << 16;
constexpr int kTimeoutSeconds = 2;

bool Same(absl::string_view a, absl::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// The keys `show tls-keys FILE` lists ("N.M BASE64" lines), in its order.
absl::StatusOr<std::vector<SecretBytes>> HeldKeys(const std::string& socket_path,
                                                  const std::string& file) {
  absl::StatusOr<SecretBytes> answer = HaproxyCommand(socket_path, "show tls-keys " + file);
  if (!answer.ok()) return answer.status();
  std::vector<SecretBytes> keys;
  for (absl::string_view line : absl::StrSplit(answer->view(), '\n')) {
    const size_t space = line.find(' ');
    if (space == absl::string_view::npos) continue;
    const absl::string_view id = line.substr(0, space);
    const size_t dot = id.find('.');
    if (dot == absl::string_view::npos || dot == 0 || dot + 1 == id.size()) continue;
    bool digits = true;
    for (char c : id) digits &= (absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '.');
    if (!digits) continue;
    keys.emplace_back(absl::StripAsciiWhitespace(line.substr(space + 1)));
  }
  if (keys.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "HAProxy at ", socket_path, " lists no keys for ", file,
        " (is it the file of a bind line's tls-ticket-keys, and the socket at level admin?)"));
  }
  return keys;
}

}  // namespace

absl::StatusOr<SecretBytes> HaproxyCommand(const std::string& socket_path,
                                           absl::string_view command) {
  sockaddr_un address = {};
  address.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(socket_path, ": too long for a unix socket"));
  }
  std::memcpy(address.sun_path, socket_path.data(), socket_path.size());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(std::strerror(errno));
  const timeval timeout = {kTimeoutSeconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  auto fail = [&](absl::string_view what) {
    const int err = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("HAProxy runtime API ", socket_path, ": ", what, ": ", std::strerror(err)));
  };
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    return fail("connect");
  }
  // One command, answered, then HAProxy closes (the non-interactive mode).
  SecretBytes line(command.size() + 1);
  std::memcpy(line.mutable_data(), command.data(), command.size());
  line.mutable_data()[command.size()] = '\n';
  for (size_t sent = 0; sent < line.size();) {
    const ssize_t n = send(fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("send");
    sent += static_cast<size_t>(n);
  }
  SecretBytes answer(kMaxAnswer);
  size_t got = 0;
  while (got < answer.size()) {
    const ssize_t n = recv(fd, answer.mutable_data() + got, answer.size() - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("receive");
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  close(fd);
  return SecretBytes(answer.data(), got);
}

absl::StatusOr<int> UpdateHaproxyKeys(const std::string& socket_path, const std::string& file,
                                      const client::TicketKeySnapshot& ring) {
  std::vector<SecretBytes> wanted;
  for (const TicketKeyRecord* key : HaproxyKeys(ring)) wanted.push_back(HaproxyKey(*key));
  absl::StatusOr<std::vector<SecretBytes>> held = HeldKeys(socket_path, file);
  if (!held.ok()) return held.status();
  // The fewest steps k such that what HAProxy holds, less its k oldest keys, begins what is
  // wanted: the wanted keys after that are set in order. Held keys of another count: all of them.
  const size_t n = wanted.size();
  const auto leads_after = [&](size_t k) {
    if (held->size() != n) return false;
    for (size_t i = 0; i + k < n; ++i) {
      if (!Same((*held)[i + k].view(), wanted[i].view())) return false;
    }
    return true;
  };
  size_t steps = 0;
  while (steps < n && !leads_after(steps)) ++steps;
  const std::string prefix = absl::StrCat("set ssl tls-key ", file, " ");
  for (size_t i = n - steps; i < n; ++i) {
    SecretBytes command(prefix.size() + wanted[i].size());
    std::memcpy(command.mutable_data(), prefix.data(), prefix.size());
    std::memcpy(command.mutable_data() + prefix.size(), wanted[i].data(), wanted[i].size());
    absl::StatusOr<SecretBytes> answer = HaproxyCommand(socket_path, command.view());
    if (!answer.ok()) return answer.status();
    if (!absl::StrContains(answer->view(), "updated")) {
      // HAProxy's refusal names no key; it is safe to pass on.
      return absl::FailedPreconditionError(
          absl::StrCat("HAProxy refused `set ssl tls-key ", file,
                       "`: ", absl::StripAsciiWhitespace(answer->view())));
    }
  }
  return static_cast<int>(steps);
}

}  // namespace tlscache::keysync
