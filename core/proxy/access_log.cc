#include "core/proxy/access_log.h"

namespace zt::core::proxy {
namespace {

void quoted(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += "\\x";
          out += kHex[static_cast<unsigned char>(c) >> 4];
          out += kHex[c & 0xf];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void field(std::string& out, std::string_view key, std::string_view value) {
  if (value.empty()) return;
  out += ' ';
  out += key;
  out += '=';
  quoted(out, value);
}

void bare(std::string& out, std::string_view key, std::string_view value) {
  out += ' ';
  out += key;
  out += '=';
  out += value;
}

}  // namespace

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

std::string format_access_log(const ConnectionRecord& r) {
  std::string out = r.ok() ? "level=info" : "level=error";
  out += " target=access msg=";
  // Upstream says "connection complete" either way; the level and error= tell.
  quoted(out, "connection complete");
  bare(out, "src.addr", r.src.to_string());
  field(out, "src.workload", r.src_workload);
  field(out, "src.namespace", r.src_namespace);
  field(out, "src.identity", r.src_identity);
  bare(out, "dst.addr", r.dst.to_string());
  if (!r.hbone_addr.empty()) bare(out, "dst.hbone_addr", r.hbone_addr);
  field(out, "dst.service", r.dst_service);
  field(out, "dst.workload", r.dst_workload);
  field(out, "dst.namespace", r.dst_namespace);
  field(out, "dst.identity", r.dst_identity);
  field(out, "direction", to_string(r.direction));
  bare(out, "bytes_sent", std::to_string(r.bytes_sent));
  bare(out, "bytes_recv", std::to_string(r.bytes_recv));
  field(out, "duration", std::to_string(to_ms(r.duration)) + "ms");
  field(out, "response_flags", r.response_flags);
  field(out, "error", r.error);
  return out;
}

}  // namespace zt::core::proxy
