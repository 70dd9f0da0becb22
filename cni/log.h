// zt-cni's log: one line per event on stderr, with the wall time and level.
//
//   log_info("agent: snapshot sent: 2 of 2 pod(s) taken");
//   2026-12-05T08:32:05.123Z info zt-cni agent: snapshot sent: 2 of 2 pod(s) taken
#pragma once

#include <string>

namespace zt::cni {

void log_info(const std::string& message);
void log_warn(const std::string& message);
void log_error(const std::string& message);

}  // namespace zt::cni
