#include "common/textfile.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/files.h"

namespace tlscache {
namespace {

std::string Escape(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

std::string RenderTextfile(const TextfileLabels& labels, const std::vector<TextfileSample>& samples,
                           absl::Time now) {
  std::string out;
  std::string last;  // the name whose HELP was written last
  auto add = [&](const TextfileSample& s) {
    if (s.name != last) {
      absl::StrAppend(&out, "# HELP ", s.name, " ", s.help, "\n# TYPE ", s.name, " ",
                      s.counter ? "counter" : "gauge", "\n");
      last = s.name;
    }
    std::string label_set;
    for (const TextfileLabels* set : {&labels, &s.labels}) {
      for (const auto& [name, value] : *set) {
        absl::StrAppend(&label_set, label_set.empty() ? "{" : ",", name, "=\"", Escape(value),
                        "\"");
      }
    }
    if (!label_set.empty()) label_set += "}";
    absl::StrAppend(&out, s.name, label_set, " ", absl::StrFormat("%.17g", s.value), "\n");
  };
  for (const TextfileSample& s : samples) add(s);
  add({"tlscache_textfile_updated_seconds",
       "when this file was last written (Unix seconds); older than a minute: its writer stopped",
       false,
       absl::ToDoubleSeconds(now - absl::UnixEpoch()),
       {}});
  return out;
}

absl::Status WriteTextfile(const std::string& path, const TextfileLabels& labels,
                           const std::vector<TextfileSample>& samples) {
  return ReplaceFile(path, RenderTextfile(labels, samples, absl::Now()), 0644);
}

}  // namespace tlscache
