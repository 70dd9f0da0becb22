// Logging from every layer: core, h2, tls and xds log through the `Log` in
// their Env, so the simulator logs deterministically (time from its clock)
// and the binary logs to one writer (io/real/process_log.h).
//
// An event has a level, a target (the component: "hbone::pool",
// "proxy::outbound", "access", ...), a message and key=value fields. A
// filter in RUST_LOG's syntax picks what is written: "info",
// "hbone=debug,access=off"; a directive for "hbone" covers "hbone::pool".
// Two renderings, as upstream ztunnel writes them:
//   2026-12-04T15:04:47.123456Z\tinfo\taccess\tconnection complete\tsrc.addr=10.0.0.1:4000 dst.workload="echo"
//   {"level":"info","time":"2026-12-04T15:04:47.123456Z","scope":"access","message":"connection complete",...}
// Text values are quoted and escaped (valid logfmt); numbers, booleans and
// addresses are bare.
//
//   ZT_LOG(env.log, debug, "hbone::pool", "connection opened", {"peer", key.dst}, {"streams_max", n});
//
// The macro evaluates its fields only when the event is enabled, so a
// disabled debug event costs one call to enabled().
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <type_traits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/address.h"
#include "io/result.h"
#include "io/time.h"

namespace zt {

enum class LogLevel : uint8_t { trace, debug, info, warn, error, off };
std::string_view to_string(LogLevel level);
std::optional<LogLevel> parse_log_level(std::string_view name);

// One key=value pair of an event. It refers to the caller's data (strings,
// endpoints), which lives until the end of the statement that logs.
class LogField {
 public:
  enum class Kind : uint8_t { text, number, signed_number, boolean, endpoint, address, duration };

  LogField() = default;
  LogField(std::string_view key, std::string_view text) : key_(key), kind_(Kind::text), text_(text) {}
  LogField(std::string_view key, const std::string& text) : LogField(key, std::string_view(text)) {}
  LogField(std::string_view key, const char* text) : LogField(key, std::string_view(text)) {}
  LogField(std::string_view key, bool b) : key_(key), kind_(Kind::boolean), u_(b) {}
  LogField(std::string_view key, const Endpoint& ep) : key_(key), kind_(Kind::endpoint), ep_(&ep) {}
  LogField(std::string_view key, const IpAddr& ip) : key_(key), kind_(Kind::address), ip_(&ip) {}
  // Rendered as text in milliseconds, "12ms", as upstream's durations.
  LogField(std::string_view key, Duration d) : key_(key), kind_(Kind::duration), i_(to_ms(d)) {}
  template <typename Int>
    requires(std::is_integral_v<Int> && !std::is_same_v<Int, bool>)
  LogField(std::string_view key, Int n) : key_(key) {
    if constexpr (std::is_signed_v<Int>) {
      kind_ = Kind::signed_number;
      i_ = n;
    } else {
      kind_ = Kind::number;
      u_ = n;
    }
  }

  std::string_view key() const { return key_; }
  Kind kind() const { return kind_; }
  // Appends the value as logfmt (text quoted) or as a JSON value.
  void append_logfmt(std::string& out) const;
  void append_json(std::string& out) const;

 private:
  std::string_view key_;
  Kind kind_ = Kind::text;
  std::string_view text_;
  uint64_t u_ = 0;
  int64_t i_ = 0;
  const Endpoint* ep_ = nullptr;
  const IpAddr* ip_ = nullptr;
};

using LogFields = std::initializer_list<LogField>;

enum class LogFormat : uint8_t { plain, json };

// "2026-12-04T15:04:47.123456Z": RFC 3339, UTC, microseconds.
std::string format_rfc3339_micros(WallTime t);
void append_rfc3339_micros(std::string& out, WallTime t);
// One line (ending in '\n') in either format, appended to `out`.
void append_log_line(std::string& out, LogFormat format, WallTime time, LogLevel level, std::string_view target,
                     std::string_view message, std::span<const LogField> fields);
inline std::span<const LogField> as_span(LogFields fields) { return {fields.begin(), fields.size()}; }
// Quoted and escaped: backslash, double quote and control bytes.
void append_quoted(std::string& out, std::string_view text);

// Which events are written: a default level and per-target levels, in
// RUST_LOG's syntax ("info,hbone=debug,access=off"). A target directive
// covers the target and everything under it ("hbone" covers "hbone::pool");
// the longest matching one wins, later directives replace earlier ones for
// the same target. Upstream's "ztunnel::" prefix is accepted and dropped.
class LogFilter {
 public:
  LogFilter() = default;  // "info"
  // Errc::invalid_argument naming the bad directive.
  static Result<LogFilter> parse(std::string_view spec);

  LogLevel level_for(std::string_view target) const;
  bool enabled(LogLevel level, std::string_view target) const {
    return level != LogLevel::off && level >= most_verbose_ && level >= level_for(target);
  }
  // No event below this level is enabled for any target: the fast check.
  LogLevel most_verbose() const { return most_verbose_; }
  // This filter with `later`'s directives applied on top (/logging?level=).
  LogFilter combined(const LogFilter& later) const;
  // The directives, default first: "info,access=off,hbone=debug".
  std::string to_string() const;

 private:
  void recompute();
  std::optional<LogLevel> default_;  // unset: info
  std::vector<std::pair<std::string, LogLevel>> targets_;  // sorted by target
  LogLevel most_verbose_ = LogLevel::info;
};

// Where events go. Implementations: io/real/process_log.h (the binary: one
// writer for all threads), io/sim (per host, on the simulated clock), NoLog.
class Log {
 public:
  virtual ~Log() = default;
  virtual bool enabled(LogLevel level, std::string_view target) const = 0;
  // Writes one event (the caller checked enabled()).
  virtual void emit(LogLevel level, std::string_view target, std::string_view message,
                    std::span<const LogField> fields) = 0;
  void write(LogLevel level, std::string_view target, std::string_view message, LogFields fields) {
    emit(level, target, message, as_span(fields));
  }
};

class NoLog final : public Log {
 public:
  bool enabled(LogLevel, std::string_view) const override { return false; }
  void emit(LogLevel, std::string_view, std::string_view, std::span<const LogField>) override {}
};

}  // namespace zt

#define ZT_LOG(log, level, target, message, ...)                                  \
  do {                                                                            \
    if ((log).enabled(::zt::LogLevel::level, target))                             \
      (log).write(::zt::LogLevel::level, target, message, {__VA_ARGS__});         \
  } while (0)
