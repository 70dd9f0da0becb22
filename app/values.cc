#include "app/values.h"

#include <array>
#include <cmath>
#include <cstdlib>
#include <string>

namespace zt::app {
namespace {

constexpr double kDurationMaxSeconds = 10.0 * 365 * 24 * 3600;

struct DurationUnit {
  std::string_view name;
  double seconds;
};

// Longest names first so "ms" is not read as "m" followed by garbage.
constexpr std::array<DurationUnit, 8> kDurationUnits{{
    {"ns", 1e-9},
    {"us", 1e-6},
    {"\xC2\xB5s", 1e-6},  // µs
    {"ms", 1e-3},
    {"s", 1.0},
    {"m", 60.0},
    {"h", 3600.0},
    {"d", 86400.0},
}};

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_space(char c) { return c == ' ' || c == '\t'; }

// Reads "123" or "1.5" at the front of `text`; advances it past the number.
bool take_number(std::string_view& text, double& value) {
  size_t i = 0;
  while (i < text.size() && is_digit(text[i])) ++i;
  size_t int_digits = i;
  size_t frac_digits = 0;
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && is_digit(text[i])) ++i, ++frac_digits;
  }
  if (int_digits == 0 && frac_digits == 0) return false;
  // strtod, not stod: an absurdly long number becomes HUGE_VAL, no throw.
  value = std::strtod(std::string(text.substr(0, i)).c_str(), nullptr);
  text.remove_prefix(i);
  return true;
}

// Reads a unit name at the front of `text`; a missing unit means seconds,
// but only for a lone number (upstream reads "10" as ten seconds).
bool take_unit(std::string_view& text, double& seconds) {
  size_t n = 0;
  while (n < text.size() && !is_digit(text[n]) && !is_space(text[n]) && text[n] != '.') ++n;
  std::string_view name = text.substr(0, n);
  for (const DurationUnit& unit : kDurationUnits) {
    if (unit.name == name) {
      seconds = unit.seconds;
      text.remove_prefix(n);
      return true;
    }
  }
  return false;
}

Error invalid(std::string reason) { return Error(Errc::invalid_argument, std::move(reason)); }

}  // namespace

Result<Duration> parse_duration(std::string_view text) {
  const char* reason = "not a duration (examples: 500ms, 10s, 5m, 24h, 1h30m)";
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  if (text.empty()) return invalid(reason);

  double number = 0;
  std::string_view rest = text;
  if (take_number(rest, number) && rest.empty()) {
    if (number > kDurationMaxSeconds) return invalid("duration too long (at most 10 years)");
    return Duration(static_cast<int64_t>(std::llround(number * 1e9)));
  }

  double total_seconds = 0;
  rest = text;
  while (!rest.empty()) {
    double unit_seconds = 0;
    if (!take_number(rest, number) || !take_unit(rest, unit_seconds)) return invalid(reason);
    total_seconds += number * unit_seconds;
    if (total_seconds > kDurationMaxSeconds) return invalid("duration too long (at most 10 years)");
    while (!rest.empty() && is_space(rest.front())) rest.remove_prefix(1);
  }
  return Duration(static_cast<int64_t>(std::llround(total_seconds * 1e9)));
}

Result<bool> parse_bool(std::string_view text) {
  if (text == "true") return true;
  if (text == "false") return false;
  return invalid("not a boolean (true or false)");
}

Result<uint64_t> parse_unsigned(std::string_view text, uint64_t value_max) {
  if (text.empty()) return invalid("not an integer");
  uint64_t value = 0;
  for (char c : text) {
    if (!is_digit(c)) return invalid("not an integer");
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (digit > value_max || value > (value_max - digit) / 10) {
      return invalid("out of range (at most " + std::to_string(value_max) + ")");
    }
    value = value * 10 + digit;
  }
  return value;
}

}  // namespace zt::app
