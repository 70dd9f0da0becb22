#include "cni/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace zt::cni {
namespace {

void log_line(const char* level, const std::string& message) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t secs = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  std::fprintf(stderr, "%s.%03dZ %s zt-cni %s\n", when, int(ms), level, message.c_str());
  std::fflush(stderr);
}

}  // namespace

void log_info(const std::string& message) { log_line("info", message); }
void log_warn(const std::string& message) { log_line("warn", message); }
void log_error(const std::string& message) { log_line("error", message); }

}  // namespace zt::cni
