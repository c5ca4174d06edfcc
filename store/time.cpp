// ISO 8601 formatting and strict parsing for store timestamps (UTC microseconds).
// Calendar math is done by hand (days from civil) so no locale or TZ is involved.
#include "store/time.h"

#include <fmt/format.h>

#include <cctype>
#include <optional>

#include "t2/error.h"

namespace t2::store {
namespace {

constexpr int64_t kUsPerSecond = 1'000'000;
constexpr int64_t kUsPerDay = 86'400 * kUsPerSecond;

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2);
}

bool leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : kDays[m - 1];
}

// A cursor over the text; every read checks bounds and digits.
struct Scanner {
  std::string_view s;
  size_t i = 0;

  bool done() const { return i == s.size(); }
  bool peek(char c) const { return i < s.size() && s[i] == c; }
  bool eat(char c) {
    if (!peek(c)) return false;
    ++i;
    return true;
  }
  std::optional<int64_t> digits(size_t count) {
    if (s.size() - i < count) return std::nullopt;
    int64_t value = 0;
    for (size_t k = 0; k < count; ++k) {
      char c = s[i + k];
      if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
      value = value * 10 + (c - '0');
    }
    i += count;
    return value;
  }
};

[[noreturn]] void bad_time(std::string_view text, std::string_view why) {
  fail("bad time '{}': {}; expected ISO 8601 such as 2024-05-01T12:00:00Z, a date such as "
       "2024-05-01, 'now', or a relative time such as -2h (units s, m, h, d)",
       text, why);
}

Timestamp parse_relative(std::string_view text, Timestamp reference) {
  std::string_view body = text.substr(1);
  if (body.size() < 2 || body.size() > 12) bad_time(text, "relative time has the wrong length");
  int64_t amount = 0;
  for (char c : body.substr(0, body.size() - 1)) {
    if (!std::isdigit(static_cast<unsigned char>(c))) bad_time(text, "amount is not a number");
    amount = amount * 10 + (c - '0');
  }
  int64_t unit = 0;
  switch (body.back()) {
    case 's': unit = kUsPerSecond; break;
    case 'm': unit = 60 * kUsPerSecond; break;
    case 'h': unit = 3600 * kUsPerSecond; break;
    case 'd': unit = kUsPerDay; break;
    default: bad_time(text, "unknown unit");
  }
  if (amount > 100'000 * kUsPerDay / unit) bad_time(text, "too far in the past");
  return reference - std::chrono::microseconds(amount * unit);
}

}  // namespace

Timestamp now() {
  return std::chrono::time_point_cast<std::chrono::microseconds>(
      std::chrono::system_clock::now());
}

std::string format_time(Timestamp t) {
  int64_t us = to_us(t);
  int64_t days = us >= 0 ? us / kUsPerDay : (us - kUsPerDay + 1) / kUsPerDay;
  int64_t rest = us - days * kUsPerDay;
  int64_t y;
  unsigned m, d;
  civil_from_days(days, y, m, d);
  int64_t seconds = rest / kUsPerSecond;
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", y, m, d, seconds / 3600,
                     seconds / 60 % 60, seconds % 60, rest % kUsPerSecond);
}

Timestamp parse_time(std::string_view text, Timestamp reference) {
  if (text == "now") return reference;
  if (!text.empty() && text[0] == '-') return parse_relative(text, reference);

  Scanner in{text};
  auto year = in.digits(4);
  if (!year || !in.eat('-')) bad_time(text, "no YYYY- at the start");
  auto month = in.digits(2);
  if (!month || !in.eat('-')) bad_time(text, "no MM- after the year");
  auto day = in.digits(2);
  if (!day) bad_time(text, "no DD after the month");
  if (*month < 1 || *month > 12) bad_time(text, "month out of range");
  if (*day < 1 || *day > days_in_month(*year, static_cast<unsigned>(*month)))
    bad_time(text, "day out of range for the month");

  int64_t hour = 0, minute = 0, second = 0, micros = 0, offset_minutes = 0;
  if (in.eat('T') || in.eat(' ')) {
    auto h = in.digits(2);
    if (!h || !in.eat(':')) bad_time(text, "no HH: after the date");
    auto mi = in.digits(2);
    if (!mi) bad_time(text, "no MM after the hour");
    hour = *h;
    minute = *mi;
    if (in.eat(':')) {
      auto sec = in.digits(2);
      if (!sec) bad_time(text, "no SS after the minutes");
      second = *sec;
      if (in.eat('.')) {
        int count = 0;
        while (!in.done() && std::isdigit(static_cast<unsigned char>(text[in.i]))) {
          if (count < 6) micros = micros * 10 + (text[in.i] - '0');
          ++count;
          ++in.i;
        }
        if (count == 0) bad_time(text, "no digits after the decimal point");
        for (; count < 6; ++count) micros *= 10;
      }
    }
    if (hour > 23 || minute > 59 || second > 59) bad_time(text, "time of day out of range");
    if (in.eat('Z')) {
    } else if (in.peek('+') || in.peek('-')) {
      int sign = text[in.i++] == '+' ? 1 : -1;
      auto oh = in.digits(2);
      if (!oh || !in.eat(':')) bad_time(text, "zone offset must read +HH:MM");
      auto om = in.digits(2);
      if (!om || *oh > 23 || *om > 59) bad_time(text, "zone offset out of range");
      offset_minutes = sign * (*oh * 60 + *om);
    }
  }
  if (!in.done()) bad_time(text, "unexpected text after the time");

  int64_t days =
      days_from_civil(*year, static_cast<unsigned>(*month), static_cast<unsigned>(*day));
  int64_t us = days * kUsPerDay + ((hour * 60 + minute - offset_minutes) * 60 + second) *
                                      kUsPerSecond + micros;
  return from_us(us);
}

}  // namespace t2::store
