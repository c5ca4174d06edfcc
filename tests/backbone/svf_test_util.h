// Helpers shared by the SVF suites: a per-process temp folder, raw file edits
// for corruption tests, and max-error figures over float arrays.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

namespace t2::test {

inline std::string svf_temp_dir(const std::string& suite) {
  const auto dir = std::filesystem::path(testing::TempDir()) /
                   ("t2_" + suite + "_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

inline std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

// Replaces a file by rename, as a damaged copy would arrive: never in place, since
// a process may have the old file mapped (changing mapped pages under it, or
// truncating it, would change or kill that process, not test the reader).
inline void replace_bytes(const std::string& path, const std::vector<char>& bytes) {
  write_bytes(path + ".new", bytes);
  std::filesystem::rename(path + ".new", path);
}

struct MaxError {
  double abs = 0.0, rel = 0.0;  // rel: max |a-b| / max |b|
};

inline MaxError max_error(std::span<const float> a, std::span<const float> b) {
  MaxError e;
  double scale = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    e.abs = std::max(e.abs, std::fabs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  e.rel = scale > 0 ? e.abs / scale : e.abs;
  return e;
}

}  // namespace t2::test
