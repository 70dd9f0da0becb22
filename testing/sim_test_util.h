// Helpers for tests on io/sim: run a coroutine to completion on a World, and
// make a connected pair of streams between two hosts.
//
//   World world(1);
//   auto [a, b] = two_hosts(world);
//   ASSERT_TRUE(run(world, my_test(world, a, b)));
#pragma once

#include <utility>

#include "io/async.h"
#include "io/sim/world.h"
#include "testing/harness.h"

namespace zt::testing {

using io::sim::Host;
using io::sim::World;

inline std::pair<Host*, Host*> two_hosts(World& w, IpAddr::Family f = IpAddr::Family::v4) {
  auto ip = [f](uint8_t last) {
    if (f == IpAddr::Family::v4) return IpAddr::v4(10, 0, 0, last);
    uint8_t raw[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last};
    return IpAddr::v6_from_bytes(raw);
  };
  Host& a = w.add_host("a", {ip(1)});
  Host& b = w.add_host("b", {ip(2)});
  return {&a, &b};
}

// Runs the task on the world's scheduler until it finishes or `limit` of
// virtual time passes; returns whether it finished.
inline bool run(World& w, Task<void> task, Duration limit = std::chrono::hours(1)) {
  return testing::run_task(std::move(task), [&](const std::function<bool()>& done) { return w.run_until(done, limit); });
}

struct StreamPair {
  StreamPtr client, server;
};

// Listens on b:port, connects from a, accepts; the listener is closed after.
inline Task<void> connect_pair(Host& a, Host& b, uint16_t port, StreamPair& out) {
  Endpoint at{b.addrs()[0], port};
  auto listener = b.env().net.listen(at, {});
  ZT_ASSERT(listener.ok());
  auto accepted = io::accept(**listener);  // starts once awaited below
  auto conn = co_await io::connect(a.env(), at, {}, std::chrono::seconds(5));
  ZT_ASSERT(conn.ok());
  auto srv = co_await accepted;
  ZT_ASSERT(srv.ok());
  out.client = std::move(*conn);
  out.server = std::move(*srv);
}

using testing::pattern;
using testing::read_all;

}  // namespace zt::testing
