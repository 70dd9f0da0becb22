// The state of one io/real TCP stream, shared by the stream object, the
// Asio handlers in flight and a splice transfer (splice.h) that borrows its
// read or write slot. Internal to io/real.
//
//   auto st = std::make_shared<StreamState>(std::move(socket));
//   st->reading = true;   // the one read in flight (a read, or a splice fill)
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <asio/ip/tcp.hpp>

#include "io/network.h"

namespace zt::io::real {

struct StreamState {
  explicit StreamState(asio::ip::tcp::socket s) : sock(std::move(s)) {}

  asio::ip::tcp::socket sock;
  // Asked of the kernel (getsockname) on first use, not per connection: the
  // data path rarely needs it. Unknown (unspecified) if first asked after
  // close().
  std::optional<Endpoint> local;
  Endpoint peer;
  bool owner_alive = true;  // the AsioStream exists; when false, callbacks are dropped
  bool closed = false;      // close(), abort() or the destructor ran
  bool reading = false;
  bool writing = false;
  bool eof = false;                // reads complete with 0 from now on
  std::optional<Error> read_error;  // reads fail with this from now on
  Stream::IoCallback read_cb;
  Stream::IoCallback write_cb;
};
using StreamStatePtr = std::shared_ptr<StreamState>;

// An operation started on an object already closed.
inline Error closed_error(const char* op) { return Error(Errc::not_connected, std::string(op) + ": closed"); }

}  // namespace zt::io::real
