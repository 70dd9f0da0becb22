// The binary's logging settings: RUST_LOG (the filter, upstream's syntax;
// default "info") and LOG_FORMAT ("plain", upstream's tab-separated lines,
// or "json"), read once at start; /logging changes the filter later, and
// ?reset goes back to what RUST_LOG said.
//
//   auto logging = Logging::from_environment(env);     // exit 2 on a bad value
//   io::real::ProcessLog log(logging->format());
//   logging->apply(log);
//   logging->change(log, "hbone=debug", /*reset=*/false);
#pragma once

#include <string>
#include <string_view>

#include "app/config.h"
#include "io/log.h"
#include "io/real/process_log.h"
#include "io/result.h"

namespace zt::app {

class Logging {
 public:
  // Errors name the variable and the bad value.
  static Result<Logging> from_environment(const EnvMap& env);

  LogFormat format() const { return format_; }
  const LogFilter& initial() const { return initial_; }
  // Sets the log's filter to the start-up one.
  void apply(io::real::ProcessLog& log) const { log.set_filter(initial_); }
  // /logging: `directives` on top of the current filter, or with `reset` on
  // top of the start-up one.
  Result<void> change(io::real::ProcessLog& log, std::string_view directives, bool reset) const;

 private:
  LogFormat format_ = LogFormat::plain;
  LogFilter initial_;
};

}  // namespace zt::app
