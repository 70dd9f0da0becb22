#include "core/proxy/access_log.h"

#include <algorithm>
#include <charconv>
#include <iterator>

namespace zt::core::proxy {
namespace {

// True for the bytes quoted() escapes.
bool needs_escape(char c) { return c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20; }

void quoted(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  // Runs of plain bytes are appended whole: a record has a dozen fields and
  // is written for every connection, so byte-by-byte appends showed up in
  // the per-connection profile.
  while (!s.empty()) {
    const size_t plain = static_cast<size_t>(std::find_if(s.begin(), s.end(), needs_escape) - s.begin());
    out.append(s.data(), plain);
    if (plain == s.size()) break;
    const char c = s[plain];
    s.remove_prefix(plain + 1);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        out += "\\x";
        out += kHex[static_cast<unsigned char>(c) >> 4];
        out += kHex[c & 0xf];
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

void bare(std::string& out, std::string_view key, uint64_t value) {
  char digits[24];
  const auto end = std::to_chars(std::begin(digits), std::end(digits), value).ptr;
  bare(out, key, std::string_view(digits, static_cast<size_t>(end - digits)));
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
  std::string out;
  out.reserve(512);  // a typical HBONE record is 350-450 bytes: one allocation
  out += r.ok() ? "level=info" : "level=error";
  // Upstream says "connection complete" either way; the level and error= tell.
  out += " target=access msg=\"connection complete\"";
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
  bare(out, "bytes_sent", r.bytes_sent);
  bare(out, "bytes_recv", r.bytes_recv);
  char ms[32];
  const auto ms_end = std::to_chars(std::begin(ms), std::end(ms) - 2, to_ms(r.duration)).ptr;
  ms_end[0] = 'm';
  ms_end[1] = 's';
  field(out, "duration", std::string_view(ms, static_cast<size_t>(ms_end + 2 - ms)));
  field(out, "response_flags", r.response_flags);
  field(out, "error", r.error);
  return out;
}

}  // namespace zt::core::proxy
