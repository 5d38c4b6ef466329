#include "common/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace tlscache {

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t max_bytes) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string message = absl::StrCat(path, ": ", std::strerror(err));
    if (err == ENOENT) return absl::NotFoundError(message);
    if (err == EACCES) return absl::PermissionDeniedError(message);
    return absl::InvalidArgumentError(message);
  }
  std::string contents;
  char buf[8192];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", std::strerror(err)));
    }
    if (n == 0) break;
    if (contents.size() + n > max_bytes) {
      close(fd);
      return absl::InvalidArgumentError(absl::StrCat(path, ": larger than ", max_bytes, " bytes"));
    }
    contents.append(buf, n);
  }
  close(fd);
  if (contents.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": empty"));
  return contents;
}

absl::Status WriteSecretFile(const std::string& path, absl::string_view bytes) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::UnavailableError(absl::StrCat(path, ": ", std::strerror(errno)));
  absl::Status status;
  if (fchmod(fd, 0600) != 0) status = absl::UnavailableError(absl::StrCat(path, ": chmod failed"));
  size_t written = 0;
  while (status.ok() && written < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      status = absl::UnavailableError(absl::StrCat(path, ": ", std::strerror(errno)));
    else
      written += static_cast<size_t>(n);
  }
  if (close(fd) != 0 && status.ok()) {
    status = absl::UnavailableError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  return status;
}

absl::Status ReplaceFile(const std::string& path, absl::string_view bytes, unsigned mode,
                         long gid) {
  const std::string temp = absl::StrCat(path, ".tmp.", getpid());
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::UnavailableError(absl::StrCat(temp, ": ", std::strerror(errno)));
  absl::Status status;
  auto fail = [&](absl::string_view what) {
    if (status.ok()) {
      status = absl::UnavailableError(absl::StrCat(path, ": ", what, ": ", std::strerror(errno)));
    }
  };
  if (gid >= 0 && fchown(fd, static_cast<uid_t>(-1), static_cast<gid_t>(gid)) != 0) fail("chown");
  if (fchmod(fd, static_cast<mode_t>(mode)) != 0) fail("chmod");
  size_t written = 0;
  while (status.ok() && written < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      fail("write");
    } else {
      written += static_cast<size_t>(n);
    }
  }
  if (status.ok() && fsync(fd) != 0) fail("fsync");
  if (close(fd) != 0) fail("close");
  if (status.ok() && rename(temp.c_str(), path.c_str()) != 0) fail("rename");
  if (!status.ok()) unlink(temp.c_str());
  return status;
}

}  // namespace tlscache
