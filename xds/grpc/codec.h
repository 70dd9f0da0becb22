// gRPC on the wire, without any transport: status codes, the 5-byte message
// framing (compressed flag, big-endian length), grpc-timeout and the
// percent-encoded grpc-message. Used by the client and server calls
// (call.h, server.h) that run it over our HTTP/2.
//
//   std::string wire = frame_message(request.SerializeAsString());
//   MessageReader r(kMessageBytesMax);
//   if (auto fed = r.feed(bytes); !fed) cancel(fed.error());
//   while (auto m = r.next()) handle(*m);
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "io/network.h"
#include "io/result.h"
#include "io/time.h"

namespace zt::xds::grpc {

// gRPC's status codes (their numbers are the wire's).
enum class Code : int {
  ok = 0,
  cancelled = 1,
  unknown = 2,
  invalid_argument = 3,
  deadline_exceeded = 4,
  not_found = 5,
  already_exists = 6,
  permission_denied = 7,
  resource_exhausted = 8,
  failed_precondition = 9,
  aborted = 10,
  out_of_range = 11,
  unimplemented = 12,
  internal = 13,
  unavailable = 14,
  data_loss = 15,
  unauthenticated = 16,
};
std::string_view to_string(Code c);  // "UNAVAILABLE"

struct Status {
  Code code = Code::ok;
  std::string message;
  bool ok() const { return code == Code::ok; }
  std::string to_string() const;  // "UNAVAILABLE: connection refused"
  static Status from(Code c, std::string message) { return Status{c, std::move(message)}; }
};

// The status an HTTP answer without grpc-status stands for (gRPC's mapping).
Status status_from_http(int http_status);

// Istio's limit on one xDS message (upstream: 200 MiB).
inline constexpr size_t kMessageBytesMax = 200u << 20;
inline constexpr size_t kFrameHeaderBytes = 5;

std::string frame_message(std::string_view message);

// Reassembles messages from DATA of any size. A compressed message (we
// offer no compression) or one over the limit is an error; the call ends.
class MessageReader {
 public:
  explicit MessageReader(size_t message_bytes_max = kMessageBytesMax) : max_(message_bytes_max) {}
  Result<void> feed(ConstBytes data);
  // The next whole message, in order.
  std::optional<std::string> next();
  // Bytes of a message begun but not finished (at EOF: a truncated message).
  bool partial() const { return have_header_ || !header_.empty(); }

 private:
  size_t max_;
  std::string header_;  // up to 5 bytes
  bool have_header_ = false;
  size_t want_ = 0;
  std::string body_;
  std::deque<std::string> ready_;
};

// grpc-timeout: at most 8 digits and a unit (H M S m u n); the coarsest unit
// that keeps the value within 8 digits, rounded up.
std::string encode_timeout(Duration d);
std::optional<Duration> parse_timeout(std::string_view text);

// grpc-message: bytes outside 0x20-0x7E, and '%', percent-encoded.
std::string encode_message(std::string_view text);
std::string decode_message(std::string_view text);

}  // namespace zt::xds::grpc
