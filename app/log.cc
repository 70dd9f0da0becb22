#include "app/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <optional>

namespace zt::app::log {
namespace {

std::atomic<int> g_default{int(Level::info)};
std::atomic<int> g_access{int(Level::info)};
std::mutex g_spec_mu;
std::string g_spec = "info";

std::optional<Level> parse_level(std::string_view s) {
  static constexpr std::pair<std::string_view, Level> kNames[] = {
      {"trace", Level::trace}, {"debug", Level::debug}, {"info", Level::info},
      {"warn", Level::warn},   {"error", Level::error}, {"off", Level::off}};
  for (auto [name, level] : kNames) {
    if (s == name) return level;
  }
  return std::nullopt;
}

std::string_view name_of(Level level) {
  switch (level) {
    case Level::trace: return "trace";
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warn: return "warn";
    case Level::error: return "error";
    case Level::off: return "off";
  }
  return "info";
}

}  // namespace

Result<void> set_spec(std::string_view spec) {
  std::optional<Level> fallback, access;
  std::string_view rest = spec;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view directive = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const size_t eq = directive.find('=');
    const std::optional<Level> level = parse_level(eq == std::string_view::npos ? directive : directive.substr(eq + 1));
    if (!level) return Error(Errc::invalid_argument, "bad log level directive '" + std::string(directive) + "'");
    if (eq == std::string_view::npos) fallback = level;
    else if (directive.substr(0, eq) == "access") access = level;
    // Other targets (upstream's module names) have nothing of ours to filter.
  }
  if (!fallback && !access) return Error(Errc::invalid_argument, "empty log level");
  const Level base = fallback.value_or(Level(g_default.load()));
  g_default = int(base);
  g_access = int(access.value_or(base));
  std::lock_guard lock(g_spec_mu);
  g_spec = std::string(spec);
  return ok();
}

std::string spec() {
  std::lock_guard lock(g_spec_mu);
  return g_spec;
}

bool enabled(Level level, std::string_view target) {
  const int threshold = target == "access" ? g_access.load() : g_default.load();
  return level != Level::off && int(level) >= threshold;
}

void line(Level level, std::string_view msg, std::string_view fields) {
  if (!enabled(level)) return;
  std::string out = "level=" + std::string(name_of(level)) + " msg=\"" + std::string(msg) + "\"";
  if (!fields.empty()) out += " " + std::string(fields);
  out += "\n";
  std::fwrite(out.data(), 1, out.size(), stderr);
}

void raw(Level level, std::string_view target, std::string_view text) {
  if (!enabled(level, target)) return;
  std::string out(text);
  out += "\n";
  std::fwrite(out.data(), 1, out.size(), stderr);
}

}  // namespace zt::app::log
