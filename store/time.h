// Timestamps of the store: UTC microseconds since the Unix epoch, kept as INTEGER
// in SQLite so time filters are index range scans. Text form is ISO 8601 with a
// trailing Z; parsing accepts only well-formed dates and says what it expected.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace t2::store {

using Timestamp = std::chrono::sys_time<std::chrono::microseconds>;

Timestamp now();
inline int64_t to_us(Timestamp t) { return t.time_since_epoch().count(); }
inline Timestamp from_us(int64_t us) { return Timestamp(std::chrono::microseconds(us)); }

// "2024-05-01T12:34:56.789012Z" (microseconds always shown).
std::string format_time(Timestamp t);

// Accepts "2024-05-01", "2024-05-01T12:34[:56[.789]]" with "Z" or "+02:00"
// (no zone means UTC; a space may replace the T), "now", and times relative to
// `reference` such as "-90s", "-15m", "-2h", "-7d". Throws t2::Error otherwise.
Timestamp parse_time(std::string_view text, Timestamp reference);

}  // namespace t2::store
