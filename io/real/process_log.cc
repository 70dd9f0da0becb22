#include "io/real/process_log.h"

#include <errno.h>
#include <unistd.h>

#include <chrono>

namespace zt::io::real {

ProcessLog::ProcessLog(LogFormat format, int fd)
    : format_(format),
      fd_(fd),
      most_verbose_(uint8_t(LogLevel::info)),
      default_level_(uint8_t(LogLevel::info)),
      filter_(std::make_shared<LogFilter>()) {}

bool ProcessLog::enabled(LogLevel level, std::string_view target) const {
  if (level == LogLevel::off || uint8_t(level) < most_verbose_.load(std::memory_order_relaxed)) return false;
  if (!has_targets_.load(std::memory_order_acquire)) return uint8_t(level) >= default_level_.load(std::memory_order_relaxed);
  // Each thread keeps the filter it last saw and takes the lock only when a
  // /logging change made a new one (its generation).
  thread_local struct {
    uint64_t generation = 0;
    std::shared_ptr<const LogFilter> filter;
  } seen;
  const uint64_t generation = generation_.load(std::memory_order_acquire);
  if (seen.generation != generation) {
    std::lock_guard lock(mu_);
    seen.filter = filter_;
    seen.generation = generation_.load(std::memory_order_relaxed);
  }
  return seen.filter->enabled(level, target);
}

void ProcessLog::emit(LogLevel level, std::string_view target, std::string_view message,
                      std::span<const LogField> fields) {
  thread_local std::string line;
  line.clear();
  const WallTime now = std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
  append_log_line(line, format_.load(std::memory_order_relaxed), now, level, target, message, fields);
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere to log to: drop the line, never block the proxy on it
    p += n;
    left -= size_t(n);
  }
  // A line that held a big event gives its memory back.
  if (line.capacity() > 64 * 1024) std::string().swap(line);
}

void ProcessLog::set_filter(LogFilter filter) {
  const uint8_t verbose = uint8_t(filter.most_verbose());
  auto f = std::make_shared<const LogFilter>(std::move(filter));
  const bool targets = f->to_string().find('=') != std::string::npos;
  const uint8_t level = uint8_t(f->level_for(""));
  // Generations are unique across every log of the process, so a thread's
  // cached filter is never taken for another log's.
  static std::atomic<uint64_t> generations{0};
  std::lock_guard lock(mu_);
  filter_ = std::move(f);
  generation_.store(generations.fetch_add(1) + 1, std::memory_order_release);
  most_verbose_.store(verbose, std::memory_order_relaxed);
  default_level_.store(level, std::memory_order_relaxed);
  has_targets_.store(targets, std::memory_order_release);
}

LogFilter ProcessLog::filter() const {
  std::lock_guard lock(mu_);
  return *filter_;
}

}  // namespace zt::io::real
