// The binary's log: logfmt lines on stderr, filtered by level the way
// upstream's RUST_LOG-style spec is (and /logging?level= changes it):
// "info", "warn", or directives such as "access=off,debug". Two targets
// matter here: "access" (one line per connection) and everything else.
// Thread-safe: workers log, the control thread changes the level.
//
//   app::log::set_spec("info,access=warn");
//   app::log::line(app::log::Level::info, "serving", "workers=2");
//   if (app::log::enabled(Level::info, "access")) ...
#pragma once

#include <string>
#include <string_view>

#include "io/result.h"

namespace zt::app::log {

enum class Level : int { trace = 0, debug, info, warn, error, off };

// Sets the filter from a spec; an error (nothing changed) names the bad part.
Result<void> set_spec(std::string_view spec);
std::string spec();
bool enabled(Level level, std::string_view target = "");

// "level=<level> msg="<msg>" <fields>" on stderr, one write per line so
// threads never interleave, when `level` is enabled for the default target.
void line(Level level, std::string_view msg, std::string_view fields = "");
// A preformatted line for `target` (the access log's own format).
void raw(Level level, std::string_view target, std::string_view text);

}  // namespace zt::app::log
