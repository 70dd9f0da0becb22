// Test helpers for HBONE on io/sim: an echo server app, a pool client, keys
// and one-tunnel round trips.
#pragma once

#include <gtest/gtest.h>

#include "core/hbone/pool.h"
#include "core/hbone/server.h"
#include "testing/sim_harness.h"
#include "testing/tls_test_util.h"

namespace zt::testing {

using core::hbone::Answer;
using core::hbone::InboundRequest;
using core::hbone::Pool;
using core::hbone::PoolConfig;
using core::hbone::PoolKey;
using core::hbone::Server;

using HboneHarness = SimHarness<IpAddr::Family::v4>;
constexpr uint16_t kHbonePort = 15008;

// A server host running the HBONE server with an echo-then-finish handler:
// each tunnel's bytes come back, then END_STREAM. With `answer_after`, each
// request is answered that long after it arrived (as a node proxy answers
// once it has connected to the workload).
struct HboneServerApp {
  HboneServerApp(HboneHarness& h, TlsWorld& w, const char* identity = "server", Duration answer_after = Duration(0)) {
    auto l = h.server().net.listen(Endpoint{h.server_ip(), kHbonePort}, {});
    ZT_ASSERT(l.ok());
    auto creds = credentials(*w.ca->issue(test_identity(identity), std::chrono::hours(24), w.now));
    server = std::make_unique<Server>(h.server(), std::move(*l), w.context(w.config(tls::TlsRole::server, creds)),
                                      [this, &env = h.server(), answer_after](InboundRequest req, Answer a) {
                                        requests.push_back(req);
                                        if (req.target.port == 9) return a->reject(503);  // "nothing there"
                                        if (answer_after > Duration(0)) {
                                          return scope.spawn([](Env& env, Duration d, Answer a) -> Task<void> {
                                            co_await io::sleep(env.loop, d);
                                            co_await echo(a->accept());
                                          }(env, answer_after, std::move(a)));
                                        }
                                        scope.spawn(echo(a->accept()));
                                      });
    server->start();
  }
  static Task<void> echo(StreamPtr t) {
    if (!t) co_return;
    std::vector<uint8_t> buf(65536);
    for (;;) {
      auto n = co_await io::read(*t, buf);
      if (!n || *n == 0) break;
      if (!co_await io::write_all(*t, ConstBytes(buf).first(*n))) co_return;
    }
    (void)t->shutdown_write();
    std::vector<uint8_t> drain(16);
    (void)co_await io::read(*t, drain);  // wait for the peer to finish too
  }
  std::vector<InboundRequest> requests;
  std::unique_ptr<Server> server;
  Scope scope;
};

struct Client {
  Client(HboneHarness& h, TlsWorld& w, PoolConfig cfg = {})
      : pool(h.client(), cfg, [&w](const PoolKey&) -> Result<std::shared_ptr<const tls::TlsContext>> {
          return w.client();
        }) {}
  Pool pool;
};

inline PoolKey key_for(HboneHarness& h, const char* dst_identity = "server") {
  return PoolKey{"spiffe://cluster.local/ns/default/sa/client",
                 {test_identity(dst_identity).to_string()},
                 Endpoint{h.server_ip(), kHbonePort},
                 h.client_ip()};
}

inline h2::Request connect_to(uint16_t port = 8080) {
  return h2::Request{"CONNECT", "10.0.0.3:" + std::to_string(port),
                     {{"forwarded", "for=\"10.0.0.1:5555\""}, {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}}};
}

// One tunnel through the pool: send `size` bytes, half-close, read the echo.
// `corrupt` counts the worst outcome: a clean end of stream with bytes
// missing or wrong (a reset must never look like a clean, short stream).
inline Task<void> round_trip(Pool& pool, PoolKey key, size_t size, uint8_t salt, int& failures,
                             int* corrupt = nullptr) {
  Result<h2::Opened> t = co_await pool.open(key, connect_to());
  if (!t || !t->tunnel) {
    ++failures;
    co_return;
  }
  const auto data = testing::pattern(size, salt);
  testing::ReadAll back;
  bool wrote = false;
  co_await join([](Stream& s, const std::vector<uint8_t>& d, bool& ok) -> Task<void> {
                  ok = d.empty() || (co_await io::write_all(s, d)).ok();
                  ok = ok && s.shutdown_write().ok();
                }(*t->tunnel, data, wrote),
                [](Stream& s, testing::ReadAll& out) -> Task<void> { out = co_await testing::read_all(s); }(*t->tunnel,
                                                                                                          back));
  if (!wrote || !back.end.ok() || back.bytes != data) ++failures;
  if (corrupt && back.end.ok() && back.bytes != data) ++*corrupt;
}

}  // namespace zt::testing
