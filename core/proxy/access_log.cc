#include "core/proxy/access_log.h"

#include <array>
#include <span>

namespace zt::core::proxy {

std::string_view to_string(Direction d) { return d == Direction::outbound ? "outbound" : "inbound"; }

ConnectionRecord start_record(Direction direction, Endpoint src, const mesh::Workload* source,
                              std::string source_identity, Endpoint dst, const mesh::Workload* destination,
                              bool mutual_tls) {
  ConnectionRecord r;
  r.direction = direction;
  r.src = src;
  r.dst = dst;
  if (source) {
    r.src_workload = source->name;
    r.src_namespace = source->ns;
  }
  if (destination) {
    r.dst_workload = destination->name;
    r.dst_namespace = destination->ns;
  }
  if (mutual_tls) {
    r.src_identity = std::move(source_identity);
    if (destination) r.dst_identity = destination->identity().to_string();
  }
  return r;
}

namespace {

// Upstream's fields, in upstream's order; unknown ones are left out.
template <typename Fn>
void with_fields(const ConnectionRecord& r, Fn&& fn) {
  std::array<LogField, 16> fields;
  size_t n = 0;
  auto text = [&](std::string_view key, const std::string& value) {
    if (!value.empty()) fields[n++] = LogField(key, value);
  };
  fields[n++] = LogField("src.addr", r.src);
  text("src.workload", r.src_workload);
  text("src.namespace", r.src_namespace);
  text("src.identity", r.src_identity);
  fields[n++] = LogField("dst.addr", r.dst);
  text("dst.hbone_addr", r.hbone_addr);
  text("dst.service", r.dst_service);
  text("dst.workload", r.dst_workload);
  text("dst.namespace", r.dst_namespace);
  text("dst.identity", r.dst_identity);
  fields[n++] = LogField("direction", to_string(r.direction));
  fields[n++] = LogField("bytes_sent", r.bytes_sent);
  fields[n++] = LogField("bytes_recv", r.bytes_recv);
  fields[n++] = LogField("duration", r.duration);
  text("response_flags", r.response_flags);
  text("error", r.error);
  fn(std::span<const LogField>(fields.data(), n));
}

}  // namespace

LogLevel access_log_level(const ConnectionRecord& r) { return r.ok() ? LogLevel::info : LogLevel::error; }

void log_access(Log& log, const ConnectionRecord& r) {
  const LogLevel level = access_log_level(r);
  if (!log.enabled(level, kAccessLogTarget)) return;
  // Upstream says "connection complete" either way; the level and error= tell.
  with_fields(r, [&](std::span<const LogField> fields) { log.emit(level, kAccessLogTarget, "connection complete", fields); });
}

std::string format_access_log(const ConnectionRecord& r) {
  std::string out;
  out.reserve(512);  // a typical HBONE record is 350-450 bytes: one allocation
  with_fields(r, [&](std::span<const LogField> fields) {
    for (const LogField& f : fields) {
      if (!out.empty()) out += ' ';
      out += f.key();
      out += '=';
      f.append_logfmt(out);
    }
  });
  return out;
}

}  // namespace zt::core::proxy
