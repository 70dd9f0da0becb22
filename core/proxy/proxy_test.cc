// The data path end to end on io/sim: a client pod's connection is captured
// on its node, routed by the mesh state, carried over HBONE (mTLS + HTTP/2)
// to the destination node, checked against policy there and delivered.
#include <gtest/gtest.h>

#include "core/proxy/proxy.h"
#include "core/proxy/proxy_protocol.h"
#include "core/proxy/socks5.h"
#include "core/mesh/local_config.h"
#include "core/mesh/store.h"
#include "tls/stream.h"
#include "testing/sim_harness.h"
#include "testing/sim_seeds.h"
#include "testing/tls_test_util.h"

namespace zt::core::proxy {
namespace {

using namespace zt::testing;

const IpAddr kClientIp = IpAddr::v4(10, 0, 1, 1), kServerIp = IpAddr::v4(10, 0, 2, 1), kOutsideIp = IpAddr::v4(10, 0, 3, 1);
// A workload behind an application tunnel (PROXY protocol on port 15088).
const IpAddr kTunneledIp = IpAddr::v4(10, 0, 2, 2);

std::string mesh_yaml(const std::string& policies) {
  return R"(workloads:
- uid: cluster1//v1/Pod/default/client
  name: client
  namespace: default
  serviceAccount: client
  workloadIps: ["10.0.1.1"]
  protocol: HBONE
  node: node-a
- uid: cluster1//v1/Pod/default/server
  name: server-0
  workloadName: server
  namespace: default
  serviceAccount: server
  workloadIps: ["10.0.2.1"]
  protocol: HBONE
  node: node-b
- uid: cluster1//v1/Pod/default/tunneled
  name: tunneled
  namespace: default
  serviceAccount: server
  workloadIps: ["10.0.2.2"]
  protocol: HBONE
  node: node-b
  applicationTunnel: {protocol: PROXY, port: 15088}
)" + policies;
}

using testing::echo;
using testing::echo_server;

// Two nodes, each running its half of the proxy, and one host outside the mesh.
struct Mesh {
  // on_demand: the state starts with the client only; the proxies ask for
  // what they do not know, and the ask publishes the whole mesh 20 ms later
  // (or never, when `silent_control_plane` is set).
  explicit Mesh(const std::string& policies = "", bool on_demand = false, uint64_t seed = 7, DialLimits dials = {})
      : world(seed), w(WallTime(std::chrono::seconds(1'767'225'600))) {
    a = &world.add_host("node-a", {kClientIp});
    b = &world.add_host("node-b", {kServerIp, kTunneledIp});
    c = &world.add_host("outside", {kOutsideIp});
    w = testing::TlsWorld(a->env().clock.wall_now());
    auto cfg = mesh::parse_local_config(mesh_yaml(policies), "test");
    EXPECT_TRUE(cfg) << cfg.error().message();
    mesh::load_local_config(store, *cfg);
    snapshot = store.publish();
    OnDemand ask_a, ask_b;
    if (on_demand) {
      full = snapshot;
      store.remove_workload("cluster1//v1/Pod/default/server");
      store.remove_workload("cluster1//v1/Pod/default/tunneled");
      snapshot = store.publish();
      for (auto [d, h] : {std::pair{&ask_a, &a}, std::pair{&ask_b, &b}}) {
        d->ask = [this, h](std::string key, std::function<void()> answered) {
          asked.push_back(key);
          if (silent_control_plane) return;
          (*h)->env().loop.run_after(std::chrono::milliseconds(20), [this, answered = std::move(answered)] {
            snapshot = full;
            answered();
          });
        };
      }
    }
    StateSource state = [this] { return snapshot; };
    a->capture_outbound(15001);
    auto out_l = a->env().net.listen(Endpoint{IpAddr::unspecified(IpAddr::Family::v4), 15001}, {});
    hbone::PoolConfig pool_cfg;
    pool_cfg.socket.mark = 1337;  // the pool's own connections must bypass capture
    pool = std::make_unique<hbone::Pool>(a->env(), pool_cfg,
                                         [this](const hbone::PoolKey&) -> Result<std::shared_ptr<const tls::TlsContext>> {
                                           return client_ctx;
                                         });
    auto client_creds = testing::credentials(*w.ca->issue(testing::test_identity("client"), std::chrono::hours(24), w.now));
    auto server_creds = testing::credentials(*w.ca->issue(testing::test_identity("server"), std::chrono::hours(24), w.now));
    client_ctx = w.context(w.config(tls::TlsRole::client, client_creds));
    OutboundConfig out_cfg;
    out_cfg.metrics = &traffic_a;
    out_cfg.access_log = [this](const ConnectionRecord& r) { log_a.push_back(r); };
    out_cfg.on_demand = ask_a;
    outbound = std::make_unique<Outbound>(a->env(), std::move(*out_l), state, *pool, out_cfg);
    auto in_l = b->env().net.listen(Endpoint{IpAddr::unspecified(IpAddr::Family::v4), 15008}, {});
    InboundConfig in_cfg;
    in_cfg.metrics = &traffic_b;
    in_cfg.access_log = [this](const ConnectionRecord& r) { log_b.push_back(r); };
    in_cfg.on_demand = ask_b;
    in_cfg.dials = dials;
    in_cfg.streams_summary = [this](const StreamsSummary& s) { summaries_b.push_back(s); };
    inbound = std::make_unique<Inbound>(b->env(), std::move(*in_l), w.context(w.config(tls::TlsRole::server, server_creds)),
                                        state, in_cfg);
    auto socks_l = a->env().net.listen(Endpoint{kClientIp, 15080}, {});
    socks = std::make_unique<Socks5Server>(a->env(), std::move(*socks_l), state, *outbound);
    socks->start();
    b->capture_inbound(15006);
    auto plain_l = b->env().net.listen(Endpoint{IpAddr::unspecified(IpAddr::Family::v4), 15006}, {});
    InboundConfig plain_cfg;
    plain_cfg.access_log = [this](const ConnectionRecord& r) { log_b.push_back(r); };
    plaintext = std::make_unique<InboundPlaintext>(b->env(), std::move(*plain_l), state, plain_cfg);
    outbound->start();
    inbound->start();
    plaintext->start();
    for (auto* h : {b, c}) {
      auto l = h->env().net.listen(Endpoint{h->addrs()[0], 8080}, {});
      apps.push_back(std::move(*l));
      app_scope.spawn(echo_server(*apps.back(), app_scope));
    }
  }
  ~Mesh() {
    client_scope.clear();
    app_scope.clear();
    apps.clear();
    socks.reset();
    outbound.reset();
    inbound.reset();
    plaintext.reset();
    pool.reset();
  }

  // The client pod connects to `dst`, sends data and half-closes, reads the echo.
  testing::ReadAll talk(Endpoint dst, const std::vector<uint8_t>& data) { return talk_from(*a, dst, data); }
  testing::ReadAll talk_from(io::sim::Host& from, Endpoint dst, const std::vector<uint8_t>& data) {
    testing::ReadAll got;
    bool done = false;
    client_scope.spawn([](Env& env, Endpoint dst, const std::vector<uint8_t>& data, testing::ReadAll& got,
                          bool& done) -> Task<void> {
      auto s = co_await io::connect(env, dst, {}, std::chrono::seconds(10));
      if (!s) {
        got.end = s.error();
        done = true;
        co_return;
      }
      co_await join([](Stream& s, const std::vector<uint8_t>& d) -> Task<void> {
                      if (!d.empty()) (void)co_await io::write_all(s, d);
                      (void)s.shutdown_write();
                    }(**s, data),
                    [](Stream& s, testing::ReadAll& got) -> Task<void> { got = co_await testing::read_all(s); }(**s, got));
      done = true;
    }(from.env(), dst, data, got, done));
    world.run_until([&] { return done; }, std::chrono::minutes(2));
    return got;
  }

  io::sim::World world;
  io::sim::Host *a, *b, *c;
  metrics::Registry metrics_a, metrics_b;
  TrafficMetrics traffic_a{metrics_a}, traffic_b{metrics_b};
  std::vector<ConnectionRecord> log_a, log_b;  // access log records, per node
  std::vector<StreamsSummary> summaries_b;      // node-b's summaries of requests cut short
  testing::TlsWorld w;
  mesh::MeshStore store;
  std::shared_ptr<const mesh::StateSnapshot> snapshot, full;
  std::vector<std::string> asked;  // on demand: what the proxies asked for
  bool silent_control_plane = false;
  std::shared_ptr<const tls::TlsContext> client_ctx;
  std::unique_ptr<hbone::Pool> pool;
  std::unique_ptr<Outbound> outbound;
  std::unique_ptr<Inbound> inbound;
  std::unique_ptr<InboundPlaintext> plaintext;
  std::unique_ptr<Socks5Server> socks;
  std::vector<std::unique_ptr<Listener>> apps;
  Scope app_scope, client_scope;
};

TEST(Proxy, MeshTrafficGoesOverHboneAndArrivesIntact) {
  Mesh m;
  const auto data = testing::pattern(300000, 1);
  testing::ReadAll got = m.talk(Endpoint{kServerIp, 8080}, data);
  EXPECT_TRUE(got.end.ok() && *got.end == 0) << (got.end.ok() ? "" : got.end.error().message());
  EXPECT_TRUE(got.bytes == data);
  EXPECT_EQ(m.outbound->counters().hbone, 1u);
  EXPECT_EQ(m.inbound->counters().allowed, 1u);
  EXPECT_EQ(m.pool->counters().connections_opened, 1u);
  // Both sides report the connection, with the bytes each way.
  m.world.run_for(std::chrono::seconds(1));
  const std::string out = m.metrics_a.render(), in = m.metrics_b.render();
  EXPECT_NE(out.find("istio_tcp_connections_opened_total{"), std::string::npos) << out;
  EXPECT_NE(out.find("reporter=\"source\""), std::string::npos);
  EXPECT_NE(out.find("connection_security_policy=\"mutual_tls\""), std::string::npos);
  EXPECT_NE(out.find("destination_workload=\"server\""), std::string::npos);
  EXPECT_NE(out.find("} 300000\n"), std::string::npos) << out;  // sent and received bytes
  EXPECT_NE(in.find("reporter=\"destination\""), std::string::npos) << in;
  EXPECT_NE(in.find("source_principal=\"spiffe://cluster.local/ns/default/sa/client\""), std::string::npos) << in;
}

// Early data: the client's first bytes go right behind the CONNECT, not
// after its answer, so on a warm connection the first echo takes one round
// trip between the nodes, not two; the access log and metrics still count
// those bytes.
TEST(Proxy, TheClientsFirstBytesGoWithTheConnect) {
  Mesh m;
  const auto warm = testing::pattern(10, 1);
  ASSERT_TRUE(m.talk(Endpoint{kServerIp, 8080}, warm).bytes == warm);  // the pool's connection is up
  Duration first_echo{};
  bool done = false;
  m.client_scope.spawn([](Env& env, Duration& took, bool& done) -> Task<void> {
    const MonoTime start = env.clock.now();
    auto s = co_await io::connect(env, Endpoint{kServerIp, 8080}, {}, std::chrono::seconds(10));
    if (s) {
      const std::vector<uint8_t> one{42};
      uint8_t back = 0;
      Result<void> w = co_await io::write_all(**s, one);
      Result<size_t> n = co_await io::read(**s, MutableBytes(&back, 1));
      if (w && n && *n == 1 && back == 42) took = env.clock.now() - start;
      (*s)->close();
    }
    done = true;
  }(m.a->env(), first_echo, done));
  ASSERT_TRUE(m.world.run_until([&] { return done; }, std::chrono::seconds(10)));
  const Duration round_trip = 2 * io::sim::LinkParams{}.latency;
  EXPECT_GT(first_echo, round_trip);
  EXPECT_LT(first_echo, round_trip * 3 / 2) << std::chrono::duration_cast<std::chrono::microseconds>(first_echo).count() << " us";
  m.world.run_for(std::chrono::seconds(1));
  ASSERT_EQ(m.log_a.size(), 2u);
  EXPECT_EQ(m.log_a[1].bytes_sent, 1u);
}

// A client that says nothing until well after the tunnel is up (as when
// the server speaks first): the early read still waits, and the relay takes
// over what it brings.
TEST(Proxy, AClientThatSpeaksAfterTheAnswerIsRelayedThroughTheEarlyRead) {
  Mesh m;
  const auto data = testing::pattern(5000, 3);
  testing::ReadAll got;
  bool done = false;
  m.client_scope.spawn([](Env& env, const std::vector<uint8_t>& data, testing::ReadAll& got, bool& done) -> Task<void> {
    auto s = co_await io::connect(env, Endpoint{kServerIp, 8080}, {}, std::chrono::seconds(10));
    if (s) {
      co_await io::sleep(env.loop, std::chrono::milliseconds(50));  // the tunnel is long open by now
      Result<void> w = co_await io::write_all(**s, data);
      EXPECT_TRUE(w);
      EXPECT_TRUE((*s)->shutdown_write());
      got = co_await testing::read_all(**s);
    }
    done = true;
  }(m.a->env(), data, got, done));
  ASSERT_TRUE(m.world.run_until([&] { return done; }, std::chrono::seconds(10)));
  EXPECT_TRUE(got.end.ok() && *got.end == 0);
  EXPECT_TRUE(got.bytes == data);
  m.world.run_for(std::chrono::seconds(1));
  ASSERT_EQ(m.log_a.size(), 1u);
  EXPECT_EQ(m.log_a[0].bytes_sent, data.size());
  EXPECT_EQ(m.log_a[0].bytes_recv, data.size());
}

TEST(Proxy, APolicyDenialResetsTheClient) {
  Mesh m(R"(policies:
- action: Deny
  name: no-8080
  namespace: default
  scope: Namespace
  rules:
  - - - destinationPorts: [8080]
)");
  testing::ReadAll got = m.talk(Endpoint{kServerIp, 8080}, testing::pattern(100, 2));
  ASSERT_FALSE(got.end.ok());
  EXPECT_EQ(got.end.code(), Errc::connection_reset);
  EXPECT_TRUE(got.bytes.empty());
  EXPECT_EQ(m.inbound->counters().denied, 1u);
  EXPECT_NE(m.metrics_b.render().find("istio_tcp_connections_failed_total{"), std::string::npos);
  EXPECT_NE(m.metrics_b.render().find("response_flags=\"DENY\""), std::string::npos);
}

TEST(AccessLog, BothSidesRecordACompletedConnection) {
  Mesh m;
  const auto data = testing::pattern(30000, 11);
  testing::ReadAll got = m.talk(Endpoint{kServerIp, 8080}, data);
  ASSERT_TRUE(got.bytes == data);
  m.world.run_for(std::chrono::seconds(1));
  ASSERT_EQ(m.log_a.size(), 1u);
  ASSERT_EQ(m.log_b.size(), 1u);
  const ConnectionRecord& out = m.log_a[0];
  EXPECT_EQ(out.direction, Direction::outbound);
  EXPECT_EQ(out.src.ip, kClientIp);
  EXPECT_EQ(out.src_workload, "client");
  EXPECT_EQ(out.src_namespace, "default");
  EXPECT_EQ(out.src_identity, "spiffe://cluster.local/ns/default/sa/client");
  EXPECT_EQ(out.dst, (Endpoint{kServerIp, 15008}));
  EXPECT_EQ(out.hbone_addr, "10.0.2.1:8080");
  EXPECT_EQ(out.dst_workload, "server-0");  // the pod, as upstream logs it
  EXPECT_EQ(out.dst_identity, "spiffe://cluster.local/ns/default/sa/server");
  EXPECT_EQ(out.bytes_sent, data.size());
  EXPECT_EQ(out.bytes_recv, data.size());
  EXPECT_TRUE(out.ok()) << out.error;
  EXPECT_EQ(out.response_flags, "");
  EXPECT_GT(out.duration, Duration(0));
  const ConnectionRecord& in = m.log_b[0];
  EXPECT_EQ(in.direction, Direction::inbound);
  EXPECT_EQ(in.src_workload, "client");
  EXPECT_EQ(in.src_identity, "spiffe://cluster.local/ns/default/sa/client");
  EXPECT_EQ(in.dst, (Endpoint{kServerIp, 8080}));
  EXPECT_EQ(in.hbone_addr, "10.0.2.1:8080");
  EXPECT_EQ(in.dst_workload, "server-0");
  EXPECT_EQ(in.bytes_sent, data.size());
  EXPECT_EQ(in.bytes_recv, data.size());
  EXPECT_TRUE(in.ok()) << in.error;
  const std::string line = format_access_log(in);
  EXPECT_EQ(line.rfind("src.addr=10.0.1.1:", 0), 0u) << line;
  EXPECT_EQ(access_log_level(in), LogLevel::info);
  EXPECT_NE(line.find(" direction=\"inbound\" bytes_sent=30000 bytes_recv=30000 duration="), std::string::npos)
      << line;
}

TEST(AccessLog, ADenialIsRecordedWithTheDenyFlagAndTheClientSideWithConnect) {
  Mesh m(R"(policies:
- action: Deny
  name: no-8080
  namespace: default
  scope: Namespace
  rules:
  - - - destinationPorts: [8080]
)");
  (void)m.talk(Endpoint{kServerIp, 8080}, testing::pattern(100, 12));
  m.world.run_for(std::chrono::seconds(1));
  ASSERT_EQ(m.log_b.size(), 1u);
  EXPECT_EQ(m.log_b[0].response_flags, "DENY");
  EXPECT_NE(m.log_b[0].error.find("policy rejection"), std::string::npos) << m.log_b[0].error;
  EXPECT_NE(m.log_b[0].error.find("default/no-8080"), std::string::npos) << m.log_b[0].error;
  EXPECT_EQ(m.log_b[0].bytes_sent, 0u);
  EXPECT_EQ(access_log_level(m.log_b[0]), LogLevel::error);
  EXPECT_NE(format_access_log(m.log_b[0]).find(" response_flags=\"DENY\" error="), std::string::npos);
  ASSERT_EQ(m.log_a.size(), 1u);
  EXPECT_EQ(m.log_a[0].response_flags, "CONNECT");
  EXPECT_EQ(m.log_a[0].error, "upstream answered 401");
}

TEST(AccessLog, AnUpstreamThatRefusesIsRecordedWithConnect) {
  Mesh m;
  (void)m.talk(Endpoint{kServerIp, 9}, testing::pattern(10, 13));
  m.world.run_for(std::chrono::seconds(1));
  ASSERT_EQ(m.log_b.size(), 1u);
  EXPECT_EQ(m.log_b[0].response_flags, "CONNECT");
  EXPECT_FALSE(m.log_b[0].ok());
  EXPECT_EQ(m.log_b[0].dst, (Endpoint{kServerIp, 9}));
  ASSERT_EQ(m.log_a.size(), 1u);
  EXPECT_EQ(m.log_a[0].response_flags, "CONNECT");
}

TEST(AccessLog, PlaintextAndPassthroughRecordsCarryNoIdentities) {
  Mesh m;
  const auto data = testing::pattern(1000, 14);
  ASSERT_TRUE(m.talk_from(*m.c, Endpoint{kServerIp, 8080}, data).bytes == data);
  ASSERT_TRUE(m.talk(Endpoint{kOutsideIp, 8080}, data).bytes == data);
  m.world.run_for(std::chrono::seconds(1));
  ASSERT_EQ(m.log_b.size(), 1u);
  EXPECT_EQ(m.log_b[0].direction, Direction::inbound);
  EXPECT_EQ(m.log_b[0].src.ip, kOutsideIp);
  EXPECT_EQ(m.log_b[0].src_workload, "");
  EXPECT_EQ(m.log_b[0].src_identity, "");
  EXPECT_EQ(m.log_b[0].dst_identity, "");
  EXPECT_EQ(m.log_b[0].dst_workload, "server-0");
  EXPECT_EQ(m.log_b[0].hbone_addr, "");
  EXPECT_EQ(m.log_b[0].bytes_recv, data.size());
  ASSERT_EQ(m.log_a.size(), 1u);
  EXPECT_EQ(m.log_a[0].dst, (Endpoint{kOutsideIp, 8080}));
  EXPECT_EQ(m.log_a[0].src_workload, "client");
  EXPECT_EQ(m.log_a[0].src_identity, "");
  EXPECT_EQ(m.log_a[0].hbone_addr, "");
  EXPECT_TRUE(m.log_a[0].ok());
}

// A workload behind a PROXY protocol application tunnel: reads the header,
// keeps it, then echoes the payload that follows.
Task<void> proxy_protocol_echo(StreamPtr s, std::optional<ProxyHeader>& header, std::string& error) {
  std::vector<uint8_t> got, buf(4096);
  for (;;) {
    Result<ProxyHeader> h = parse_proxy_v2(got);
    if (h) {
      header = *h;
      break;
    }
    if (h.error().detail != "incomplete") {
      error = h.error().detail;
      s->abort();
      co_return;
    }
    auto n = co_await io::read(*s, buf);
    if (!n || *n == 0) {
      error = "ended before the header";
      co_return;
    }
    got.insert(got.end(), buf.begin(), buf.begin() + std::ptrdiff_t(*n));
  }
  const std::vector<uint8_t> rest(got.begin() + std::ptrdiff_t(header->header_size), got.end());
  if (!rest.empty() && !co_await io::write_all(*s, rest)) co_return;
  co_await echo(std::move(s));
}

TEST(Proxy, AnApplicationTunnelGetsAProxyProtocolHeaderBeforeThePayload) {
  Mesh m;
  std::optional<ProxyHeader> header;
  std::string error;
  auto l = m.b->env().net.listen(Endpoint{kTunneledIp, 15088}, {});
  ASSERT_TRUE(l);
  m.app_scope.spawn([](Listener& l, std::optional<ProxyHeader>& header, std::string& error) -> Task<void> {
    auto s = co_await io::accept(l);
    if (s) co_await proxy_protocol_echo(std::move(*s), header, error);
  }(**l, header, error));
  const auto data = testing::pattern(70000, 15);
  testing::ReadAll got = m.talk(Endpoint{kTunneledIp, 8080}, data);
  EXPECT_TRUE(got.end.ok() && *got.end == 0);
  EXPECT_TRUE(got.bytes == data);  // the header never reaches the client
  EXPECT_EQ(error, "");
  ASSERT_TRUE(header.has_value());
  m.world.run_for(std::chrono::seconds(1));
  ASSERT_EQ(m.log_a.size(), 1u);
  EXPECT_EQ(header->src, m.log_a[0].src);  // the original client, from `forwarded`
  EXPECT_EQ(header->dst, (Endpoint{kTunneledIp, 8080}));
  EXPECT_EQ(header->identity, "spiffe://cluster.local/ns/default/sa/client");
  ASSERT_EQ(m.log_b.size(), 1u);
  EXPECT_EQ(m.log_b[0].dst, (Endpoint{kTunneledIp, 15088}));  // connected to the tunnel port
  EXPECT_EQ(m.log_b[0].hbone_addr, "10.0.2.2:8080");
  EXPECT_EQ(m.log_b[0].bytes_sent, data.size());  // payload only, not the header
  (*l)->close();
}

// On demand: a destination the state does not know is asked for, and the
// connection waits for the answer, then goes over HBONE as usual.
TEST(Proxy, OnDemandAnUnknownDestinationIsAskedForAndWaitedFor) {
  Mesh m("", /*on_demand=*/true);
  const auto data = testing::pattern(1000, 3);
  const MonoTime t0 = m.world.now();
  testing::ReadAll got = m.talk(Endpoint{kServerIp, 8080}, data);
  EXPECT_TRUE(got.end.ok() && *got.end == 0) << (got.end.ok() ? "" : got.end.error().message());
  EXPECT_TRUE(got.bytes == data);
  EXPECT_EQ(m.asked, std::vector<std::string>{"/10.0.2.1"}) << "only the destination was unknown";
  EXPECT_EQ(m.outbound->counters().demanded, 1u);
  EXPECT_EQ(m.outbound->counters().demand_timeouts, 0u);
  EXPECT_EQ(m.outbound->counters().hbone, 1u);
  EXPECT_EQ(m.inbound->counters().demanded, 0u) << "known by the time the tunnel arrived";
  EXPECT_LT(m.world.now() - t0, std::chrono::seconds(1));
}

// A control plane that never answers costs a connection the bound, then it
// is routed with what is known (here: not a mesh address, so passthrough).
TEST(Proxy, OnDemandAnUnansweredAskIsBounded) {
  Mesh m("", /*on_demand=*/true);
  m.silent_control_plane = true;
  const MonoTime t0 = m.world.now();
  (void)m.talk(Endpoint{kOutsideIp, 8080}, testing::pattern(100, 4));
  EXPECT_EQ(m.asked, std::vector<std::string>{"/10.0.3.1"});
  EXPECT_EQ(m.outbound->counters().demand_timeouts, 1u);
  EXPECT_EQ(m.outbound->counters().passthrough, 1u);
  EXPECT_GE(m.world.now() - t0, OnDemand{}.timeout);
}

// Rapid reset (CVE-2023-44487) from a mesh peer: one HBONE connection opens
// CONNECT streams and resets each at once, thousands of them, while dials
// to the workload are slow (500 ms each way on node-b). Each reset stops its
// dial at once, so dials in flight stay bounded and drain with the attack;
// a well-behaved client's connections keep succeeding throughout.
TEST(Proxy, RapidResetStopsEachDialAndOthersKeepBeingServed) {
  for (uint64_t seed : testing::sim_seeds(3)) {
  SCOPED_TRACE(testing::replay(seed));
  Mesh m("", false, seed);
  // Per seed: how slow node-b's dials are, the bursts' size and spacing.
  Rng rng(seed);
  io::sim::LinkParams slow;
  slow.latency = std::chrono::milliseconds(100 + rng.below(900));
  m.world.set_link(m.b->id(), m.b->id(), slow);  // node-b to its own workloads
  const int kRounds = 50 + int(rng.below(100)), kPerRound = 10 + int(rng.below(90));
  const Duration spacing = std::chrono::milliseconds(10 + rng.below(90));
  int opened = 0;
  size_t max_dialing = 0;
  bool attacker_done = false;
  std::unique_ptr<h2::Connection> attacker;
  Scope attack;
  attack.spawn([](Mesh& m, std::unique_ptr<h2::Connection>& conn, int& opened, bool& done, int rounds, int per_round,
                  Duration spacing) -> Task<void> {
    SocketOptions opts;
    opts.mark = 1337;  // past node-a's capture, straight to node-b's 15008
    auto tcp = co_await io::connect(m.a->env(), Endpoint{kServerIp, 15008}, opts, std::chrono::seconds(5));
    EXPECT_TRUE(tcp.ok());
    if (!tcp) co_return;
    auto tls = std::make_unique<tls::TlsStream>(m.a->env(), m.client_ctx, std::move(*tcp));
    EXPECT_TRUE((co_await tls::handshake(*tls)).ok());
    conn = std::make_unique<h2::Connection>(m.a->env(), std::move(tls), h2::Role::client, h2::Settings::client());
    conn->start();
    for (int round = 0; round < rounds && !conn->dead(); ++round) {
      // A burst of HEADERS, and as soon as they are out, RST_STREAM for each.
      std::vector<StreamPtr> burst;
      for (int i = 0; i < per_round && conn->accepting_streams(); ++i) {
        conn->open({"CONNECT", "10.0.2.1:8080", {}}, [](Result<h2::Opened>) {},
                   [&burst](StreamPtr early) { burst.push_back(std::move(early)); });
        ++opened;
      }
      co_await io::sleep(m.a->env().loop, std::chrono::microseconds(1));
      for (StreamPtr& s : burst) s->abort();
      co_await io::sleep(m.a->env().loop, spacing);
    }
    done = true;
  }(m, attacker, opened, attacker_done, kRounds, kPerRound, spacing));
  // Dials in flight, sampled every millisecond on node-b.
  std::function<void()> sample = [&] {
    max_dialing = std::max(max_dialing, m.inbound->dials_in_flight());
    if (!attacker_done) m.b->env().loop.run_after(std::chrono::milliseconds(1), sample);
  };
  sample();
  // The well-behaved client, meanwhile: one connection after another.
  int good = 0, good_ok = 0;
  while (!attacker_done && good < 20) {
    ++good;
    const auto data = testing::pattern(200, uint8_t(good));
    testing::ReadAll got = m.talk(Endpoint{kServerIp, 8080}, data);
    if (got.end.ok() && got.bytes == data) ++good_ok;
  }
  ASSERT_TRUE(m.world.run_until([&] { return attacker_done; }, std::chrono::minutes(1)));
  m.world.run_for(std::chrono::milliseconds(500));
  const InboundCounters& c = m.inbound->counters();
  std::printf("rapid reset: %d streams opened and reset; %llu requests cancelled, %llu refused, %llu connections calmed; "
              "%d of %d well-behaved connections intact; at most %zu dials in flight\n",
              opened, static_cast<unsigned long long>(c.cancelled), static_cast<unsigned long long>(c.dials_refused),
              static_cast<unsigned long long>(m.inbound->server_counters().calmed), good_ok, good, max_dialing);
  EXPECT_GE(opened, 500);
  EXPECT_GE(c.requests, uint64_t(opened)) << "the attack's requests reached the server";
  EXPECT_EQ(good_ok, good) << "the other client was not served";
  EXPECT_GE(good, 1);
  EXPECT_EQ(m.inbound->dials_in_flight(), 0u) << "a reset stream's dial went on";
  EXPECT_LE(max_dialing, size_t(kPerRound) + 2) << "dials of reset streams piled up";
  EXPECT_GE(c.cancelled + m.inbound->server_counters().calmed, 1u);
  EXPECT_EQ(c.allowed, static_cast<uint64_t>(good_ok)) << "no reset stream reached the workload";
  attack.clear();
  attacker.reset();
  }
}

// Rapid reset from one peer over several HBONE connections, fairness under
// it: the peer (identity "attacker") opens bursts of CONNECT streams on each
// connection and resets them only after a while, so that their slow dials
// (node-b reaches its workloads with 100-1000 ms of latency) pile up, as
// they do when HEADERS arrive faster than RST_STREAM. The dial bounds are
// small here so that they bite: the attacker is held to its connection and
// peer bounds (or, with no peer bound below the listener's, by the
// heavy-peer rule), and the well-behaved client (identity "client", through
// node-a's pool) is never refused. Per seed: latency, bursts, reset delay,
// connections. Requests cut short write one summary per connection, not one
// access log record each.
void rapid_reset_fairness(const DialLimits& limits, const char* what) {
  for (uint64_t seed : testing::sim_seeds(3)) {
    SCOPED_TRACE(testing::replay(seed));
    SCOPED_TRACE(what);
    Mesh m("", false, seed, limits);
    Rng rng(seed);
    io::sim::LinkParams slow;
    slow.latency = std::chrono::milliseconds(100 + rng.below(900));
    m.world.set_link(m.b->id(), m.b->id(), slow);
    const int kConnections = 2 + int(rng.below(4));
    const int kRounds = 20 + int(rng.below(30)), kPerRound = 30 + int(rng.below(50));
    const Duration reset_after = std::chrono::milliseconds(1 + rng.below(60));
    const Duration spacing = std::chrono::milliseconds(20 + rng.below(60));
    const int kGood = 3 + int(rng.below(3));
    auto attacker_creds =
        testing::credentials(*m.w.ca->issue(testing::test_identity("attacker"), std::chrono::hours(24), m.w.now));
    std::shared_ptr<const tls::TlsContext> attacker_ctx = m.w.context(m.w.config(tls::TlsRole::client, attacker_creds));
    struct Attack {
      int opened = 0, running = 0;
      bool stop = false;  // the well-behaved client is done: the attack may end
      std::vector<std::unique_ptr<h2::Connection>> conns;
    } attack;
    attack.conns.resize(size_t(kConnections));
    Scope attackers;
    for (int i = 0; i < kConnections; ++i) {
      ++attack.running;
      attackers.spawn([](Mesh& m, std::shared_ptr<const tls::TlsContext> ctx, std::unique_ptr<h2::Connection>& conn,
                         Attack& attack, int rounds, int per_round, Duration reset_after, Duration spacing) -> Task<void> {
        SocketOptions opts;
        opts.mark = 1337;  // past node-a's capture, straight to node-b's 15008
        auto tcp = co_await io::connect(m.a->env(), Endpoint{kServerIp, 15008}, opts, std::chrono::seconds(5));
        EXPECT_TRUE(tcp.ok());
        if (tcp) {
          auto tls = std::make_unique<tls::TlsStream>(m.a->env(), std::move(ctx), std::move(*tcp));
          const Result<void> hs = co_await tls::handshake(*tls);
          EXPECT_TRUE(hs.ok());
          conn = std::make_unique<h2::Connection>(m.a->env(), std::move(tls), h2::Role::client, h2::Settings::client());
          conn->start();
          for (int round = 0; (round < rounds || !attack.stop) && !conn->dead(); ++round) {
            std::vector<StreamPtr> burst;
            for (int i = 0; i < per_round && conn->accepting_streams(); ++i) {
              conn->open({"CONNECT", "10.0.2.1:8080", {}}, [](Result<h2::Opened>) {},
                         [&burst](StreamPtr early) { burst.push_back(std::move(early)); });
              ++attack.opened;
            }
            co_await io::sleep(m.a->env().loop, reset_after);
            for (StreamPtr& s : burst) s->abort();
            co_await io::sleep(m.a->env().loop, spacing);
          }
        }
        --attack.running;
      }(m, attacker_ctx, attack.conns[size_t(i)], attack, kRounds, kPerRound, reset_after, spacing));
    }
    // The bounds, sampled every millisecond on node-b.
    const std::string attacker_id = "spiffe://cluster.local/ns/default/sa/attacker";
    size_t max_dialing = 0, max_attacker = 0, max_per_connection = 0;
    std::function<void()> sample = [&] {
      const DialBudget& d = m.inbound->dials();
      max_dialing = std::max(max_dialing, d.in_flight());
      max_attacker = std::max(max_attacker, d.in_flight_of_peer(attacker_id));
      // The inbound's budget is its own: its listener is number 1.
      for (uint64_t id = 1; id < 64; ++id) {
        max_per_connection = std::max(max_per_connection, d.in_flight_of_connection(DialBudget::connection_key(1, id)));
      }
      if (attack.running > 0) m.b->env().loop.run_after(std::chrono::milliseconds(1), sample);
    };
    sample();
    int good = 0, good_ok = 0;
    std::vector<std::string> failures;
    // The well-behaved client, meanwhile: one connection after another.
    while (attack.running > 0 && good < kGood) {
      ++good;
      const auto data = testing::pattern(300, uint8_t(good));
      testing::ReadAll got = m.talk(Endpoint{kServerIp, 8080}, data);
      if (got.end.ok() && got.bytes == data) {
        ++good_ok;
      } else if (failures.size() < 5) {
        failures.push_back(got.end.ok() ? "echoed " + std::to_string(got.bytes.size()) + " bytes"
                                        : got.end.error().message());
      }
    }
    attack.stop = true;
    ASSERT_TRUE(m.world.run_until([&] { return attack.running == 0; }, std::chrono::minutes(5)));
    m.world.run_for(std::chrono::seconds(2));
    const InboundCounters& c = m.inbound->counters();
    const DialBudget& d = m.inbound->dials();
    std::printf("%s: %d streams over %d connections, %llu cancelled, refused %llu/%llu/%llu "
                "(connection/peer/listener); %d of %d well-behaved intact; at most %zu dials in flight (attacker %zu, "
                "one connection %zu)\n",
                what, attack.opened, kConnections, static_cast<unsigned long long>(c.cancelled),
                static_cast<unsigned long long>(d.refused(DialRefusal::connection)),
                static_cast<unsigned long long>(d.refused(DialRefusal::peer)),
                static_cast<unsigned long long>(d.refused(DialRefusal::listener)), good_ok, good, max_dialing,
                max_attacker, max_per_connection);
    EXPECT_GE(attack.opened, 1000);
    EXPECT_EQ(good, kGood) << "the attack ended first";
    EXPECT_EQ(good_ok, good) << "the well-behaved client was refused: " << (failures.empty() ? "" : failures[0]);
    EXPECT_LE(max_dialing, limits.per_listener);
    EXPECT_LE(max_attacker, std::min(limits.per_peer, d.near_full_mark()));
    EXPECT_LE(max_per_connection, limits.per_connection);
    EXPECT_GE(d.refused(DialRefusal::connection) + d.refused(DialRefusal::peer), 1u) << "the bounds never bit";
    EXPECT_EQ(d.refused(DialRefusal::listener), 0u) << "the listener filled up";
    EXPECT_EQ(c.allowed, uint64_t(good_ok)) << "a reset stream reached the workload";
    EXPECT_EQ(d.in_flight(), 0u) << "a reset stream's dial went on";
    // Access log: one record per well-behaved connection, none per attack stream.
    for (const ConnectionRecord& r : m.log_b) EXPECT_EQ(r.src_identity, "spiffe://cluster.local/ns/default/sa/client");
    EXPECT_EQ(m.log_b.size(), size_t(good_ok));
    // The attacker's connections end: each one's summary adds up, and nothing is left behind.
    attackers.clear();
    for (auto& conn : attack.conns) conn.reset();
    m.world.run_for(std::chrono::seconds(2));
    uint64_t cancelled = 0, refused = 0;
    size_t closed = 0;
    for (const StreamsSummary& s : m.summaries_b) {
      EXPECT_EQ(s.identity, attacker_id);
      cancelled += s.cancelled;
      refused += s.refused_total();
      closed += s.connection_closed ? 1 : 0;
    }
    EXPECT_EQ(closed, size_t(kConnections)) << "one final summary per attack connection";
    EXPECT_LE(m.summaries_b.size(), size_t(kConnections) * 10) << "summaries are rate-limited";
    EXPECT_EQ(cancelled, c.cancelled);
    EXPECT_EQ(refused, c.dials_refused);
    EXPECT_EQ(d.connections(), 0u);
    EXPECT_LE(m.inbound->connections_tracked(), 1u) << "only the client's pooled connection";
  }
}

TEST(Proxy, RapidResetFromOnePeerOnManyConnectionsLeavesOthersTheirDials) {
  DialLimits limits;
  limits.per_connection = 16;
  limits.per_peer = 32;
  limits.per_listener = 48;
  rapid_reset_fairness(limits, "rapid reset, peer bound");
}

TEST(Proxy, RapidResetHeavyPeerIsRefusedFirstWhenNoPeerBoundBites) {
  DialLimits limits;
  limits.per_connection = 48;
  limits.per_peer = 48;
  limits.per_listener = 48;
  rapid_reset_fairness(limits, "rapid reset, heavy-peer rule");
}

// A header flood from a mesh peer: requests whose header lists are past
// 64 KiB (random sizes per seed) are answered at once and never reach the
// inbound proxy: 431, or, when an encoded header is past what nghttp2
// inflates (64 KiB), GOAWAY(COMPRESSION_ERROR) and the connection ends (the
// attacker reconnects). A well-behaved client is served meanwhile.
TEST(Proxy, OversizedHeaderFloodsAreAnsweredAtOnceAndOthersServed) {
  for (uint64_t seed : testing::sim_seeds(2)) {
    SCOPED_TRACE(testing::replay(seed));
    Mesh m("", false, seed);
    Rng rng(seed);
    const int kRequests = 20 + int(rng.below(80));
    std::vector<size_t> sizes;
    for (int i = 0; i < kRequests; ++i) sizes.push_back((65 << 10) + rng.below(200 << 10));
    struct Tally {
      int answered_431 = 0, connection_ended = 0, other = 0, connections = 0;
    } tally;
    std::vector<std::unique_ptr<h2::Connection>> conns;
    Scope attack;
    attack.spawn([](Mesh& m, std::vector<std::unique_ptr<h2::Connection>>& conns, const std::vector<size_t>& sizes,
                    Tally& t) -> Task<void> {
      for (size_t size : sizes) {
        if (conns.empty() || !conns.back()->accepting_streams()) {
          SocketOptions opts;
          opts.mark = 1337;
          auto tcp = co_await io::connect(m.a->env(), Endpoint{kServerIp, 15008}, opts, std::chrono::seconds(5));
          if (!tcp) co_return;
          auto tls = std::make_unique<tls::TlsStream>(m.a->env(), m.client_ctx, std::move(*tcp));
          if (!co_await tls::handshake(*tls)) co_return;
          h2::Settings big = h2::Settings::client();
          big.header_list_bytes_max = 512 << 10;
          conns.push_back(std::make_unique<h2::Connection>(m.a->env(), std::move(tls), h2::Role::client, big));
          conns.back()->start();
          ++t.connections;
        }
        conns.back()->open({"CONNECT", "10.0.2.1:8080", {{"x-flood", std::string(size, 'z')}}},
                           [&t](Result<h2::Opened> r) {
                             if (r && r->response.status == 431) ++t.answered_431;
                             else if (!r && r.code() == h2::kRefused) ++t.connection_ended;
                             else ++t.other;
                           });
        co_await io::sleep(m.a->env().loop, std::chrono::milliseconds(5));
      }
    }(m, conns, sizes, tally));
    const auto data = testing::pattern(500, 5);
    testing::ReadAll got = m.talk(Endpoint{kServerIp, 8080}, data);
    EXPECT_TRUE(got.end.ok() && got.bytes == data);
    ASSERT_TRUE(m.world.run_until(
        [&] { return tally.answered_431 + tally.connection_ended + tally.other == kRequests; },
        std::chrono::seconds(30)))
        << "a request was left hanging";
    std::printf("header flood: %d requests: %d answered 431, %d ended with their connection (%d connections)\n",
                kRequests, tally.answered_431, tally.connection_ended, tally.connections);
    EXPECT_EQ(tally.other, 0);
    EXPECT_EQ(m.inbound->counters().requests, 1u) << "only the well-behaved client's request reached the proxy";
    attack.clear();
    conns.clear();
  }
}

// Slowloris on every data port that waits for the client: 50 to 250 (per
// seed) connections each to 15008 that stop mid-ClientHello, 15008 with TLS done and no
// request, and SOCKS5 after one byte. All are dropped at their deadline
// (10 s), counted, and a well-behaved client is served meanwhile.
TEST(Proxy, SilentClientsOnTheDataPortsAreDroppedAtTheirDeadline) {
  for (uint64_t seed : testing::sim_seeds(2)) {
  SCOPED_TRACE(testing::replay(seed));
  Mesh m("", false, seed);
  const int kEach = 50 + int(Rng(seed).below(200));
  int ended[3] = {0, 0, 0};
  std::vector<std::unique_ptr<h2::Connection>> idle_h2;
  Scope slow;
  auto hold = [](Env& env, Endpoint to, std::vector<uint8_t> first, int& ended) -> Task<void> {
    SocketOptions opts;
    opts.mark = 1337;
    auto s = co_await io::connect(env, to, opts, std::chrono::seconds(5));
    if (!s) co_return;
    if (!first.empty()) (void)co_await io::write_all(**s, first);
    uint8_t buf[256];
    for (;;) {  // until the server gives up on us
      Result<size_t> n = co_await io::read(**s, buf);
      if (!n || *n == 0) break;
    }
    ++ended;
  };
  // A ClientHello's first bytes only (a TLS record header and a little).
  const std::vector<uint8_t> partial_hello = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01};
  for (int i = 0; i < kEach; ++i) {
    slow.spawn(hold(m.a->env(), Endpoint{kServerIp, 15008}, partial_hello, ended[0]));
    slow.spawn(hold(m.a->env(), Endpoint{kClientIp, 15080}, {0x05}, ended[2]));
    // TLS done, HTTP/2 started, no request ever.
    slow.spawn([](Mesh& m, std::vector<std::unique_ptr<h2::Connection>>& keep, int& ended) -> Task<void> {
      SocketOptions opts;
      opts.mark = 1337;
      auto tcp = co_await io::connect(m.a->env(), Endpoint{kServerIp, 15008}, opts, std::chrono::seconds(5));
      if (!tcp) co_return;
      auto tls = std::make_unique<tls::TlsStream>(m.a->env(), m.client_ctx, std::move(*tcp));
      if (!co_await tls::handshake(*tls)) co_return;
      keep.push_back(std::make_unique<h2::Connection>(m.a->env(), std::move(tls), h2::Role::client,
                                                      h2::Settings::client()));
      keep.back()->on_closed([&ended](const Error&) { ++ended; });
      keep.back()->start();
    }(m, idle_h2, ended[1]));
  }
  m.world.run_for(std::chrono::seconds(5));
  EXPECT_EQ(ended[0] + ended[1] + ended[2], 0) << "nothing is dropped before its deadline";
  const auto data = testing::pattern(1000, 9);
  testing::ReadAll got = m.talk(Endpoint{kServerIp, 8080}, data);
  EXPECT_TRUE(got.end.ok() && got.bytes == data) << "a well-behaved client is served meanwhile";
  m.world.run_for(std::chrono::seconds(7));
  EXPECT_EQ(ended[0], kEach) << "half a ClientHello";
  EXPECT_EQ(ended[1], kEach) << "no request";
  EXPECT_EQ(ended[2], kEach) << "one byte of SOCKS5";
  EXPECT_EQ(m.inbound->server_counters().timed_out, uint64_t(2 * kEach));
  EXPECT_EQ(m.socks->counters().timed_out, uint64_t(kEach));
  EXPECT_EQ(m.inbound->server_counters().connections, uint64_t(kEach) + 1) << "the idle ones and the client's pool";
  slow.clear();
  idle_h2.clear();
  }
}

// baggage carries what upstream sends: the workload's name under its type
// (not the pod's name), cluster, namespace, canonical service and revision,
// region and zone.
TEST(Proxy, BaggageNamesTheSourceWorkloadAsUpstreamDoes) {
  Mesh m;
  mesh::Workload client = *m.snapshot->workload_by_uid("cluster1//v1/Pod/default/client");
  client.name = "client-7d9f-abcde";
  client.workload_name = "client";
  client.workload_type = "deployment";
  client.cluster_id = "cluster1";
  client.canonical_name = "client-svc";
  client.canonical_revision = "v2";
  client.locality.region = "eu-west1";
  client.locality.zone = "eu-west1-b";
  m.store.upsert_workload(client);
  m.snapshot = m.store.publish();
  // node-b's HBONE port: a server that records the request and refuses it.
  m.inbound.reset();
  auto l = m.b->env().net.listen(Endpoint{IpAddr::unspecified(IpAddr::Family::v4), 15008}, {});
  ASSERT_TRUE(l.ok());
  auto creds = testing::credentials(*m.w.ca->issue(testing::test_identity("server"), std::chrono::hours(24), m.w.now));
  std::string baggage;
  hbone::Server server(m.b->env(), std::move(*l), m.w.context(m.w.config(tls::TlsRole::server, creds)),
                       [&baggage](hbone::InboundRequest req, hbone::Answer a) {
                         baggage = req.header("baggage");
                         a->reject(503);
                       });
  server.start();
  (void)m.talk(Endpoint{kServerIp, 8080}, testing::pattern(10, 1));
  EXPECT_EQ(baggage,
            "k8s.cluster.name=cluster1,k8s.namespace.name=default,k8s.deployment.name=client,service.name=client-svc,"
            "service.version=v2,cloud.region=eu-west1,cloud.availability_zone=eu-west1-b");
}

TEST(Proxy, TrafficOutsideTheMeshPassesThrough) {
  Mesh m;
  const auto data = testing::pattern(5000, 3);
  testing::ReadAll got = m.talk(Endpoint{kOutsideIp, 8080}, data);
  EXPECT_TRUE(got.bytes == data);
  EXPECT_EQ(m.outbound->counters().passthrough, 1u);
  EXPECT_EQ(m.inbound->counters().requests, 0u);
}

TEST(Proxy, ADestinationPortWithNothingThereGets503AndTheClientAReset) {
  Mesh m;
  testing::ReadAll got = m.talk(Endpoint{kServerIp, 9}, testing::pattern(10, 4));
  ASSERT_FALSE(got.end.ok());
  EXPECT_EQ(got.end.code(), Errc::connection_reset);
  EXPECT_EQ(m.inbound->counters().upstream_failed, 1u);
}

TEST(Proxy, PlaintextFromOutsideTheMeshIsCapturedCheckedAndRelayed) {
  Mesh m;
  const auto data = testing::pattern(20000, 6);
  testing::ReadAll got = m.talk_from(*m.c, Endpoint{kServerIp, 8080}, data);
  EXPECT_TRUE(got.end.ok() && *got.end == 0);
  EXPECT_TRUE(got.bytes == data);
  EXPECT_EQ(m.plaintext->counters().allowed, 1u);
  EXPECT_EQ(m.inbound->counters().requests, 0u);  // not HBONE
}

TEST(Proxy, PlaintextDeniedByPolicyIsReset) {
  Mesh m(R"(policies:
- action: Deny
  name: no-8080
  namespace: default
  scope: Namespace
  rules:
  - - - destinationPorts: [8080]
)");
  testing::ReadAll got = m.talk_from(*m.c, Endpoint{kServerIp, 8080}, testing::pattern(100, 7));
  ASSERT_FALSE(got.end.ok());
  EXPECT_EQ(got.end.code(), Errc::connection_reset);
  EXPECT_EQ(m.plaintext->counters().denied, 1u);
}

// A SOCKS5 client on the client pod: the raw exchange, then echo through the mesh.
struct SocksResult {
  std::vector<uint8_t> handshake;  // the server's method choice and reply
  testing::ReadAll echoed;
};

// With wait_for_choice the client sends its 3-byte greeting, waits for the
// method choice, then sends the rest (most clients send all at once). With
// pipelined it sends its data right behind the request, before the reply.
SocksResult socks_talk(Mesh& m, std::vector<uint8_t> request, const std::vector<uint8_t>& data,
                       bool wait_for_choice = false, bool pipelined = false) {
  SocksResult out;
  bool done = false;
  m.client_scope.spawn([](Env& env, std::vector<uint8_t> request, const std::vector<uint8_t>& data, SocksResult& out,
                          bool& done, bool wait_for_choice, bool pipelined) -> Task<void> {
    auto s = co_await io::connect(env, Endpoint{kClientIp, 15080}, {}, std::chrono::seconds(5));
    if (!s) {
      done = true;
      co_return;
    }
    std::vector<uint8_t> head(2 + 10);
    size_t got = 0;
    if (wait_for_choice) {
      (void)co_await io::write_all(**s, ConstBytes(request).first(3));
      while (got < 2) {
        auto n = co_await io::read(**s, MutableBytes(head).subspan(got, 2 - got));
        if (!n || *n == 0) break;
        got += *n;
      }
      request.erase(request.begin(), request.begin() + 3);
    }
    if (pipelined) request.insert(request.end(), data.begin(), data.end());
    (void)co_await io::write_all(**s, request);
    while (got < head.size()) {
      auto n = co_await io::read(**s, MutableBytes(head).subspan(got));
      if (!n || *n == 0) break;
      got += *n;
    }
    head.resize(got);
    out.handshake = head;
    if (got == head.capacity() && head[3] == 0) {
      if (!data.empty() && !pipelined) (void)co_await io::write_all(**s, data);
      (void)(*s)->shutdown_write();
      out.echoed = co_await testing::read_all(**s);
    }
    done = true;
  }(m.a->env(), std::move(request), data, out, done, wait_for_choice, pipelined));
  m.world.run_until([&] { return done; }, std::chrono::minutes(1));
  return out;
}

TEST(Socks5, ConnectByIpv4GoesThroughTheMesh) {
  Mesh m;
  const auto data = testing::pattern(50000, 8);
  // greeting: v5, 1 method, no-auth; request: CONNECT 10.0.2.1:8080
  SocksResult r = socks_talk(m, {5, 1, 0, 5, 1, 0, 1, 10, 0, 2, 1, 0x1f, 0x90}, data);
  ASSERT_EQ(r.handshake.size(), 12u);
  EXPECT_EQ(r.handshake[0], 5);
  EXPECT_EQ(r.handshake[1], 0);  // no-auth chosen
  EXPECT_EQ(r.handshake[3], 0);  // succeeded
  EXPECT_TRUE(r.echoed.bytes == data);
  EXPECT_EQ(m.outbound->counters().hbone, 1u);
  EXPECT_EQ(m.socks->counters().forwarded, 1u);
}

// The handshake is read in as few reads as its length allows, but never past
// the request: data sent right behind it (before the reply) is the
// connection's, and arrives whole, for every address type and any split.
TEST(Socks5, DataSentBehindTheRequestIsNotTakenByTheHandshake) {
  Mesh m;
  const auto data = testing::pattern(3000, 10);
  SocksResult v4 = socks_talk(m, {5, 1, 0, 5, 1, 0, 1, 10, 0, 2, 1, 0x1f, 0x90}, data, false, /*pipelined=*/true);
  ASSERT_EQ(v4.handshake.size(), 12u);
  EXPECT_EQ(v4.handshake[3], 0);
  EXPECT_TRUE(v4.echoed.bytes == data);
  // Two methods, and the greeting apart from the request.
  SocksResult two = socks_talk(m, {5, 2, 2, 0, 5, 1, 0, 1, 10, 0, 2, 1, 0x1f, 0x90}, data, false, true);
  ASSERT_EQ(two.handshake.size(), 12u);
  EXPECT_EQ(two.handshake[3], 0);
  EXPECT_TRUE(two.echoed.bytes == data);
  SocksResult waited = socks_talk(m, {5, 1, 0, 5, 1, 0, 1, 10, 0, 2, 1, 0x1f, 0x90}, data, /*wait_for_choice=*/true, true);
  ASSERT_EQ(waited.handshake.size(), 12u);
  EXPECT_EQ(waited.handshake[3], 0);
  EXPECT_TRUE(waited.echoed.bytes == data);
  EXPECT_EQ(m.socks->counters().forwarded, 3u);
}

TEST(Socks5, AClientThatWaitsForTheMethodChoiceGetsItFirst) {
  Mesh m;
  const auto data = testing::pattern(1000, 9);
  SocksResult r = socks_talk(m, {5, 1, 0, 5, 1, 0, 1, 10, 0, 2, 1, 0x1f, 0x90}, data, /*wait_for_choice=*/true);
  ASSERT_EQ(r.handshake.size(), 12u);
  EXPECT_EQ(r.handshake[1], 0);  // no-auth chosen, sent before the request came
  EXPECT_EQ(r.handshake[3], 0);  // succeeded
  EXPECT_TRUE(r.echoed.bytes == data);
  SocksResult bind = socks_talk(m, {5, 1, 0, 5, 2, 0, 1, 10, 0, 2, 1, 0, 80}, {}, /*wait_for_choice=*/true);
  ASSERT_EQ(bind.handshake.size(), 12u);
  EXPECT_EQ(bind.handshake[3], 7);  // command not supported
  EXPECT_EQ(m.socks->counters().forwarded, 1u);
  EXPECT_EQ(m.socks->counters().rejected, 1u);
}

TEST(Socks5, UnknownHostnamesAndUnsupportedRequestsGetTheirReplies) {
  Mesh m;
  const std::string name = "nowhere.example";
  std::vector<uint8_t> by_name{5, 1, 0, 5, 1, 0, 3, uint8_t(name.size())};
  by_name.insert(by_name.end(), name.begin(), name.end());
  by_name.insert(by_name.end(), {0, 80});
  SocksResult unknown = socks_talk(m, by_name, {});
  ASSERT_EQ(unknown.handshake.size(), 12u);
  EXPECT_EQ(unknown.handshake[3], 4);  // host unreachable
  SocksResult bind = socks_talk(m, {5, 1, 0, 5, 2, 0, 1, 10, 0, 2, 1, 0, 80}, {});
  ASSERT_EQ(bind.handshake.size(), 12u);
  EXPECT_EQ(bind.handshake[3], 7);  // command not supported
  SocksResult atyp = socks_talk(m, {5, 1, 0, 5, 1, 0, 9, 0, 0}, {});
  ASSERT_EQ(atyp.handshake.size(), 12u);
  EXPECT_EQ(atyp.handshake[3], 8);  // address type not supported
  SocksResult auth_only = socks_talk(m, {5, 1, 2}, {});  // username/password only
  ASSERT_EQ(auth_only.handshake.size(), 2u);
  EXPECT_EQ(auth_only.handshake[1], 0xff);  // no acceptable method
  SocksResult not_socks = socks_talk(m, {4, 1, 0, 80, 10, 0, 2, 1, 0}, {});
  EXPECT_TRUE(not_socks.handshake.empty());  // closed without a word
  EXPECT_EQ(m.socks->counters().rejected, 5u);
  EXPECT_EQ(m.socks->counters().forwarded, 0u);
}

TEST(Proxy, ConnectionsToTheProxyPortsAreRefused) {
  Mesh m;
  testing::ReadAll got = m.talk(Endpoint{kServerIp, 15008}, testing::pattern(10, 5));
  ASSERT_FALSE(got.end.ok());
  EXPECT_EQ(m.outbound->counters().refused, 1u);
}

}  // namespace
}  // namespace zt::core::proxy
