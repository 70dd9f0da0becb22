#include "io/address.h"

#include <charconv>
#include <cstring>

namespace zt {

IpAddr IpAddr::v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  const uint8_t raw[4] = {a, b, c, d};
  return v4_from_bytes(raw);
}

IpAddr IpAddr::v4_from_bytes(const uint8_t bytes[4]) {
  IpAddr ip;
  ip.family_ = Family::v4;
  std::memcpy(ip.bytes_.data(), bytes, 4);
  return ip;
}

IpAddr IpAddr::v6_from_bytes(const uint8_t bytes[16]) {
  IpAddr ip;
  ip.family_ = Family::v6;
  std::memcpy(ip.bytes_.data(), bytes, 16);
  return ip;
}

IpAddr IpAddr::loopback(Family f) {
  if (f == Family::v4) return v4(127, 0, 0, 1);
  uint8_t raw[16] = {};
  raw[15] = 1;
  return v6_from_bytes(raw);
}

IpAddr IpAddr::unspecified(Family f) {
  uint8_t raw[16] = {};
  return f == Family::v4 ? v4_from_bytes(raw) : v6_from_bytes(raw);
}

bool IpAddr::is_unspecified() const {
  for (size_t i = 0; i < size(); ++i)
    if (bytes_[i] != 0) return false;
  return true;
}

bool IpAddr::is_loopback() const {
  if (is_v4()) return bytes_[0] == 127;
  for (size_t i = 0; i < 15; ++i)
    if (bytes_[i] != 0) return false;
  return bytes_[15] == 1;
}

Result<IpAddr> IpAddr::from_raw(std::string_view bytes) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  if (bytes.size() == 4) return v4_from_bytes(p);
  if (bytes.size() == 16) return v6_from_bytes(p);
  return Error(Errc::invalid_argument,
               "IP address must be 4 or 16 bytes, got " + std::to_string(bytes.size()));
}

namespace {

Result<IpAddr> parse_v4(std::string_view text) {
  uint8_t raw[4];
  size_t pos = 0;
  for (int i = 0; i < 4; ++i) {
    if (i > 0) {
      if (pos >= text.size() || text[pos] != '.') return Errc::invalid_argument;
      ++pos;
    }
    size_t start = pos;
    unsigned value = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9' && pos - start < 3) {
      value = value * 10 + unsigned(text[pos] - '0');
      ++pos;
    }
    if (pos == start || value > 255) return Errc::invalid_argument;
    if (pos - start > 1 && text[start] == '0') return Errc::invalid_argument;  // no octal look-alikes
    raw[i] = uint8_t(value);
  }
  if (pos != text.size()) return Errc::invalid_argument;
  return IpAddr::v4_from_bytes(raw);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Parses groups separated by ':' into out; returns the count or -1.
// A trailing dotted IPv4 part counts as two groups.
int parse_v6_groups(std::string_view text, uint16_t* out, int max_groups) {
  int count = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    if (count > 0) {
      if (text[pos] != ':') return -1;
      ++pos;
    }
    size_t end = text.find(':', pos);
    std::string_view part = text.substr(pos, end == std::string_view::npos ? text.npos : end - pos);
    if (part.find('.') != std::string_view::npos) {
      if (end != std::string_view::npos || count + 2 > max_groups) return -1;
      auto v4 = parse_v4(part);
      if (!v4) return -1;
      out[count++] = uint16_t(v4->data()[0] << 8 | v4->data()[1]);
      out[count++] = uint16_t(v4->data()[2] << 8 | v4->data()[3]);
      return count;
    }
    if (part.empty() || part.size() > 4 || count >= max_groups) return -1;
    unsigned value = 0;
    for (char c : part) {
      int h = hex_value(c);
      if (h < 0) return -1;
      value = value * 16 + unsigned(h);
    }
    out[count++] = uint16_t(value);
    pos += part.size();
  }
  return count;
}

Result<IpAddr> parse_v6(std::string_view text) {
  uint16_t head[8] = {}, tail[8] = {};
  int head_n = 0, tail_n = 0;
  size_t gap = text.find("::");
  if (gap == std::string_view::npos) {
    head_n = parse_v6_groups(text, head, 8);
    if (head_n != 8) return Errc::invalid_argument;
  } else {
    if (text.find("::", gap + 1) != std::string_view::npos) return Errc::invalid_argument;
    head_n = parse_v6_groups(text.substr(0, gap), head, 7);
    tail_n = parse_v6_groups(text.substr(gap + 2), tail, 7);
    if (head_n < 0 || tail_n < 0 || head_n + tail_n > 7) return Errc::invalid_argument;
  }
  uint8_t raw[16] = {};
  for (int i = 0; i < head_n; ++i) {
    raw[2 * i] = uint8_t(head[i] >> 8);
    raw[2 * i + 1] = uint8_t(head[i]);
  }
  for (int i = 0; i < tail_n; ++i) {
    int g = 8 - tail_n + i;
    raw[2 * g] = uint8_t(tail[i] >> 8);
    raw[2 * g + 1] = uint8_t(tail[i]);
  }
  return IpAddr::v6_from_bytes(raw);
}

}  // namespace

Result<IpAddr> IpAddr::parse(std::string_view text) {
  auto r = text.find(':') == std::string_view::npos ? parse_v4(text) : parse_v6(text);
  if (!r) return Error(Errc::invalid_argument, "not an IP address: '" + std::string(text) + "'");
  return r;
}

std::string IpAddr::to_string() const {
  std::string out;
  if (is_v4()) {
    for (int i = 0; i < 4; ++i) {
      if (i) out += '.';
      out += std::to_string(bytes_[i]);
    }
    return out;
  }
  uint16_t g[8];
  for (int i = 0; i < 8; ++i) g[i] = uint16_t(bytes_[2 * i] << 8 | bytes_[2 * i + 1]);
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on ties.
  int best_start = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (g[i] != 0) { ++i; continue; }
    int j = i;
    while (j < 8 && g[j] == 0) ++j;
    if (j - i > best_len && j - i >= 2) { best_start = i; best_len = j - i; }
    i = j;
  }
  static const char* kHex = "0123456789abcdef";
  for (int i = 0; i < 8; ++i) {
    if (i == best_start) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    char buf[4];
    int n = 0;
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
      int nib = (g[i] >> shift) & 0xf;
      if (nib || started || shift == 0) { buf[n++] = kHex[nib]; started = true; }
    }
    out.append(buf, size_t(n));
  }
  return out;
}

Result<Endpoint> Endpoint::parse(std::string_view text) {
  std::string_view host, port;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return Error(Errc::invalid_argument, "bad endpoint: '" + std::string(text) + "'");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon)
      return Error(Errc::invalid_argument, "bad endpoint: '" + std::string(text) + "'");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  auto ip = IpAddr::parse(host);
  if (!ip) return ip.error();
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || port.empty() || value > 65535)
    return Error(Errc::invalid_argument, "bad port in endpoint: '" + std::string(text) + "'");
  return Endpoint{*ip, uint16_t(value)};
}

std::string Endpoint::to_string() const {
  if (ip.is_v6()) return "[" + ip.to_string() + "]:" + std::to_string(port);
  return ip.to_string() + ":" + std::to_string(port);
}

uint64_t stable_hash(const IpAddr& ip) {
  uint64_t h = 1469598103934665603ull ^ uint64_t(ip.family());
  for (size_t i = 0; i < ip.size(); ++i) h = (h ^ ip.data()[i]) * 1099511628211ull;
  return h;
}

uint64_t stable_hash(const Endpoint& ep) {
  return (stable_hash(ep.ip) ^ ep.port) * 1099511628211ull;
}

}  // namespace zt
