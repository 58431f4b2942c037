// A directory under the system's temporary directory, unique to the test process, removed when
// the object goes: where a test's RocksDB state lives.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

namespace faultline::stream {

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("fl_state_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    std::filesystem::remove_all(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string path() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

}  // namespace faultline::stream
