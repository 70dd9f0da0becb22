// Policy and drain scenarios on io/sim with the real data path (Outbound,
// Inbound HBONE, InboundPlaintext, the HBONE pool, mTLS): long-lived
// connections from two mesh identities and one host outside the mesh keep
// echoing while the mesh changes under them.
//
// (a) A policy update denies some of the sources: re-checking closes exactly
//     their open connections (RST), the others keep carrying bytes.
// (b) Drain: Inbound, InboundPlaintext, then Outbound stop accepting while
//     long-lived connections run; those go on until they end, new ones are
//     refused, and every active() count returns to 0.
//
// Each scenario runs for several seeds (link latency and jitter, connection
// counts, chunk sizes, pauses, who is denied and when), twice per seed to
// check the trace hash replays.
//
//   ZT_SIM_SEED=5 ctest -R PolicyScenarios --output-on-failure   # one seed
//   ZT_SIM_TRACE=1 ...                                           # with every event
#include <gtest/gtest.h>

#include <cstdlib>
#include <deque>

#include "core/proxy/proxy.h"
#include "core/mesh/local_config.h"
#include "core/mesh/store.h"
#include "io/sim/world.h"
#include "testing/sim_seeds.h"
#include "testing/harness.h"
#include "testing/tls_test_util.h"

namespace zt::sim_tests {
namespace {

using namespace zt::core::proxy;

using namespace zt::testing;

const IpAddr kAliceIp = IpAddr::v4(10, 0, 1, 1), kBobIp = IpAddr::v4(10, 0, 1, 2);
const IpAddr kServerIp = IpAddr::v4(10, 0, 2, 1), kOutsideIp = IpAddr::v4(10, 0, 3, 1);
const Endpoint kApp{kServerIp, 8080};

std::string mesh_yaml(const std::string& policies) {
  return R"(workloads:
- uid: cluster1//v1/Pod/default/alice
  name: alice
  namespace: default
  serviceAccount: alice
  workloadIps: ["10.0.1.1"]
  protocol: HBONE
  node: node-a
- uid: cluster1//v1/Pod/default/bob
  name: bob
  namespace: default
  serviceAccount: bob
  workloadIps: ["10.0.1.2"]
  protocol: HBONE
  node: node-a
- uid: cluster1//v1/Pod/default/server
  name: server
  namespace: default
  serviceAccount: server
  workloadIps: ["10.0.2.1"]
  protocol: HBONE
  node: node-b
)" + policies;
}

// The seeds to run: 1..count, or as the environment says (replay, sweep).
std::vector<uint64_t> seeds(uint64_t count) { return testing::sim_seeds(count); }

using testing::echo;
using testing::echo_server;

enum class Source : uint8_t { alice, bob, outside };
constexpr Source kSources[] = {Source::alice, Source::bob, Source::outside};

// A long-lived client: writes a chunk, reads its echo, pauses, until told
// to stop; then half-closes and expects a clean EOF.
struct Client {
  Source source = Source::alice;
  uint64_t echoed = 0;
  bool connected = false, stop = false, done = false;
  std::optional<Error> error;  // how it ended, when not cleanly
};

Task<void> run_client(Env& env, std::optional<IpAddr> source_ip, size_t chunk, Duration pause, Client& c) {
  SocketOptions opts;
  opts.source_ip = source_ip;
  Result<StreamPtr> s = co_await io::connect(env, kApp, opts, std::chrono::seconds(10));
  if (!s) {
    c.error = s.error();
    c.done = true;
    co_return;
  }
  c.connected = true;
  const std::vector<uint8_t> out = testing::pattern(chunk, uint8_t(chunk));
  std::vector<uint8_t> in(chunk);
  while (!c.stop && !c.error) {
    Result<void> w = co_await io::write_all(**s, out);
    if (!w) {
      c.error = w.error();
      break;
    }
    size_t got = 0;
    while (got < chunk && !c.error) {
      Result<size_t> n = co_await io::read(**s, MutableBytes(in).subspan(got));
      if (!n) {
        c.error = n.error();
      } else if (*n == 0) {
        c.error = Error(Errc::not_connected, "EOF in the middle of an echo");
      } else {
        got += *n;
      }
    }
    if (c.error) break;
    if (in != out) {
      c.error = Error(Errc::io_error, "the echo differs");
      break;
    }
    c.echoed += chunk;
    co_await io::sleep(env.loop, pause);
  }
  if (!c.error) {
    (void)(*s)->shutdown_write();
    testing::ReadAll rest = co_await testing::read_all(**s);
    if (!rest.end) {
      c.error = rest.end.error();
    } else if (!rest.bytes.empty()) {
      c.error = Error(Errc::io_error, "bytes after the last echo");
    }
  }
  c.done = true;
}

// Two nodes and an outside host: alice and bob (two identities) on node-a
// behind Outbound and the pool; the server on node-b behind Inbound (15008)
// and InboundPlaintext (15006); the outside host talks plaintext.
struct PolicyMesh {
  explicit PolicyMesh(uint64_t seed)
      : world(seed), draw(seed * 0x9e3779b97f4a7c15ull + 1), tls(WallTime(std::chrono::seconds(1'767'225'600)), seed) {
    if (const char* t = std::getenv("ZT_SIM_TRACE"); t && *t == '1') world.trace().set_log(stderr);
    a = &world.add_host("node-a", {kAliceIp, kBobIp});
    b = &world.add_host("node-b", {kServerIp});
    c = &world.add_host("outside", {kOutsideIp});
    for (auto [x, y] : {std::pair{a, b}, std::pair{c, b}}) {
      world.set_link(x->id(), y->id(), io::sim::LinkParams{std::chrono::microseconds(int64_t(draw.between(100, 5000))),
                                                       std::chrono::microseconds(int64_t(draw.below(3000)))});
    }
    set_policies("");
    StateSource state = [this] { return snapshot; };
    for (const char* sa : {"alice", "bob"}) {
      auto creds = testing::credentials(*tls.ca->issue(testing::test_identity(sa), std::chrono::hours(24), tls.now));
      client_ctx[testing::test_identity(sa).to_string()] = tls.context(tls.config(tls::TlsRole::client, creds));
    }
    a->capture_outbound(15001);
    core::hbone::PoolConfig pool_cfg;
    pool_cfg.socket.mark = 1337;
    pool = std::make_unique<core::hbone::Pool>(
        a->env(), pool_cfg, [this](const core::hbone::PoolKey& key) -> Result<std::shared_ptr<const tls::TlsContext>> {
          auto it = client_ctx.find(key.source_identity);
          if (it == client_ctx.end()) return Error(Errc::invalid_argument, "no certificate for " + key.source_identity);
          return it->second;
        });
    auto out_l = a->env().net.listen(Endpoint{IpAddr::unspecified(IpAddr::Family::v4), 15001}, {});
    outbound = std::make_unique<Outbound>(a->env(), std::move(*out_l), state, *pool, OutboundConfig{});
    InboundConfig in_cfg;
    in_cfg.access_log = [this](const ConnectionRecord& r) { log_b.push_back(r); };
    auto server_creds = testing::credentials(*tls.ca->issue(testing::test_identity("server"), std::chrono::hours(24), tls.now));
    auto in_l = b->env().net.listen(Endpoint{IpAddr::unspecified(IpAddr::Family::v4), 15008}, {});
    inbound = std::make_unique<Inbound>(b->env(), std::move(*in_l),
                                        tls.context(tls.config(tls::TlsRole::server, server_creds)), state, in_cfg);
    b->capture_inbound(15006);
    auto plain_l = b->env().net.listen(Endpoint{IpAddr::unspecified(IpAddr::Family::v4), 15006}, {});
    plaintext = std::make_unique<InboundPlaintext>(b->env(), std::move(*plain_l), state, in_cfg);
    outbound->start();
    inbound->start();
    plaintext->start();
    app = std::move(*b->env().net.listen(kApp, {}));
    app_scope.spawn(echo_server(*app, app_scope));
  }

  ~PolicyMesh() { teardown(); }

  void teardown() {
    client_scope.clear();
    app_scope.clear();
    app.reset();
    outbound.reset();
    inbound.reset();
    plaintext.reset();
    pool.reset();
  }

  void set_policies(const std::string& policies) {
    auto cfg = core::mesh::parse_local_config(mesh_yaml(policies), "test");
    ASSERT_TRUE(cfg) << cfg.error().message();
    core::mesh::load_local_config(store, *cfg);
    snapshot = store.publish();
  }

  // Starts a long-lived client from `source` with a chunk size and pause
  // drawn from the seed.
  Client& start_client(Source source) {
    Client& cl = clients.emplace_back();
    cl.source = source;
    const size_t chunk = size_t(draw.between(1, 20000));
    const Duration pause = std::chrono::milliseconds(int64_t(draw.between(10, 300)));
    io::sim::Host& from = source == Source::outside ? *c : *a;
    std::optional<IpAddr> ip;
    if (source != Source::outside) ip = source == Source::alice ? kAliceIp : kBobIp;
    client_scope.spawn(run_client(from.env(), ip, chunk, pause, cl));
    return cl;
  }

  size_t active() const { return outbound->active() + inbound->active() + plaintext->active(); }

  io::sim::World world;
  Rng draw;  // the scenario's own choices, apart from the world's
  testing::TlsWorld tls;
  io::sim::Host *a, *b, *c;
  core::mesh::MeshStore store;
  std::shared_ptr<const core::mesh::StateSnapshot> snapshot;
  std::map<std::string, std::shared_ptr<const tls::TlsContext>> client_ctx;
  std::unique_ptr<core::hbone::Pool> pool;
  std::unique_ptr<Outbound> outbound;
  std::unique_ptr<Inbound> inbound;
  std::unique_ptr<InboundPlaintext> plaintext;
  std::unique_ptr<Listener> app;
  std::vector<ConnectionRecord> log_b;
  std::deque<Client> clients;  // stable addresses: the client tasks hold references
  Scope app_scope, client_scope;
};

std::string deny_rule(Source s) {
  switch (s) {
    case Source::alice: return "  - - - principals: [{Exact: cluster.local/ns/default/sa/alice}]\n";
    case Source::bob: return "  - - - principals: [{Exact: cluster.local/ns/default/sa/bob}]\n";
    case Source::outside: return "  - - - sourceIps: [\"10.0.3.1/32\"]\n";
  }
  return "";
}

bool all_connected(const PolicyMesh& m) {
  for (const Client& c : m.clients) {
    if (!c.connected || c.echoed == 0) return false;
  }
  return true;
}

// Runs scenario (a) for one seed; returns the trace hash.
uint64_t policy_update_scenario(uint64_t seed) {
  SCOPED_TRACE("replay: ZT_SIM_SEED=" + std::to_string(seed));
  PolicyMesh m(seed);
  for (Source s : kSources) {
    const uint64_t n = m.draw.between(1, 4);
    for (uint64_t i = 0; i < n; ++i) m.start_client(s);
  }
  EXPECT_TRUE(m.world.run_until([&] { return all_connected(m); }, std::chrono::seconds(30)));
  m.world.run_for(std::chrono::milliseconds(int64_t(m.draw.between(100, 3000))));
  for (const Client& c : m.clients) EXPECT_FALSE(c.error) << c.error->message();

  // Deny a non-empty, proper subset of the three sources.
  const uint64_t denied_mask = m.draw.between(1, 6);
  auto denied = [&](Source s) { return (denied_mask >> int(s)) & 1; };
  std::string policy = "policies:\n- action: Deny\n  name: cut-off\n  namespace: default\n  scope: Namespace\n  rules:\n";
  for (Source s : kSources) {
    if (denied(s)) policy += deny_rule(s);
  }
  m.set_policies(policy);
  size_t expected = 0;
  std::vector<uint64_t> before;
  for (const Client& c : m.clients) {
    expected += denied(c.source);
    before.push_back(c.echoed);
  }
  const size_t closed = m.inbound->recheck_policies() + m.plaintext->recheck_policies();
  EXPECT_EQ(closed, expected);
  EXPECT_EQ(m.inbound->recheck_policies() + m.plaintext->recheck_policies(), 0u);  // nothing left to close
  m.world.run_for(std::chrono::seconds(3));

  for (size_t i = 0; i < m.clients.size(); ++i) {
    const Client& c = m.clients[i];
    SCOPED_TRACE("client " + std::to_string(i) + " source " + std::to_string(int(c.source)));
    if (denied(c.source)) {
      EXPECT_TRUE(c.done);
      EXPECT_TRUE(c.error.has_value());
      if (c.error) {
        EXPECT_EQ(c.error->code, Errc::connection_reset) << c.error->message();
      }
    } else {
      EXPECT_FALSE(c.done);
      EXPECT_FALSE(c.error) << c.error->message();
      EXPECT_GT(c.echoed, before[i]);  // still carrying bytes
    }
  }
  EXPECT_EQ(m.inbound->counters().policy_closed + m.plaintext->counters().policy_closed, expected);
  size_t logged = 0;
  for (const ConnectionRecord& r : m.log_b) {
    if (r.error != kPolicyChangeError) continue;
    ++logged;
    EXPECT_EQ(r.response_flags, "DENY");
    const Source s = r.src.ip == kOutsideIp ? Source::outside : r.src.ip == kAliceIp ? Source::alice : Source::bob;
    EXPECT_TRUE(denied(s)) << format_access_log(r);
  }
  EXPECT_EQ(logged, expected);

  // The survivors finish cleanly and nothing stays active.
  for (Client& c : m.clients) c.stop = true;
  EXPECT_TRUE(m.world.run_until(
      [&] {
        for (const Client& c : m.clients)
          if (!c.done) return false;
        return true;
      },
      std::chrono::seconds(30)));
  for (const Client& c : m.clients) {
    if (!denied(c.source)) {
      EXPECT_FALSE(c.error) << c.error->message();
    }
  }
  m.world.run_for(std::chrono::seconds(1));
  EXPECT_EQ(m.active(), 0u);
  return m.world.trace().hash();
}

TEST(PolicyScenarios, APolicyUpdateClosesExactlyTheNewlyDeniedConnections) {
  for (uint64_t seed : seeds(8)) {
    const uint64_t first = policy_update_scenario(seed);
    EXPECT_EQ(policy_update_scenario(seed), first) << "seed " << seed << " does not replay";
  }
}

// The destination leaves the mesh state (its pod is gone) while mesh and
// plaintext connections to it run: a re-check (app/worker.cc runs one on
// every state change) closes every one of them, as upstream closes a
// connection whose destination workload it no longer knows.
TEST(PolicyScenarios, ARecheckClosesTheConnectionsOfADestinationThatLeftTheState) {
  for (uint64_t seed : seeds(4)) {
    SCOPED_TRACE("replay: ZT_SIM_SEED=" + std::to_string(seed));
    PolicyMesh m(seed);
    for (Source s : kSources) m.start_client(s);
    ASSERT_TRUE(m.world.run_until([&] { return all_connected(m); }, std::chrono::seconds(30)));
    m.world.run_for(std::chrono::milliseconds(int64_t(m.draw.between(100, 2000))));
    EXPECT_EQ(m.inbound->recheck_policies() + m.plaintext->recheck_policies(), 0u) << "nothing is denied yet";
    m.store.remove_workload("cluster1//v1/Pod/default/server");
    m.snapshot = m.store.publish();
    EXPECT_EQ(m.inbound->recheck_policies() + m.plaintext->recheck_policies(), m.clients.size());
    m.world.run_for(std::chrono::seconds(3));
    for (const Client& c : m.clients) {
      SCOPED_TRACE("source " + std::to_string(int(c.source)));
      EXPECT_TRUE(c.done) << "a connection to a destination that left the state stayed open";
      EXPECT_TRUE(c.error.has_value());
    }
    EXPECT_EQ(m.active(), 0u);
  }
}

// Runs scenario (b) for one seed; returns the trace hash.
uint64_t drain_scenario(uint64_t seed) {
  SCOPED_TRACE("replay: ZT_SIM_SEED=" + std::to_string(seed));
  PolicyMesh m(seed);
  for (Source s : {Source::alice, Source::outside}) {
    const uint64_t n = m.draw.between(1, 4);
    for (uint64_t i = 0; i < n; ++i) m.start_client(s);
  }
  EXPECT_TRUE(m.world.run_until([&] { return all_connected(m); }, std::chrono::seconds(30)));
  const size_t long_lived = m.clients.size();
  auto echoed = [&] {
    std::vector<uint64_t> v;
    for (size_t i = 0; i < long_lived; ++i) v.push_back(m.clients[i].echoed);
    return v;
  };
  auto still_flowing = [&](const std::vector<uint64_t>& before, const char* phase) {
    for (size_t i = 0; i < long_lived; ++i) {
      SCOPED_TRACE(std::string(phase) + ", client " + std::to_string(i));
      EXPECT_FALSE(m.clients[i].done);
      EXPECT_FALSE(m.clients[i].error) << m.clients[i].error->message();
      EXPECT_GT(m.clients[i].echoed, before[i]);
    }
  };

  // Node-b drains: no new tunnels or plaintext connections, old ones go on.
  m.world.run_for(std::chrono::milliseconds(int64_t(m.draw.between(100, 2000))));
  auto before = echoed();
  m.inbound->drain();
  m.plaintext->drain();
  Client& late_mesh = m.start_client(Source::alice);
  Client& late_plain = m.start_client(Source::outside);
  m.world.run_for(std::chrono::seconds(2));
  still_flowing(before, "inbound drained");
  EXPECT_TRUE(late_mesh.done && late_mesh.error.has_value());  // the tunnel could not open: reset
  EXPECT_TRUE(late_plain.done && late_plain.error.has_value());

  // Node-a drains too: captured connections are no longer accepted.
  before = echoed();
  m.outbound->drain();
  Client& late_out = m.start_client(Source::bob);
  m.world.run_for(std::chrono::seconds(2));
  still_flowing(before, "outbound drained");
  EXPECT_TRUE(late_out.done && late_out.error.has_value());
  EXPECT_FALSE(late_out.connected && late_out.echoed > 0);

  // The long-lived connections end on their own terms, cleanly.
  for (Client& c : m.clients) c.stop = true;
  EXPECT_TRUE(m.world.run_until(
      [&] {
        for (const Client& c : m.clients)
          if (!c.done) return false;
        return true;
      },
      std::chrono::seconds(30)));
  for (size_t i = 0; i < long_lived; ++i) EXPECT_FALSE(m.clients[i].error) << m.clients[i].error->message();
  m.world.run_for(std::chrono::seconds(1));
  EXPECT_EQ(m.active(), 0u);
  // Once the proxies are gone, no connection or stream is left in the world.
  m.teardown();
  m.world.run_for(std::chrono::seconds(5));
  EXPECT_EQ(m.world.live_streams(), 0u) << m.world.describe_leftovers();
  return m.world.trace().hash();
}

TEST(PolicyScenarios, DrainKeepsLongLivedConnectionsAndRefusesNewOnes) {
  for (uint64_t seed : seeds(6)) {
    const uint64_t first = drain_scenario(seed);
    EXPECT_EQ(drain_scenario(seed), first) << "seed " << seed << " does not replay";
  }
}

}  // namespace
}  // namespace zt::sim_tests
