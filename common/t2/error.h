// t2::Error — the one exception type thrown inside t2's layers. It carries a
// message that says what was expected, what was found and, where known, the fix.
// Edges (CLI, HTTP) catch it once and turn it into an exit code or a JSON error.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace t2 {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws t2::Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace t2
