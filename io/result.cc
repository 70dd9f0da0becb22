#include "io/result.h"

namespace zt {

std::string_view errc_name(Errc code) {
  switch (code) {
    case Errc::cancelled: return "cancelled";
    case Errc::timed_out: return "timed_out";
    case Errc::connection_refused: return "connection_refused";
    case Errc::connection_reset: return "connection_reset";
    case Errc::host_unreachable: return "host_unreachable";
    case Errc::address_in_use: return "address_in_use";
    case Errc::address_not_available: return "address_not_available";
    case Errc::not_connected: return "not_connected";
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::unsupported: return "unsupported";
    case Errc::handshake_failed: return "handshake_failed";
    case Errc::io_error: return "io_error";
    case Errc::name_not_found: return "name_not_found";
  }
  return "unknown";
}

std::string Error::message() const {
  std::string out(errc_name(code));
  if (!detail.empty()) {
    out += ": ";
    out += detail;
  }
  return out;
}

}  // namespace zt
