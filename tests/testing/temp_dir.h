// TempDir: a fresh directory under /tmp for one test's files, removed with everything in it
// when the object goes.
#ifndef TLSCACHE_TESTS_TESTING_TEMP_DIR_H_
#define TLSCACHE_TESTS_TESTING_TEMP_DIR_H_

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace tlscache::testing {

class TempDir {
 public:
  // /tmp/tlscache-<name>-XXXXXX; path() is empty if it could not be made.
  explicit TempDir(const std::string& name) {
    std::string pattern = "/tmp/tlscache-" + name + "-XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Path(const std::string& file) const { return path_ + "/" + file; }
  // Writes `text` to the file `file` in the directory, replacing it.
  void Write(const std::string& file, const std::string& text) const {
    std::ofstream(Path(file)) << text;
  }

 private:
  std::string path_;
};

}  // namespace tlscache::testing

#endif  // TLSCACHE_TESTS_TESTING_TEMP_DIR_H_
