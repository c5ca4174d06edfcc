// Named spdlog loggers (`backbone`, `adapt`, `sched`, `store`, `coord`, `worker`,
// `cli`) that write to stderr with the MPI rank in every line. Call set_rank()
// once at start; loggers made before or after it carry the same rank.
#pragma once

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace t2::log {

inline int& rank_slot() {
  static int rank = 0;
  return rank;
}

inline std::string pattern() {
  return "[%H:%M:%S.%e] [r" + std::to_string(rank_slot()) + " %n] [%^%l%$] %v";
}

// Sets the rank shown in every line and re-applies the pattern to all loggers.
inline void set_rank(int rank) {
  rank_slot() = rank;
  spdlog::set_pattern(pattern());
}

// Returns the named logger, creating it (stderr, rank pattern) on first use.
inline std::shared_ptr<spdlog::logger> get(const std::string& name) {
  if (auto existing = spdlog::get(name)) return existing;
  try {
    auto logger = spdlog::stderr_color_mt(name);
    logger->set_pattern(pattern());
    return logger;
  } catch (const spdlog::spdlog_ex&) {
    return spdlog::get(name);  // another thread registered it first
  }
}

}  // namespace t2::log
