// node_exporter textfiles: one HELP and TYPE per metric, the file's labels on every sample
// (escaped), and the time the file was written.
#include "common/textfile.h"

#include "gtest/gtest.h"

namespace tlscache {
namespace {

TEST(TextfileTest, SamplesOfOneNameShareAHeaderAndCarryTheFilesLabels) {
  const std::string text = RenderTextfile(
      {{"pid", "12"}, {"program", "ng\"inx"}},
      {{"tlscache_plugin_lookups_total", "lookups by outcome", true, 3, {{"outcome", "hit"}}},
       {"tlscache_plugin_lookups_total", "lookups by outcome", true, 4, {{"outcome", "miss"}}},
       {"tlscache_plugin_contexts", "contexts", false, 2, {}}},
      absl::FromUnixSeconds(1700000000));
  EXPECT_EQ(text,
            "# HELP tlscache_plugin_lookups_total lookups by outcome\n"
            "# TYPE tlscache_plugin_lookups_total counter\n"
            "tlscache_plugin_lookups_total{pid=\"12\",program=\"ng\\\"inx\",outcome=\"hit\"} 3\n"
            "tlscache_plugin_lookups_total{pid=\"12\",program=\"ng\\\"inx\",outcome=\"miss\"} 4\n"
            "# HELP tlscache_plugin_contexts contexts\n"
            "# TYPE tlscache_plugin_contexts gauge\n"
            "tlscache_plugin_contexts{pid=\"12\",program=\"ng\\\"inx\"} 2\n"
            "# HELP tlscache_textfile_updated_seconds when this file was last written (Unix "
            "seconds); older than a minute: its writer stopped\n"
            "# TYPE tlscache_textfile_updated_seconds gauge\n"
            "tlscache_textfile_updated_seconds{pid=\"12\",program=\"ng\\\"inx\"} 1700000000\n");
}

}  // namespace
}  // namespace tlscache
