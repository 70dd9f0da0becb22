#include "core/hbone/headers.h"

namespace zt::core::hbone {
namespace {

void add(std::string& out, std::string_view key, const std::string& value) {
  if (value.empty()) return;
  if (!out.empty()) out += ',';
  out.append(key);
  out += '=';
  out += value;
}

// Appends `bytes` random bytes as lower-case hex (8 per draw, low byte
// first); true if they were all zero.
bool append_hex(std::string& out, Rng& rng, int bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  uint64_t bits = 0, any = 0;
  for (int i = 0; i < bytes; ++i) {
    if (i % 8 == 0) {
      bits = rng.next();
      any |= bytes - i >= 8 ? bits : bits & ((uint64_t{1} << (8 * (bytes - i))) - 1);
    }
    const uint8_t b = uint8_t(bits >> (8 * (i % 8)));
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return any == 0;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string forwarded(const SourceInfo& src) {
  std::string out = "for=\"";
  out += src.address.to_string();
  out += '"';
  if (src.host) {
    out += ";host=";
    out += *src.host;
  }
  return out;
}

std::string baggage(const SourceInfo& src) {
  std::string out;
  add(out, "k8s.cluster.name", src.cluster);
  add(out, "k8s.namespace.name", src.ns);
  add(out, "k8s." + src.workload_type + ".name", src.workload_name);
  add(out, "service.name", src.canonical_name);
  add(out, "service.version", src.canonical_revision);
  add(out, "cloud.region", src.region);
  add(out, "cloud.availability_zone", src.zone);
  return out;
}

std::string traceparent(Rng& rng) {
  // Built in place (one allocation): every outbound HBONE connection sends one.
  std::string out;
  out.reserve(55);
  out += "00-";
  // All-zero ids are invalid in W3C trace context.
  if (append_hex(out, rng, 16)) out.back() = '1';
  out += '-';
  if (append_hex(out, rng, 8)) out.back() = '1';
  out += "-00";
  return out;
}

h2::Headers request_headers(const SourceInfo& src, Rng& rng) {
  h2::Headers hs{{"forwarded", forwarded(src)}};
  std::string b = baggage(src);
  if (!b.empty()) hs.emplace_back("baggage", std::move(b));
  hs.emplace_back("traceparent", traceparent(rng));
  return hs;
}

std::optional<Endpoint> forwarded_for(std::string_view header) {
  // The first element's for= parameter; quotes optional.
  header = header.substr(0, header.find(','));
  for (size_t pos = 0; pos < header.size();) {
    size_t end = header.find(';', pos);
    std::string_view pair = trim(header.substr(pos, end == std::string_view::npos ? header.npos : end - pos));
    if (pair.size() > 4 && (pair.substr(0, 4) == "for=" || pair.substr(0, 4) == "For=")) {
      std::string_view v = pair.substr(4);
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      auto ep = Endpoint::parse(v);
      if (ep) return *ep;
      return std::nullopt;
    }
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return std::nullopt;
}

std::map<std::string, std::string> parse_baggage(std::string_view header) {
  std::map<std::string, std::string> out;
  size_t pos = 0;
  while (pos <= header.size()) {
    size_t end = header.find(',', pos);
    std::string_view member = trim(header.substr(pos, end == std::string_view::npos ? header.npos : end - pos));
    member = member.substr(0, member.find(';'));  // drop properties
    const size_t eq = member.find('=');
    if (eq != std::string_view::npos && eq > 0)
      out[std::string(trim(member.substr(0, eq)))] = std::string(trim(member.substr(eq + 1)));
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return out;
}

}  // namespace zt::core::hbone
