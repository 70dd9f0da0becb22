// The binary's log: one writer for every thread, on the wall clock, to a
// file descriptor (standard output, as upstream ztunnel writes).
//
// The filter changes at run time (/logging) while workers log: enabled()
// reads an atomic threshold first, so a disabled debug event on the data
// path costs one relaxed load; events at or above it are decided by the
// default level alone when the filter names no target, else by a copy of
// the filter each thread keeps (re-read, under the lock, only after a
// change). Each line is one write(2),
// so lines of concurrent threads never interleave.
//
//   ProcessLog log(LogFormat::plain);
//   log.set_filter(*LogFilter::parse("info,hbone=debug"));
//   ZT_LOG(log, info, "app", "ztunnel starting", {"version", "0.1.0"});
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "io/log.h"

namespace zt::io::real {

class ProcessLog final : public Log {
 public:
  explicit ProcessLog(LogFormat format = LogFormat::plain, int fd = 1);

  bool enabled(LogLevel level, std::string_view target) const override;
  void emit(LogLevel level, std::string_view target, std::string_view message,
            std::span<const LogField> fields) override;

  void set_filter(LogFilter filter);
  LogFilter filter() const;
  void set_format(LogFormat format) { format_.store(format, std::memory_order_relaxed); }

 private:
  std::atomic<LogFormat> format_;
  const int fd_;
  std::atomic<uint8_t> most_verbose_;
  // Without target directives the default level decides alone: no lock
  // (the common case, access logs at info on every connection).
  std::atomic<bool> has_targets_ = false;
  std::atomic<uint8_t> default_level_;
  std::atomic<uint64_t> generation_ = 0;  // of filter_, for the threads' cached copies
  mutable std::mutex mu_;
  std::shared_ptr<const LogFilter> filter_;
};

}  // namespace zt::io::real
