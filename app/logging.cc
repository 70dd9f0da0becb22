#include "app/logging.h"

namespace zt::app {

Result<Logging> Logging::from_environment(const EnvMap& env) {
  Logging out;
  if (auto it = env.find("RUST_LOG"); it != env.end() && !it->second.empty()) {
    auto filter = LogFilter::parse(it->second);
    if (!filter) return Error(Errc::invalid_argument, "RUST_LOG=\"" + it->second + "\": " + filter.error().detail);
    out.initial_ = *filter;
  }
  if (auto it = env.find("LOG_FORMAT"); it != env.end() && !it->second.empty()) {
    if (it->second == "json") out.format_ = LogFormat::json;
    else if (it->second != "plain")
      return Error(Errc::invalid_argument, "LOG_FORMAT=\"" + it->second + "\": must be plain or json");
  }
  return out;
}

Result<void> Logging::change(io::real::ProcessLog& log, std::string_view directives, bool reset) const {
  auto added = LogFilter::parse(directives);
  if (!added) return added.error();
  const LogFilter base = reset ? initial_ : log.filter();
  log.set_filter(base.combined(*added));
  return ok();
}

}  // namespace zt::app
