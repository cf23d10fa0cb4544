// A directory of its own for one test, made under the system's temporary
// directory and removed with everything in it when the object goes, however
// the test ends.
#ifndef TESTS_SUPPORT_TEMP_DIR_H_
#define TESTS_SUPPORT_TEMP_DIR_H_

#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace convocore::testing {

class TempDir {
 public:
  // `prefix` names the directory after its test, for whoever finds one left
  // by a killed run.
  explicit TempDir(const std::string& prefix) {
    std::string path =
        (std::filesystem::temp_directory_path() / (prefix + ".XXXXXX"))
            .string();
    if (mkdtemp(path.data()) == nullptr) {
      throw std::runtime_error("mkdtemp " + path + ": " +
                               std::strerror(errno));
    }
    path_ = path;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace convocore::testing

#endif  // TESTS_SUPPORT_TEMP_DIR_H_
