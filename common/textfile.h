// Metrics for node_exporter's textfile collector: a file of Prometheus text that a process
// without a port of its own (a TLS server's plugin, a keysync) keeps current. The file is
// replaced in one step (a scrape never reads half of it) and carries
// tlscache_textfile_updated_seconds, the time it was written: a file whose writer died keeps
// its old time, which an alert compares with time().
#ifndef TLSCACHE_COMMON_TEXTFILE_H_
#define TLSCACHE_COMMON_TEXTFILE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace tlscache {

struct TextfileSample {
  std::string name;  // tlscache_...
  std::string help;
  bool counter = false;  // else a gauge
  double value = 0;
  // Besides the file's own; samples of one name go together, one HELP for them.
  std::vector<std::pair<std::string, std::string>> labels;
};

using TextfileLabels = std::vector<std::pair<std::string, std::string>>;

// The samples (and tlscache_textfile_updated_seconds at `now`), every one with `labels`.
std::string RenderTextfile(const TextfileLabels& labels, const std::vector<TextfileSample>& samples,
                           absl::Time now);

// Replaces `path` with RenderTextfile(...) (mode 0644: metrics are not secret).
absl::Status WriteTextfile(const std::string& path, const TextfileLabels& labels,
                           const std::vector<TextfileSample>& samples);

}  // namespace tlscache

#endif  // TLSCACHE_COMMON_TEXTFILE_H_
