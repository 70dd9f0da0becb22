#include "xds/grpc/codec.h"

#include <algorithm>
#include <array>
#include <charconv>

namespace zt::xds::grpc {

std::string_view to_string(Code c) {
  static constexpr std::array<std::string_view, 17> kNames = {
      "OK",        "CANCELLED",         "UNKNOWN",   "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
      "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  const int i = int(c);
  return i >= 0 && i < int(kNames.size()) ? kNames[size_t(i)] : "UNKNOWN";
}

std::string Status::to_string() const {
  std::string out(grpc::to_string(code));
  if (!message.empty()) out += ": " + message;
  return out;
}

Status status_from_http(int http_status) {
  const std::string what = "HTTP status " + std::to_string(http_status);
  switch (http_status) {
    case 400: return {Code::internal, what};
    case 401: return {Code::unauthenticated, what};
    case 403: return {Code::permission_denied, what};
    case 404: return {Code::unimplemented, what};
    case 429:
    case 502:
    case 503:
    case 504: return {Code::unavailable, what};
    default: return {Code::unknown, what};
  }
}

std::string frame_message(std::string_view message) {
  std::string out;
  out.reserve(kFrameHeaderBytes + message.size());
  const uint32_t n = uint32_t(message.size());
  out += char(0);  // not compressed
  out += char(n >> 24);
  out += char(n >> 16);
  out += char(n >> 8);
  out += char(n);
  out.append(message);
  return out;
}

Result<void> MessageReader::feed(ConstBytes data) {
  const char* p = reinterpret_cast<const char*>(data.data());
  size_t left = data.size();
  while (left > 0) {
    if (!have_header_) {
      const size_t take = std::min(left, kFrameHeaderBytes - header_.size());
      header_.append(p, take);
      p += take;
      left -= take;
      if (header_.size() < kFrameHeaderBytes) break;
      const auto* h = reinterpret_cast<const uint8_t*>(header_.data());
      if (h[0] != 0) return Error(Errc::invalid_argument, "compressed gRPC message (no compression was offered)");
      want_ = size_t(h[1]) << 24 | size_t(h[2]) << 16 | size_t(h[3]) << 8 | size_t(h[4]);
      if (want_ > max_) {
        return Error(Errc::invalid_argument,
                     "gRPC message of " + std::to_string(want_) + " bytes, over the limit of " + std::to_string(max_));
      }
      header_.clear();
      have_header_ = true;
      body_.clear();
      body_.reserve(std::min(want_, size_t(1) << 20));  // grow with the bytes, not with a peer's claim
    }
    const size_t take = std::min(left, want_ - body_.size());
    body_.append(p, take);
    p += take;
    left -= take;
    if (body_.size() == want_) {
      ready_.push_back(std::move(body_));
      body_ = {};
      have_header_ = false;
    }
  }
  return ok();
}

std::optional<std::string> MessageReader::next() {
  if (ready_.empty()) return std::nullopt;
  std::string m = std::move(ready_.front());
  ready_.pop_front();
  return m;
}

std::string encode_timeout(Duration d) {
  if (d < Duration(0)) d = Duration(0);
  constexpr int64_t kMax = 99'999'999;
  struct Unit {
    char name;
    Duration size;
  };
  static constexpr Unit kUnits[] = {{'n', std::chrono::nanoseconds(1)}, {'u', std::chrono::microseconds(1)},
                                    {'m', std::chrono::milliseconds(1)}, {'S', std::chrono::seconds(1)},
                                    {'M', std::chrono::minutes(1)},      {'H', std::chrono::hours(1)}};
  for (const Unit& u : kUnits) {
    const int64_t n = (d.count() + u.size.count() - 1) / u.size.count();  // rounded up: never shorter
    if (n <= kMax) return std::to_string(n) + u.name;
  }
  return std::to_string(kMax) + "H";
}

std::optional<Duration> parse_timeout(std::string_view text) {
  if (text.size() < 2 || text.size() > 9) return std::nullopt;
  int64_t n = 0;
  const std::string_view digits = text.substr(0, text.size() - 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc() || end != digits.data() + digits.size() || n < 0) return std::nullopt;
  switch (text.back()) {
    case 'n': return std::chrono::nanoseconds(n);
    case 'u': return std::chrono::microseconds(n);
    case 'm': return std::chrono::milliseconds(n);
    case 'S': return std::chrono::seconds(n);
    case 'M': return std::chrono::minutes(n);
    case 'H': return std::chrono::hours(n);
    default: return std::nullopt;
  }
}

std::string encode_message(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b > 0x7e || b == '%') {
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

std::string decode_message(std::string_view text) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
      out += char(hex(text[i + 1]) << 4 | hex(text[i + 2]));
      i += 2;
    } else {
      out += text[i];  // a stray '%' is kept, as gRPC's decoders do
    }
  }
  return out;
}

}  // namespace zt::xds::grpc
