// Reading the small files an operator points tlscache at (PEM certificates and keys).
#ifndef TLSCACHE_COMMON_FILES_H_
#define TLSCACHE_COMMON_FILES_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tlscache {

// The whole file, or an error naming the path: NotFound, PermissionDenied, or
// InvalidArgument when it is empty or larger than `max_bytes`.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          size_t max_bytes = size_t{1} << 20);

// Writes `bytes` to `path`, created or truncated, readable by its owner only (0600).
absl::Status WriteSecretFile(const std::string& path, absl::string_view bytes);

// Replaces `path` with a file holding `bytes`, in one step: a reader sees the old file or the
// new one, never a part. The file gets `mode`, and the group `gid` unless it is -1. Written
// beside `path` first, then renamed over it.
absl::Status ReplaceFile(const std::string& path, absl::string_view bytes, unsigned mode,
                         long gid = -1);

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_FILES_H_
