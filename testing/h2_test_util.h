// Test helpers: an HTTP/2 client and server Connection over a harness's
// TCP (optionally TLS) connection.
#pragma once

#include <gtest/gtest.h>

#include <deque>

#include "h2/connection.h"
#include "testing/harness.h"
#include "testing/tls_test_util.h"

namespace zt::testing {

using h2::Connection;
using h2::Headers;
using h2::Opened;
using h2::Request;
using h2::Role;
using h2::Settings;
using h2::kRefused;

struct H2Pair {
  std::unique_ptr<Connection> client, server;
  std::deque<std::unique_ptr<Connection::Incoming>> requests;  // arrived at the server
};

// Connects TCP (and TLS when `tls` is given), then starts both connections.
// Requests arriving at the server are queued in pair.requests.
inline Task<void> connect_h2(testing::Harness& h, H2Pair& pair, TlsWorld* tls = nullptr,
                             Settings client_settings = Settings::client(),
                             Settings server_settings = Settings::server()) {
  StreamPtr c, s;
  if (tls) {
    TlsPair t;
    co_await connect_pair(h, tls->client(), tls->server(), t);
    EXPECT_TRUE(t.client_hs && t.server_hs);
    c = std::move(t.client);
    s = std::move(t.server);
  } else {
    auto listener = h.server().net.listen(Endpoint{h.server_ip(), 0}, {});
    ZT_ASSERT(listener.ok());
    auto tcp = co_await io::connect(h.client(), (*listener)->local(), {}, std::chrono::seconds(5));
    auto acc = co_await io::accept(**listener);
    EXPECT_TRUE(tcp && acc);
    if (!tcp || !acc) co_return;
    c = std::move(*tcp);
    s = std::move(*acc);
  }
  pair.client = std::make_unique<Connection>(h.client(), std::move(c), Role::client, client_settings);
  pair.server = std::make_unique<Connection>(h.server(), std::move(s), Role::server, server_settings);
  pair.server->on_request([&pair](std::unique_ptr<Connection::Incoming> in) { pair.requests.push_back(std::move(in)); });
  pair.client->start();
  pair.server->start();
}

// Opens a CONNECT stream; returns the result.
inline Task<Result<Opened>> open_tunnel(Connection& c, std::string authority, Headers headers = {}) {
  struct Awaiter {
    Connection& c;
    Request req;
    std::optional<Result<Opened>> result;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
      c.open(std::move(req), [this, h](Result<Opened> r) {
        result.emplace(std::move(r));
        h.resume();
      });
    }
    Result<Opened> await_resume() { return std::move(*result); }
  };
  Request req{"CONNECT", std::move(authority), std::move(headers)};
  Awaiter awaiter{c, std::move(req), std::nullopt};
  co_return co_await awaiter;
}

}  // namespace zt::testing
