// Expected failures as values: Result<T> holds a T or an Error.
//
// Errors on the data path are ordinary outcomes (a peer resets, a connect
// times out), so they are returned, never thrown.
//
//   Result<size_t> r = co_await io::read(stream, buf);
//   if (!r) log(r.error().message());
//   else use(*r);
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "io/assert.h"

namespace zt {

enum class Errc : uint8_t {
  cancelled,              // the operation was cancelled locally (close, abort, cancel)
  timed_out,              // a deadline passed (connect timeout, SYN retries exhausted)
  connection_refused,     // the peer answered a SYN with RST: nothing listens there
  connection_reset,       // the peer reset the connection (RST)
  host_unreachable,       // no route to the address
  address_in_use,         // bind: the endpoint is taken
  address_not_available,  // bind: the address is not ours
  not_connected,          // the stream is closed or was never connected
  invalid_argument,       // the caller asked for something malformed
  unsupported,            // the runtime cannot do this (e.g. no SO_ORIGINAL_DST)
  handshake_failed,       // a TLS handshake failed (detail says why)
  io_error,               // any other operating-system error (detail says which)
  name_not_found,         // a host name has no address (resolve)
};

std::string_view errc_name(Errc code);

struct Error {
  Errc code;
  std::string detail;  // free text for logs; empty on hot paths

  Error(Errc c, std::string d = {}) : code(c), detail(std::move(d)) {}
  std::string message() const;
  bool operator==(Errc c) const { return code == c; }
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}
  Result(Errc code) : v_(std::in_place_index<1>, Error(code)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { ZT_ASSERT(ok()); return std::get<0>(v_); }
  const T& value() const& { ZT_ASSERT(ok()); return std::get<0>(v_); }
  T&& value() && { ZT_ASSERT(ok()); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { ZT_ASSERT(!ok()); return std::get<1>(v_); }
  Errc code() const { return error().code; }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}
  Result(Errc code) : error_(code), ok_(false) {}

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { ZT_ASSERT(!ok_); return error_; }
  Errc code() const { return error().code; }

 private:
  Error error_{Errc::io_error};
  bool ok_ = true;
};

inline Result<void> ok() { return {}; }

}  // namespace zt
