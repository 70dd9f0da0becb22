#include "io/log.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <iterator>

namespace zt {
namespace {

bool needs_escape(char c) { return c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20; }

void append_number(std::string& out, uint64_t n) {
  char digits[24];
  const auto end = std::to_chars(std::begin(digits), std::end(digits), n).ptr;
  out.append(digits, static_cast<size_t>(end - digits));
}

void append_number(std::string& out, int64_t n) {
  char digits[24];
  const auto end = std::to_chars(std::begin(digits), std::end(digits), n).ptr;
  out.append(digits, static_cast<size_t>(end - digits));
}

void append_padded(std::string& out, int64_t n, int width) {
  char digits[24];
  const auto end = std::to_chars(std::begin(digits), std::end(digits), n).ptr;
  for (int pad = width - static_cast<int>(end - digits); pad > 0; --pad) out += '0';
  out.append(digits, static_cast<size_t>(end - digits));
}

// Drops upstream's crate prefix so its directives ("ztunnel::proxy=debug")
// and ours name the same targets.
std::string_view strip_crate(std::string_view target) {
  constexpr std::string_view kCrate = "ztunnel::";
  return target.starts_with(kCrate) ? target.substr(kCrate.size()) : target;
}

bool covers(std::string_view directive, std::string_view target) {
  return target.starts_with(directive) &&
         (target.size() == directive.size() || target.substr(directive.size()).starts_with("::"));
}

}  // namespace

std::string_view to_string(LogLevel level) {
  switch (level) {
    case LogLevel::trace: return "trace";
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
    case LogLevel::off: return "off";
  }
  return "info";
}

std::optional<LogLevel> parse_log_level(std::string_view name) {
  for (LogLevel l : {LogLevel::trace, LogLevel::debug, LogLevel::info, LogLevel::warn, LogLevel::error, LogLevel::off}) {
    if (name == to_string(l)) return l;
  }
  // tracing's names are case-insensitive; "warning" is not one of them.
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](char c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; });
  if (lower != name) return parse_log_level(lower);
  return std::nullopt;
}

void append_quoted(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  // Runs of plain bytes are appended whole: the access log writes a dozen
  // fields per connection.
  while (!s.empty()) {
    const size_t plain = static_cast<size_t>(std::find_if(s.begin(), s.end(), needs_escape) - s.begin());
    out.append(s.data(), plain);
    if (plain == s.size()) break;
    const char c = s[plain];
    s.remove_prefix(plain + 1);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        // \u00XX is both JSON and what logfmt readers take for a control byte.
        out += "\\u00";
        out += kHex[static_cast<unsigned char>(c) >> 4];
        out += kHex[c & 0xf];
    }
  }
  out += '"';
}

void LogField::append_logfmt(std::string& out) const {
  switch (kind_) {
    case Kind::text: append_quoted(out, text_); return;
    case Kind::number: append_number(out, u_); return;
    case Kind::signed_number: append_number(out, i_); return;
    case Kind::boolean: out += u_ ? "true" : "false"; return;
    case Kind::endpoint: out += ep_->to_string(); return;
    case Kind::address: out += ip_->to_string(); return;
    case Kind::duration:
      out += '"';
      append_number(out, i_);
      out += "ms\"";
      return;
  }
}

void LogField::append_json(std::string& out) const {
  switch (kind_) {
    case Kind::endpoint:
    case Kind::address:
      out += '"';
      append_logfmt(out);
      out += '"';
      return;
    default: append_logfmt(out); return;
  }
}

void append_rfc3339_micros(std::string& out, WallTime t) {
  using namespace std::chrono;
  const auto micros = floor<microseconds>(t);
  const auto days = floor<std::chrono::days>(micros);
  const year_month_day ymd{days};
  const hh_mm_ss<microseconds> hms{micros - days};
  append_padded(out, int(ymd.year()), 4);
  out += '-';
  append_padded(out, unsigned(ymd.month()), 2);
  out += '-';
  append_padded(out, unsigned(ymd.day()), 2);
  out += 'T';
  append_padded(out, hms.hours().count(), 2);
  out += ':';
  append_padded(out, hms.minutes().count(), 2);
  out += ':';
  append_padded(out, hms.seconds().count(), 2);
  out += '.';
  append_padded(out, hms.subseconds().count(), 6);
  out += 'Z';
}

std::string format_rfc3339_micros(WallTime t) {
  std::string out;
  out.reserve(27);
  append_rfc3339_micros(out, t);
  return out;
}

void append_log_line(std::string& out, LogFormat format, WallTime time, LogLevel level, std::string_view target,
                     std::string_view message, std::span<const LogField> fields) {
  if (format == LogFormat::json) {
    out += "{\"level\":\"";
    out += to_string(level);
    out += "\",\"time\":\"";
    append_rfc3339_micros(out, time);
    out += "\",\"scope\":";
    append_quoted(out, target);
    out += ",\"message\":";
    append_quoted(out, message);
    for (const LogField& f : fields) {
      out += ',';
      append_quoted(out, f.key());
      out += ':';
      f.append_json(out);
    }
    out += "}\n";
    return;
  }
  append_rfc3339_micros(out, time);
  out += '\t';
  out += to_string(level);
  out += '\t';
  out += target;
  out += '\t';
  out += message;
  bool first = true;
  for (const LogField& f : fields) {
    out += first ? '\t' : ' ';
    first = false;
    out += f.key();
    out += '=';
    f.append_logfmt(out);
  }
  out += '\n';
}

Result<LogFilter> LogFilter::parse(std::string_view spec) {
  LogFilter f;
  std::string_view rest = spec;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string_view d = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    while (!d.empty() && d.front() == ' ') d.remove_prefix(1);
    while (!d.empty() && d.back() == ' ') d.remove_suffix(1);
    if (d.empty()) continue;
    const size_t eq = d.find('=');
    if (eq == std::string_view::npos) {
      if (auto level = parse_log_level(d)) {
        f.default_ = *level;
        continue;
      }
      // A bare target means every level of it, as in RUST_LOG.
      if (d.find_first_of(" \"") != std::string_view::npos) {
        return Error(Errc::invalid_argument, "bad log directive '" + std::string(d) + "'");
      }
      d = strip_crate(d);
      std::erase_if(f.targets_, [&](const auto& t) { return t.first == d; });
      f.targets_.emplace_back(std::string(d), LogLevel::trace);
      continue;
    }
    const std::string_view target = strip_crate(d.substr(0, eq));
    const auto level = parse_log_level(d.substr(eq + 1));
    if (target.empty() || !level || target.find_first_of(" \"") != std::string_view::npos) {
      return Error(Errc::invalid_argument, "bad log directive '" + std::string(d) + "'");
    }
    std::erase_if(f.targets_, [&](const auto& t) { return t.first == target; });
    f.targets_.emplace_back(std::string(target), *level);
  }
  f.recompute();
  return f;
}

void LogFilter::recompute() {
  std::sort(targets_.begin(), targets_.end());
  most_verbose_ = default_.value_or(LogLevel::info);
  for (const auto& [target, level] : targets_) most_verbose_ = std::min(most_verbose_, level);
}

LogLevel LogFilter::level_for(std::string_view target) const {
  LogLevel level = default_.value_or(LogLevel::info);
  size_t best_len = 0;
  bool found = false;
  for (const auto& [t, l] : targets_) {
    if (covers(t, target) && (!found || t.size() > best_len)) {
      found = true;
      best_len = t.size();
      level = l;
    }
  }
  return level;
}

LogFilter LogFilter::combined(const LogFilter& later) const {
  LogFilter f = *this;
  if (later.default_) f.default_ = later.default_;
  for (const auto& directive : later.targets_) {
    std::erase_if(f.targets_, [&](const auto& t) { return t.first == directive.first; });
    f.targets_.push_back(directive);
  }
  f.recompute();
  return f;
}

std::string LogFilter::to_string() const {
  std::string out(zt::to_string(default_.value_or(LogLevel::info)));
  for (const auto& [target, level] : targets_) {
    out += ',';
    out += target;
    out += '=';
    out += zt::to_string(level);
  }
  return out;
}

}  // namespace zt
