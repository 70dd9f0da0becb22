// Transparent capture on a real kernel: iptables REDIRECT sends a client's
// connection to the relay, which reads the original destination with
// SO_ORIGINAL_DST and connects there with SO_MARK 1337 (which the rules let
// through, as ztunnel's do).
//
// Needs root (a private network namespace, iptables, SO_MARK); it says so and
// skips elsewhere. All traffic stays inside the namespace's loopback.
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "testing/relay.h"
#include "io/real/runtime.h"
#include "testing/harness.h"

namespace zt::e2e {
namespace {

using namespace zt::core;

using namespace zt::testing;

constexpr uint16_t kAppPort = 9999;

// Moves this process into a fresh network namespace with loopback up and the
// capture rules installed; returns why it could not, or "".
std::string enter_capture_namespace(uint16_t relay_port, bool v6) {
  if (geteuid() != 0) return "needs root (network namespace, iptables, SO_MARK)";
  if (unshare(CLONE_NEWNET) != 0) return "unshare(CLONE_NEWNET) failed";
  const std::string tables = v6 ? "ip6tables" : "iptables";
  const std::string lo = v6 ? "::1" : "127.0.0.1";
  const std::string cmds[] = {
      "ip link set lo up",
      tables + " -t nat -A OUTPUT -p tcp -m mark --mark 1337 -j RETURN",
      tables + " -t nat -A OUTPUT -p tcp -d " + lo + " --dport " + std::to_string(kAppPort) +
          " -j REDIRECT --to-ports " + std::to_string(relay_port),
  };
  for (const auto& c : cmds) {
    if (std::system((c + " >/dev/null 2>&1").c_str()) != 0) return "could not run: " + c;
  }
  return "";
}

void run_capture(IpAddr::Family family) {
  const bool v6 = family == IpAddr::Family::v6;
  const IpAddr lo = IpAddr::loopback(family);
  // Pick the relay port before entering the namespace; it is free in there.
  const uint16_t relay_port = v6 ? 15006 : 15001;
  if (std::string why = enter_capture_namespace(relay_port, v6); !why.empty()) GTEST_SKIP() << why;

  io::real::Runtime rt(uint64_t{7});
  Env& env = rt.env();
  auto app_listener = env.net.listen(Endpoint{lo, kAppPort}, {});
  ASSERT_TRUE(app_listener) << app_listener.error().message();
  auto relay_listener = env.net.listen(Endpoint{lo, relay_port}, {});
  ASSERT_TRUE(relay_listener) << relay_listener.error().message();
  RelayConfig cfg;
  cfg.upstream.mark = 1337;
  RelayServer relay(env, std::move(*relay_listener), cfg, RelayServer::original_destination());
  relay.start();

  const auto request = testing::pattern(100000, 1), reply = testing::pattern(50000, 2);
  testing::ReadAll at_server, at_client;
  bool done = false;
  Scope scope;
  scope.spawn([](Env& env, Listener& app, Endpoint dst, const std::vector<uint8_t>& request,
                 const std::vector<uint8_t>& reply, testing::ReadAll& at_server, testing::ReadAll& at_client,
                 bool& done) -> Task<void> {
    auto client = co_await io::connect(env, dst, {}, std::chrono::seconds(5));  // captured by REDIRECT
    EXPECT_TRUE(client) << client.error().message();
    if (!client) co_return;
    auto server = co_await io::accept(app);
    EXPECT_TRUE(server);
    if (!server) co_return;
    co_await join(
        [](Stream& s, const std::vector<uint8_t>& d) -> Task<void> {
          EXPECT_TRUE(co_await io::write_all(s, d));
          EXPECT_TRUE(s.shutdown_write());
        }(**client, request),
        [](Stream& s, const std::vector<uint8_t>& d) -> Task<void> {
          EXPECT_TRUE(co_await io::write_all(s, d));
          EXPECT_TRUE(s.shutdown_write());
        }(**server, reply),
        [](Stream& s, testing::ReadAll& out) -> Task<void> { out = co_await testing::read_all(s); }(**server,
                                                                                                    at_server),
        [](Stream& s, testing::ReadAll& out) -> Task<void> { out = co_await testing::read_all(s); }(**client,
                                                                                                    at_client));
    done = true;
  }(env, **app_listener, Endpoint{lo, kAppPort}, request, reply, at_server, at_client, done));
  ASSERT_TRUE(rt.run_until([&] { return done; }, std::chrono::seconds(20)));
  EXPECT_TRUE(at_server.bytes == request);
  EXPECT_TRUE(at_client.bytes == reply);
  EXPECT_EQ(relay.counters().accepted, 1u);  // it really went through the relay
  rt.run_until([&] { return relay.counters().active == 0; }, std::chrono::seconds(5));
  EXPECT_EQ(relay.counters().bytes_to_upstream, request.size());
  EXPECT_EQ(relay.counters().bytes_to_downstream, reply.size());
}

TEST(OriginalDst, RedirectedIpv4ConnectionReachesItsOriginalDestination) { run_capture(IpAddr::Family::v4); }
TEST(OriginalDst, RedirectedIpv6ConnectionReachesItsOriginalDestination) { run_capture(IpAddr::Family::v6); }

}  // namespace
}  // namespace zt::e2e
