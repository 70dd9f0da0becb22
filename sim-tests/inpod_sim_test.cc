// In-pod mode on the simulated network: a CNI node agent (a test peer on its
// own host) enrolls pods with a node's ZdsClient over a packet socket; each
// pod is a host of its own (its network namespace) with iptables-style
// capture, and the node proxies it with PodProxies inside that namespace.
//
// The property: ZDS messages, agent restarts, ztunnel restarts and a pod
// whose namespace is gone, interleaved at random over simulated time; once
// things settle, every pod the agent holds is proxied (and only those), no
// listener outlives its pod, the client is ready, and traffic between pods
// flows exactly when both ends are enrolled. A scenario checks the reused-IP
// case: a stale peer never reaches the pod that now holds the address.
#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <optional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/inpod/pod_proxies.h"
#include "core/inpod/zds_client.h"
#include "core/mesh/store.h"
#include "io/async.h"
#include "io/sim/packets.h"
#include "io/sim/world.h"
#include "sim-tests/sim_cni_agent.h"
#include "testing/harness.h"
#include "testing/sim_log.h"
#include "testing/sim_seeds.h"
#include "testing/tls_test_util.h"

namespace zt::sim_tests {
namespace {

using core::inpod::PodInfo;
using core::inpod::ZdsRequest;
using namespace std::chrono_literals;

constexpr uint16_t kAppPort = 8080;

std::string agent_path(const std::string& node) { return "/var/run/ztunnel/" + node + ".sock"; }

// Certificates for any identity, issued by one test CA (what the node's
// certificate manager does), and the contexts built from them.
struct Certificates {
  explicit Certificates(testing::TlsWorld& tls) : tls(tls) {}
  std::shared_ptr<const tls::Credentials> get(const std::string& identity) {
    auto& c = issued[identity];
    if (!c) c = testing::credentials(*tls.ca->issue(*tls::Identity::parse(identity), 24h, tls.now));
    return c;
  }
  core::inpod::PodTls pod_tls(std::function<std::shared_ptr<const core::mesh::StateSnapshot>()> state) {
    core::inpod::PodTls t;
    t.server = [this, state](const core::proxy::LocalWorkload& local) -> Result<std::shared_ptr<const tls::TlsContext>> {
      tls::TlsConfig tc;
      tc.role = tls::TlsRole::server;
      tc.roots = tls.ca->trust_bundle();
      tc.pin_signature_sizes = true;
      auto lookup = std::make_shared<core::proxy::LocalWorkloadLookup>(local);
      tc.credentials_for = [this, lookup, state](const Endpoint&) -> std::shared_ptr<const tls::Credentials> {
        const core::mesh::Workload* w = lookup->find(state());
        return w ? get(w->identity().to_string()) : nullptr;
      };
      return tls::TlsContext::create(tc);
    };
    t.client = [this](const core::hbone::PoolKey& key) -> Result<std::shared_ptr<const tls::TlsContext>> {
      tls::TlsConfig tc;
      tc.role = tls::TlsRole::client;
      tc.credentials = get(key.source_identity);
      tc.roots = tls.ca->trust_bundle();
      tc.pin_signature_sizes = true;
      return tls::TlsContext::create(tc);
    };
    return t;
  }
  testing::TlsWorld& tls;
  std::map<std::string, std::shared_ptr<const tls::Credentials>> issued;
};

// A pod: its own host (network namespace) with capture as the CNI agent's
// redirection rules install it, and an app on 8080 that echoes after a
// one-byte id.
struct Pod {
  std::string uid, name, sa;
  io::sim::Host* host = nullptr;
  IpAddr ip;
  uint8_t id = 0;
  std::unique_ptr<Listener> app;
  std::unique_ptr<Scope> app_scope;
  uint64_t app_accepted = 0;
  std::optional<IpAddr> last_peer;  // whom the app saw connect
};

Task<void> echo_with_id(StreamPtr s, uint8_t id) {
  std::vector<uint8_t> buf(65536);
  buf[0] = id;
  if (!co_await io::write_all(*s, ConstBytes(buf).first(1))) co_return;
  for (;;) {
    auto n = co_await io::read(*s, buf);
    if (!n || *n == 0) break;
    if (!co_await io::write_all(*s, ConstBytes(buf).first(*n))) co_return;
  }
  (void)s->shutdown_write();
}

Task<void> serve_app(Listener& l, Scope& scope, Pod& pod) {
  for (;;) {
    auto s = co_await io::accept(l);
    if (!s) co_return;
    ++pod.app_accepted;
    pod.last_peer = (*s)->peer().ip;
    scope.spawn(echo_with_id(std::move(*s), pod.id));
  }
}

// The agent enrolls `pod` (as the test's pods are named: namespace "default").
void enroll(SimCniAgent& agent, const Pod& pod, NetNamespacePtr ns) {
  agent.add(pod.uid, PodInfo{pod.name, "default", pod.sa}, std::move(ns));
}

// A node running ztunnel in in-pod mode: what a crash destroys and a
// restart builds again.
struct Node {
  Node(io::sim::Host& host, Certificates& certs, std::string name)
      : host(host), certs(certs), name(std::move(name)) {
    host.on_crash([this] { stop(); });
    host.on_restart([this] { start(); });
  }
  ~Node() { stop(); }
  void start() {
    core::inpod::PodProxyConfig pc;
    pc.node = name;
    pc.drain_deadline = 2s;
    pc.in.original_source = true;
    pc.in.shared_dials = &dials;
    pc.budget = budget;
    auto st = [this] { return state; };
    pods = std::make_unique<core::inpod::PodProxies>(host.env(), pc, st, certs.pod_tls(st));
    runner = std::make_unique<SimPodRunner>(host.env().loop, *pods);
    core::inpod::ZdsClientConfig zc;
    zc.path = agent_path(name);
    zds = std::make_unique<core::inpod::ZdsClient>(host.env(), zc, *runner);
    zds->start();
  }
  void stop() {
    zds.reset();
    runner.reset();
    pods.reset();
  }
  io::sim::Host& host;
  Certificates& certs;
  std::string name;
  std::shared_ptr<const core::mesh::StateSnapshot> state;
  ConnectionBudget* budget = nullptr;  // the descriptor budget, when a test sets one
  core::proxy::DialBudget dials;       // shared by the pods, as a worker's
  std::unique_ptr<core::inpod::PodProxies> pods;
  std::unique_ptr<SimPodRunner> runner;
  std::unique_ptr<core::inpod::ZdsClient> zds;
};

struct Talk {
  bool done = false, intact = false;
  uint8_t served_by = 0xff;
};

Task<void> talk(Env& env, Endpoint dst, size_t bytes, Talk& t) {
  const std::vector<uint8_t> data = testing::pattern(bytes, uint8_t(bytes));
  auto s = co_await io::connect(env, dst, {}, 10s);
  if (s) {
    (void)co_await io::write_all(**s, data);
    (void)(*s)->shutdown_write();
    testing::ReadAll got = co_await testing::read_all(**s);
    if (!got.bytes.empty()) t.served_by = got.bytes[0];
    t.intact = got.end.ok() && *got.end == 0 && got.bytes.size() == data.size() + 1 &&
               std::equal(data.begin(), data.end(), got.bytes.begin() + 1);
  }
  t.done = true;
}

class InpodWorld {
 public:
  explicit InpodWorld(uint64_t seed, int node_count = 1)
      : world(seed), tls(WallTime(std::chrono::seconds(1'767'225'600)), seed), certs(tls) {
    testing::log_from_environment(world);
    if (const char* t = std::getenv("ZT_SIM_TRACE"); t && *t == '1') world.trace().set_log(stderr);
    for (int i = 1; i <= node_count; ++i) {
      const std::string name = "node" + std::to_string(i);
      io::sim::Host& ah = world.add_host("cni-agent-" + name, {IpAddr::v4(10, 0, uint8_t(i), 250)});
      io::sim::Host& nh = world.add_host(name, {IpAddr::v4(10, 0, uint8_t(i), 1)});
      agents.push_back(std::make_unique<SimCniAgent>(world, ah, agent_path(name)));
      nodes.push_back(std::make_unique<Node>(nh, certs, name));
    }
    agent_host = &world.host(world.host_of(IpAddr::v4(10, 0, 1, 250))->id());
    node_host = &world.host(world.host_of(IpAddr::v4(10, 0, 1, 1))->id());
    agent = agents.front().get();
    node = nodes.front().get();
  }
  ~InpodWorld() {
    scope.clear();
    nodes.clear();
    agents.clear();
    for (auto& p : pods) {
      p->app_scope.reset();
      p->app.reset();
    }
  }

  Pod& add_pod(const std::string& name, const std::string& sa, IpAddr ip, const std::string& on = "node1") {
    auto pod = std::make_unique<Pod>();
    pod->uid = "uid-" + name;
    pod->name = name;
    pod->sa = sa;
    pod->ip = ip;
    pod->id = uint8_t(pods.size());
    pod->host = &world.add_host(name, {ip});
    pod->host->capture_outbound(15001);
    pod->host->capture_inbound(15006, {15008});
    auto l = pod->host->env().net.listen(Endpoint{ip, kAppPort}, {});
    ZT_ASSERT(l.ok());
    pod->app = std::move(*l);
    pod->app_scope = std::make_unique<Scope>();
    pod->app_scope->spawn(serve_app(*pod->app, *pod->app_scope, *pod));
    put_in_state(*pod, on);
    pods.push_back(std::move(pod));
    return *pods.back();
  }
  // Every node's view is the newest state unless a test holds one back.
  void put_in_state(const Pod& pod, const std::string& on) {
    core::mesh::Workload w;
    w.uid = "cluster1//v1/Pod/default/" + pod.name;
    w.name = pod.name;
    w.ns = "default";
    w.service_account = pod.sa;
    w.ips = {pod.ip};
    w.protocol = core::mesh::InboundProtocol::hbone;
    w.node = on;
    store.upsert_workload(w);
    auto snap = store.publish();
    for (auto& n : nodes) n->state = snap;
  }

  // Starts node1's agent and ztunnel, has the agent enroll `pods`, and
  // runs a second (they are proxied by then).
  void start_with(std::initializer_list<Pod*> pods) {
    agent->start();
    node->start();
    for (Pod* p : pods) enroll(*agent, *p, world.net_namespace(p->host->id()));
    world.run_for(1s);
  }

  Talk& open(Pod& from, const Pod& to) {
    talks.emplace_back();
    scope.spawn(talk(from.host->env(), Endpoint{to.ip, kAppPort}, 1000 + talks.size(), talks.back()));
    return talks.back();
  }

  io::sim::World world;
  testing::TlsWorld tls;
  Certificates certs;
  core::mesh::MeshStore store;
  std::vector<std::unique_ptr<SimCniAgent>> agents;  // one per node
  std::vector<std::unique_ptr<Node>> nodes;
  io::sim::Host* agent_host = nullptr;  // node1's
  io::sim::Host* node_host = nullptr;
  SimCniAgent* agent = nullptr;
  Node* node = nullptr;
  std::vector<std::unique_ptr<Pod>> pods;
  std::deque<Talk> talks;
  Scope scope;
};

TEST(InpodSim, EnrolledPodsTalkOverHboneInsideTheirNamespaces) {
  InpodWorld m(1);
  Pod& a = m.add_pod("pod-a", "sa-a", IpAddr::v4(10, 1, 0, 1));
  Pod& b = m.add_pod("pod-b", "sa-b", IpAddr::v4(10, 1, 0, 2));
  m.agent->start();
  m.node->start();
  enroll(*m.agent, a, m.world.net_namespace(a.host->id()));
  m.world.run_for(1s);
  EXPECT_TRUE(m.node->zds->ready());
  EXPECT_TRUE(m.node->pods->running(a.uid));
  // b is not enrolled: its capture leads nowhere, so nothing reaches its app.
  Talk& t1 = m.open(a, b);
  m.world.run_until([&] { return t1.done; }, 30s);
  EXPECT_FALSE(t1.intact);
  EXPECT_EQ(b.app_accepted, 0u);

  enroll(*m.agent, b, m.world.net_namespace(b.host->id()));
  m.world.run_for(1s);
  ASSERT_TRUE(m.node->pods->running(b.uid));
  Talk& t2 = m.open(a, b);
  m.world.run_until([&] { return t2.done; }, 30s);
  EXPECT_TRUE(t2.intact);
  EXPECT_EQ(t2.served_by, b.id);
  // It went a's outbound -> HBONE -> b's inbound, never the plain path.
  EXPECT_EQ(b.app_accepted, 1u);
  EXPECT_EQ(b.last_peer, a.ip) << "the app sees its client (original source), not ztunnel";
  EXPECT_EQ(m.node->pods->listening(a.uid).size(), 3u);

  // The agent restarts and re-sends both pods in its snapshot: the same
  // namespaces, so the proxies stay as they are (nothing reopened).
  const uint64_t started = m.node->pods->counters().started;
  m.world.crash(m.agent_host->id());
  m.world.run_for(2s);
  m.world.restart(m.agent_host->id());
  m.world.run_for(2s);
  EXPECT_EQ(m.node->pods->counters().started, started);
  EXPECT_GE(m.node->zds->counters().connects, 2u);
  EXPECT_TRUE(m.node->pods->running(a.uid) && m.node->pods->running(b.uid));

  // b leaves: its listeners go at once.
  const size_t listeners = m.world.live_listeners();
  m.agent->del(b.uid);
  m.world.run_for(1s);
  EXPECT_FALSE(m.node->pods->running(b.uid));
  EXPECT_EQ(m.world.live_listeners(), listeners - 3);
  EXPECT_TRUE(m.agent->nacks().empty());
}

// Descriptors: a pod's listeners draw from the node's data-path budget like
// the node-level ones, so a node with many pods still refuses cleanly (and
// counted) before the process runs out; what a connection held comes back.
class TestBudget final : public ConnectionBudget {
 public:
  bool try_acquire() override {
    if (left == 0) {
      ++refused;
      return false;
    }
    --left;
    return true;
  }
  void release() override { ++left; }
  uint64_t left = 0, refused = 0;
};

TEST(InpodSim, PodListenersDrawFromTheDescriptorBudget) {
  InpodWorld m(3);
  TestBudget budget;
  m.node->budget = &budget;
  Pod& a = m.add_pod("pod-a", "sa-a", IpAddr::v4(10, 1, 0, 1));
  Pod& b = m.add_pod("pod-b", "sa-b", IpAddr::v4(10, 1, 0, 2));
  m.start_with({&a, &b});
  ASSERT_TRUE(m.node->pods->running(a.uid) && m.node->pods->running(b.uid));
  // Spent: a's outbound listener refuses the captured connection at once.
  Talk& refused = m.open(a, b);
  m.world.run_until([&] { return refused.done; }, 30s);
  EXPECT_FALSE(refused.intact);
  EXPECT_GE(budget.refused, 1u);
  EXPECT_EQ(b.app_accepted, 0u);
  // Room again: a's outbound and b's inbound each take one, and give it back.
  budget.left = 2;
  Talk& served = m.open(a, b);
  m.world.run_until([&] { return served.done; }, 30s);
  EXPECT_TRUE(served.intact);
  EXPECT_EQ(budget.refused, 1u) << "two connections fit in two";
  // b's side of a's pooled HBONE connection holds one until the pool lets
  // the idle connection go (POOL_UNUSED_RELEASE_TIMEOUT, 5 minutes).
  EXPECT_EQ(budget.left, 1u);
  m.world.run_until([&] { return budget.left == 2; }, 400s);
  EXPECT_EQ(budget.left, 2u) << "every connection gives its descriptor back";
  EXPECT_EQ(m.node->dials.in_flight(), 0u);
}

// A connection still open when its pod's proxies reach their drain
// deadline is cut with a reset, on either side: a clean end (FIN) would let
// the client take what it got for all of it. (Closing the proxies' sockets
// sends FIN when nothing is unread, as the kernel does: a cut must abort.)
struct Lingering {
  bool done = false;
  testing::ReadAll got;
};

Task<void> linger(Env& env, Endpoint dst, Lingering& l) {
  auto s = co_await io::connect(env, dst, {}, 10s);
  if (s) {
    // Sends and never half-closes: open until someone cuts it.
    (void)co_await io::write_all(**s, testing::pattern(100, 7));
    l.got = co_await testing::read_all(**s);
  } else {
    l.got.end = s.error();
  }
  l.done = true;
}

TEST(InpodSim, ConnectionsCutAtTheDrainDeadlineAreReset) {
  for (const bool client_side : {true, false}) {
    SCOPED_TRACE(client_side ? "the client's pod removed" : "the server's pod removed");
    InpodWorld m(4);
    Pod& a = m.add_pod("pod-a", "sa-a", IpAddr::v4(10, 1, 0, 1));
    Pod& b = m.add_pod("pod-b", "sa-b", IpAddr::v4(10, 1, 0, 2));
    m.start_with({&a, &b});
    Lingering l;
    m.scope.spawn(linger(a.host->env(), Endpoint{b.ip, kAppPort}, l));
    m.world.run_for(1s);
    ASSERT_FALSE(l.done);
    ASSERT_EQ(l.got.bytes.size(), 0u);  // (read_all fills it at the end)
    m.agent->del(client_side ? a.uid : b.uid);
    m.world.run_until([&] { return l.done; }, 30s);  // the deadline is 2 s
    ASSERT_TRUE(l.done);
    EXPECT_FALSE(l.got.end.ok()) << "a cut connection ends with a reset, not a clean EOF";
    EXPECT_EQ(m.node->pods->counters().cut_at_deadline, 1u);
  }
}

// A policy that denies an open pod-to-pod connection closes it: the pod's
// HBONE inbound re-checks what it carries on the new state
// (PodProxies::recheck_policies), and a connection it still allows stays.
TEST(InpodSim, APolicyChangeClosesThePodConnectionsItDenies) {
  InpodWorld m(5);
  Pod& a = m.add_pod("pod-a", "sa-a", IpAddr::v4(10, 1, 0, 1));
  Pod& b = m.add_pod("pod-b", "sa-b", IpAddr::v4(10, 1, 0, 2));
  Pod& c = m.add_pod("pod-c", "sa-c", IpAddr::v4(10, 1, 0, 3));
  m.start_with({&a, &b, &c});
  Lingering to_b, to_c;
  m.scope.spawn(linger(a.host->env(), Endpoint{b.ip, kAppPort}, to_b));
  m.scope.spawn(linger(a.host->env(), Endpoint{c.ip, kAppPort}, to_c));
  m.world.run_for(1s);
  ASSERT_FALSE(to_b.done || to_c.done);
  ASSERT_EQ(b.app_accepted, 1u);
  // DENY anything to pod-b's address.
  core::mesh::Authorization deny;
  deny.name = "deny-b";
  deny.ns = "istio-system";
  deny.scope = core::mesh::RbacScope::global;
  deny.action = core::mesh::RbacAction::deny;
  core::mesh::RbacMatch to_pod_b;
  to_pod_b.destination_ips = {core::mesh::Cidr{b.ip, 32}};
  deny.rules = {{{to_pod_b}}};
  m.store.upsert_policy(deny.key(), deny);
  auto snap = m.store.publish();
  for (auto& n : m.nodes) n->state = snap;
  EXPECT_EQ(m.node->pods->recheck_policies(), 1u);
  m.world.run_until([&] { return to_b.done; }, 10s);
  ASSERT_TRUE(to_b.done);
  EXPECT_FALSE(to_b.got.end.ok()) << "a connection the new policy denies is reset";
  EXPECT_FALSE(to_c.done) << "the connection the policy still allows stays open";
  m.scope.clear();
}

// The pod that had an address is gone and a pod with another identity has
// it now (on another node here), while the client's node still believes the
// old one: the tunnel fails (the new pod presents its own identity), and
// once the client's state catches up, traffic reaches the new pod.
TEST(InpodSim, AReusedAddressNeverReachesThePodThatHoldsItNow) {
  InpodWorld m(2, /*node_count=*/2);
  Node& n1 = *m.nodes[0];
  Node& n2 = *m.nodes[1];
  SimCniAgent& agent2 = *m.agents[1];
  Pod& a = m.add_pod("pod-a", "sa-a", IpAddr::v4(10, 1, 0, 1), "node1");
  Pod& b = m.add_pod("pod-b", "sa-b", IpAddr::v4(10, 1, 0, 2), "node2");
  for (auto& ag : m.agents) ag->start();
  for (auto& n : m.nodes) n->start();
  enroll(*m.agent, a, m.world.net_namespace(a.host->id()));
  enroll(agent2, b, m.world.net_namespace(b.host->id()));
  m.world.run_for(1s);
  Talk& t1 = m.open(a, b);
  m.world.run_until([&] { return t1.done; }, 30s);
  ASSERT_TRUE(t1.intact);
  ASSERT_EQ(b.app_accepted, 1u);

  // pod-b goes; pod-b2, another service account, gets its address at once
  // on node2, whose state knows it. node1 still believes pod-b is there.
  agent2.del(b.uid);
  m.world.run_for(1s);
  core::mesh::Workload b2;
  b2.uid = "cluster1//v1/Pod/default/pod-b2";
  b2.name = "pod-b2";
  b2.ns = "default";
  b2.service_account = "sa-b2";
  b2.ips = {b.ip};
  b2.protocol = core::mesh::InboundProtocol::hbone;
  b2.node = "node2";
  m.store.remove_workload("cluster1//v1/Pod/default/pod-b");
  m.store.upsert_workload(b2);
  n2.state = m.store.publish();
  Pod b2_pod;
  b2_pod.uid = "uid-pod-b2";
  b2_pod.name = "pod-b2";
  b2_pod.sa = "sa-b2";
  enroll(agent2, b2_pod, m.world.net_namespace(b.host->id()));  // the same address
  m.world.run_for(1s);
  ASSERT_TRUE(n2.pods->running("uid-pod-b2"));

  for (int i = 0; i < 5; ++i) {
    Talk& t = m.open(a, b);
    m.world.run_until([&] { return t.done; }, 30s);
    EXPECT_FALSE(t.intact) << "node1 expects sa-b; pod-b2 presents sa-b2";
  }
  EXPECT_EQ(b.app_accepted, 1u) << "nothing reached the pod that holds the address now";

  // node1 catches up: its tunnel expects sa-b2, and gets it.
  n1.state = n2.state;
  Talk& t3 = m.open(a, b);
  m.world.run_until([&] { return t3.done; }, 30s);
  EXPECT_TRUE(t3.intact);
  EXPECT_EQ(b.app_accepted, 2u);
}

// Random interleavings of enrollment, agent and ztunnel restarts, and a pod
// whose namespace is gone; invariants once things settle.
TEST(InpodSim, EnrollmentSurvivesRandomInterleavings) {
  for (uint64_t seed : testing::sim_seeds(30)) {
    SCOPED_TRACE(testing::replay(seed));
    InpodWorld m(seed);
    Rng rng(seed);
    std::vector<Pod*> pods;
    for (int i = 0; i < 4; ++i) {
      pods.push_back(&m.add_pod("pod-" + std::to_string(i), "sa-" + std::to_string(i), IpAddr::v4(10, 1, 0, uint8_t(i + 1))));
    }
    // Its namespace is torn down before ztunnel can enter it.
    Pod& ghost = m.add_pod("ghost", "sa-ghost", IpAddr::v4(10, 1, 0, 99));
    m.world.destroy_namespace(ghost.host->id());
    m.agent->start();
    m.node->start();
    bool ghost_added = false;
    for (int step = 0; step < 30; ++step) {
      const uint64_t op = rng.below(10);
      Pod& p = *pods[rng.below(pods.size())];
      if (op < 4) {
        if (!m.agent->holds(p.uid)) enroll(*m.agent, p, m.world.net_namespace(p.host->id()));
      } else if (op < 7) {
        if (m.agent->holds(p.uid)) m.agent->del(p.uid);
      } else if (op == 7) {
        m.world.crash(m.agent_host->id());
        m.world.run_for(std::chrono::milliseconds(rng.below(3000)));
        m.world.restart(m.agent_host->id());
      } else if (op == 8) {
        m.world.crash(m.node_host->id());
        m.world.run_for(std::chrono::milliseconds(rng.below(3000)));
        m.world.restart(m.node_host->id());
      } else if (!ghost_added) {
        enroll(*m.agent, ghost, m.world.net_namespace(ghost.host->id()));
        ghost_added = true;
      } else {
        m.agent->del(ghost.uid);
        ghost_added = false;
      }
      m.world.run_for(std::chrono::milliseconds(rng.below(2000)));
    }
    // Settle: the client reconnects within its 15 s backoff bound.
    m.world.run_for(20s);

    ASSERT_TRUE(m.node->zds) << "ztunnel is up";
    EXPECT_TRUE(m.node->zds->ready()) << "ready once the agent's snapshot is in";
    EXPECT_TRUE(m.node->zds->connected());
    std::set<std::string> expected = m.agent->uids();
    const bool ghost_held = expected.erase(ghost.uid) > 0;
    const std::vector<std::string> running = m.node->pods->uids();
    EXPECT_EQ(std::set<std::string>(running.begin(), running.end()), expected) << "every live enrolled pod, only those";
    // The ghost stays enrolled and retrying, never running.
    bool ghost_retrying = false;
    for (const auto& st : m.node->zds->pods()) {
      if (st.uid == ghost.uid) ghost_retrying = st.state == core::inpod::PodStatus::State::retrying;
    }
    EXPECT_EQ(ghost_retrying, ghost_held);
    // No listener outlives its pod: the apps' and three per proxied pod.
    EXPECT_EQ(m.world.live_listeners(), m.pods.size() + 3 * expected.size());

    // Traffic flows exactly between enrolled pods.
    std::vector<std::tuple<Pod*, Pod*, Talk*>> talks;
    for (Pod* from : pods) {
      for (Pod* to : pods) {
        if (from != to) talks.push_back({from, to, &m.open(*from, *to)});
      }
    }
    m.world.run_until([&] {
      for (auto& [f, t, talk] : talks) if (!talk->done) return false;
      return true;
    }, 60s);
    for (auto& [from, to, talk] : talks) {
      const bool both = expected.contains(from->uid) && expected.contains(to->uid);
      EXPECT_TRUE(talk->done);
      EXPECT_EQ(talk->intact, both) << from->name << " -> " << to->name;
      if (talk->intact) {
        EXPECT_EQ(talk->served_by, to->id);
      }
    }
    if (::testing::Test::HasFailure()) break;
  }
}

}  // namespace
}  // namespace zt::sim_tests
