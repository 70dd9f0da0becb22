// A small simulated mesh for data-path scenarios. Each node is an io/sim
// host whose one address is both the node's and its pod's (as in
// core/proxy/proxy_test); it runs the real HBONE pool, Outbound (15001, with
// capture) and Inbound (15008), and an app on 8080 that answers with its
// node's index byte and then echoes. Crashing a node's host destroys all of
// that; restarting it builds it again. The mesh state is a MeshStore the
// test edits and publishes.
//
// A node in in-pod mode (add_inpod_node) is three hosts: its pod (holding
// the pod's address, with the CNI agent's capture rules, running the app),
// the node (ztunnel: PodProxies and the ZDS client) and the node's CNI agent
// (sim_cni_agent.h), which enrolls the pod. Crashing the node's host is a
// ztunnel crash: the pod and its app live on.
//
//   MeshFixture m(seed);
//   MeshNode& a = m.add_node("node-a", IpAddr::v4(10, 0, 1, 1), "client", "z1");
//   MeshNode& b = m.add_node("node-b", IpAddr::v4(10, 0, 2, 1), "server", "z1");
//   m.add_service("echo", vip, {&b}); m.start();
//   ClientConn& c = m.open(a, Endpoint{vip, 80}, 1000);
//   m.world.run_until([&] { return c.done; }, std::chrono::minutes(1));
//   EXPECT_EQ(c.served_by, b.index);
#pragma once

#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/inpod/pod_proxies.h"
#include "core/inpod/zds_client.h"
#include "core/proxy/proxy.h"
#include "core/mesh/store.h"
#include "io/async.h"
#include "io/sim/world.h"
#include "sim-tests/sim_cni_agent.h"
#include "testing/sim_seeds.h"
#include "testing/sim_log.h"
#include "testing/harness.h"
#include "testing/tls_test_util.h"

namespace zt::sim_tests {

using core::proxy::Inbound;
using core::proxy::Outbound;

struct MeshNode;

// A node's control plane, when a test gives its nodes one (the mesh swarm:
// the real CA client and certificate manager against a simulated istiod,
// and optionally the delta xDS client). MeshFixture::make_control builds one
// each time the node's processes start; a crash destroys it, and with it
// the node's certificates (they lived in its memory).
class NodeControl {
 public:
  virtual ~NodeControl() = default;
  // The data path found no certificate for `identity` (traffic-driven fetch).
  virtual void request_certificate(const std::string& identity) { (void)identity; }
  // The node's trust bundle (MeshNode::roots) changed.
  virtual void roots_changed() {}
  // MeshFixture::publish() made a new snapshot.
  virtual void state_changed() {}
  // On demand: the data path asks for one Address (core/proxy/on_demand.h);
  // `answered` runs once the node's state has it or it is known there is
  // none. A control plane that does not fetch on demand has all it will
  // get: answered at once.
  virtual void demand(std::string key, std::function<void()> answered) {
    (void)key;
    answered();
  }
};

struct MeshNode {
  size_t index = 0;
  io::sim::Host* host = nullptr;
  IpAddr ip;
  core::mesh::Workload workload;  // its pod
  core::metrics::Registry metrics;  // the node proxy's (kept across restarts, to read after a crash)
  core::proxy::TrafficMetrics traffic{metrics};
  std::unique_ptr<core::hbone::Pool> pool;
  std::unique_ptr<Outbound> outbound;
  std::unique_ptr<Inbound> inbound;
  std::unique_ptr<Listener> app;
  std::unique_ptr<Scope> app_scope;
  uint64_t app_accepted = 0;  // connections the pod's app took, over all incarnations

  // With MeshFixture::certificates_per_node: the certificates this node holds
  // (by identity) and the roots it trusts, as its control plane hands them
  // over (set_certificate, set_roots); otherwise the fixture's TlsWorld.
  std::map<std::string, std::shared_ptr<const tls::Credentials>> certificates;
  std::vector<tls::Certificate> roots;
  std::map<std::string, std::pair<std::shared_ptr<const tls::Credentials>, std::shared_ptr<const tls::TlsContext>>>
      client_contexts;  // by source identity, with the credentials each was made from

  // With MeshFixture::make_control: the node's control plane, and (with
  // MeshFixture::per_node_state) the mesh state it delivered, which this
  // node's data path reads instead of the fixture's snapshot.
  std::unique_ptr<NodeControl> control;
  std::shared_ptr<const core::mesh::StateSnapshot> state;

  // In-pod mode (MeshFixture::add_inpod_node): `host` runs ztunnel, the pod
  // is `pod_host` (in node mode the same host), enrolled by `agent` on
  // `agent_host`; the pod's proxies run in `pods` once it is enrolled.
  bool inpod = false;
  io::sim::Host* pod_host = nullptr;
  io::sim::Host* agent_host = nullptr;
  std::unique_ptr<SimCniAgent> agent;
  std::unique_ptr<core::proxy::DialBudget> dials;  // shared by the pod's inbound listeners, as a worker's
  std::unique_ptr<core::inpod::PodProxies> pods;
  std::unique_ptr<core::inpod::PodRunner> runner;
  std::unique_ptr<core::inpod::ZdsClient> zds;

  // Its node proxy is up (in in-pod mode: ztunnel, enrolled or not).
  bool running() const { return outbound != nullptr || pods != nullptr; }
  // The pod's pool and outbound, in either mode (null: not running, or the
  // pod not enrolled).
  const core::hbone::Pool* data_pool() const { return inpod ? (pods ? pods->pool(workload.uid) : nullptr) : pool.get(); }
  const Outbound* data_outbound() const { return inpod ? (pods ? pods->outbound(workload.uid) : nullptr) : outbound.get(); }
  const Inbound* data_inbound() const { return inpod ? (pods ? pods->inbound(workload.uid) : nullptr) : inbound.get(); }
  bool enrolled() const { return pods && pods->running(workload.uid); }
  // A new state: open inbound connections are authorized again.
  void recheck_policies() {
    if (inbound) inbound->recheck_policies();
    if (pods) pods->recheck_policies();
  }
  core::proxy::EndpointKey app_endpoint() const { return {workload.uid, 8080}; }
};

// One client connection from a pod: connect, send, half-close, read all.
struct ClientConn {
  MonoTime started{}, ended{};
  bool done = false;
  size_t sent = 0;
  std::vector<uint8_t> received;
  Result<size_t> end = size_t{0};  // 0: clean EOF, else the error that ended it
  int served_by = -1;              // the node whose app answered
  bool intact = false;             // clean EOF and the echo complete
};

class MeshFixture {
 public:
  static constexpr uint16_t kAppPort = 8080;

  explicit MeshFixture(uint64_t seed, io::sim::WorldOptions options = {})
      : world(seed, options), tls(WallTime(std::chrono::seconds(1'767'225'600))) {
    if (const char* t = std::getenv("ZT_SIM_TRACE"); t && *t == '1') world.trace().set_log(stderr);
    testing::log_from_environment(world);  // ZT_SIM_LOG=debug
  }
  ~MeshFixture() {
    client_scope.clear();
    for (auto& n : nodes) {
      stop(*n);
      stop_app(*n);  // (an in-pod node's app outlives ztunnel)
      n->agent.reset();
    }
  }
  MeshFixture(const MeshFixture&) = delete;

  // A node with one pod; `service_account` "server" for pods that serve
  // (the client TLS context expects that identity).
  MeshNode& add_node(const std::string& name, IpAddr ip, const std::string& service_account,
                     const std::string& zone = "z1") {
    MeshNode& n = new_node(name, ip, service_account, zone, world.add_host(name, {ip}));
    n.host->capture_outbound(15001);
    return n;
  }
  // A node in in-pod mode: its pod on a host of its own at `pod_ip` (the
  // workload's address), ztunnel on the node's host at `node_ip`, its CNI
  // agent at `agent_ip`. The agent enrolls the pod at start().
  MeshNode& add_inpod_node(const std::string& name, IpAddr pod_ip, IpAddr node_ip, IpAddr agent_ip,
                           const std::string& service_account, const std::string& zone = "z1") {
    MeshNode& n = new_node(name, pod_ip, service_account, zone, world.add_host(name, {node_ip}));
    n.inpod = true;
    n.pod_host = &world.add_host(name + "-pod", {pod_ip});
    n.pod_host->capture_outbound(15001);
    n.pod_host->capture_inbound(15006, {15008});
    n.agent_host = &world.add_host("cni-agent-" + name, {agent_ip});
    n.agent = std::make_unique<SimCniAgent>(world, *n.agent_host, zds_path(n));
    return n;
  }
  // The CNI agent sends the pod's del and then its add again (the same
  // sandbox): its proxies stop, drain, and start again.
  void reenroll(MeshNode& n) {
    n.agent->del(n.workload.uid);
    enroll(n);
  }
  // In in-pod mode: the pod's proxies started (true) or stopped (false).
  std::function<void(MeshNode&, bool)> on_pod_proxied;

 private:
  MeshNode& new_node(const std::string& name, IpAddr ip, const std::string& service_account, const std::string& zone,
                     io::sim::Host& host) {
    auto node = std::make_unique<MeshNode>();
    node->index = nodes.size();
    node->host = &host;
    node->pod_host = &host;
    node->ip = ip;
    core::mesh::Workload& w = node->workload;
    w.uid = "cluster1//v1/Pod/default/" + name + "-pod";
    w.name = name + "-pod";
    w.ns = "default";
    w.service_account = service_account;
    w.ips = {ip};
    w.protocol = core::mesh::InboundProtocol::hbone;
    w.node = name;
    w.locality = {"r1", zone, ""};
    store.upsert_workload(w);
    MeshNode& n = *node;
    nodes.push_back(std::move(node));
    n.host->on_crash([this, &n] { stop(n); });
    n.host->on_restart([this, &n] { run(n); });
    return n;
  }
  static std::string zds_path(const MeshNode& n) { return "/var/run/ztunnel/" + n.workload.node + ".sock"; }
  void enroll(MeshNode& n) {
    const core::mesh::Workload& w = n.workload;
    n.agent->add(w.uid, core::inpod::PodInfo{w.name, w.ns, w.service_account}, world.net_namespace(n.pod_host->id()));
  }

 public:

  // A service `name` on `vip`:80 -> 8080 backed by the pods of `backends`.
  core::mesh::Service& add_service(const std::string& name, IpAddr vip, const std::vector<MeshNode*>& backends,
                             std::optional<core::mesh::LoadBalancer> lb = std::nullopt) {
    core::mesh::Service s;
    s.name = name;
    s.ns = "default";
    s.hostname = name + ".default.svc.cluster.local";
    s.vips = {{"", vip}};
    s.ports = {{80, kAppPort}};
    s.load_balancer = std::move(lb);
    store.upsert_service(s);
    for (MeshNode* b : backends) add_backend(*b, s.key());
    services.push_back(s);
    return services.back();
  }
  void add_backend(MeshNode& n, const core::mesh::NamespacedHostname& service) {
    n.workload.services[service] = {{80, 0}};
    store.upsert_workload(n.workload);
  }
  // The pod leaves the mesh state (as when the control plane sees it go).
  void remove_pod(MeshNode& n) { store.remove_workload(n.workload.uid); }
  void restore_pod(MeshNode& n) { store.upsert_workload(n.workload); }
  void publish() {
    snapshot = store.publish();
    if (on_publish) on_publish();
    for (auto& n : nodes)
      if (n->control) n->control->state_changed();
  }
  // Runs on each publish(), after `snapshot` is the new one (the mesh
  // swarm hands it to its simulated istiod, or records what nodes see).
  std::function<void()> on_publish;

  // Per-node certificates (as a node's control plane keeps them): a new
  // certificate is presented from the next handshake on; new roots apply to
  // new handshakes both ways, open connections keep their sessions.
  bool certificates_per_node = false;
  Duration pool_idle_release = std::chrono::minutes(5);  // POOL_UNUSED_RELEASE_TIMEOUT
  // Per-node settings applied each time a node's processes start (the swarm
  // draws peer stream limits and the like); unset: the defaults.
  std::function<void(const MeshNode&, core::hbone::PoolConfig&)> configure_pool;
  std::function<void(const MeshNode&, core::proxy::InboundConfig&)> configure_inbound;
  std::function<void(const MeshNode&, core::proxy::OutboundConfig&)> configure_outbound;
  // An on-demand ask (Outbound/InboundConfig::on_demand) that reaches the
  // node's control plane of the moment; with none (the node is down, or
  // its control plane not built yet) it is answered at once.
  static core::proxy::OnDemand ask_control(MeshNode& n) {
    core::proxy::OnDemand d;
    d.ask = [&n](std::string key, std::function<void()> answered) {
      if (n.control) n.control->demand(std::move(key), std::move(answered));
      else answered();
    };
    return d;
  }
  void set_certificate(MeshNode& n, const std::string& identity, std::shared_ptr<const tls::Credentials> creds) {
    n.certificates[identity] = std::move(creds);
  }
  void set_roots(MeshNode& n, std::vector<tls::Certificate> roots) {
    n.roots = std::move(roots);
    n.client_contexts.clear();
    if (n.inbound) n.inbound->set_tls(node_server_context(n));
    if (n.pods) n.pods->roots_changed();
    if (n.control) n.control->roots_changed();
  }

  // A control plane per node (see NodeControl), built after the node's data
  // path each time its processes start; unset: none (certificates come from
  // set_certificate and stay across crashes).
  std::function<std::unique_ptr<NodeControl>(MeshNode&)> make_control;
  // Each node's data path reads MeshNode::state (what its control plane
  // delivered; null until then) instead of the fixture's snapshot.
  bool per_node_state = false;
  // Every handshake of the node proxies' mTLS (with certificates_per_node),
  // with what each side presented and accepted (tls::HandshakeRecord).
  std::function<void(MeshNode&, const tls::HandshakeRecord&)> on_handshake;

  // Publishes the state and starts every node.
  void start() {
    publish();
    client_ctx = tls.context(tls.config(tls::TlsRole::client, tls.client_creds));
    server_ctx = tls.context(tls.config(tls::TlsRole::server, tls.server_creds));
    for (auto& n : nodes) {
      if (!n->inpod) continue;
      n->agent->start();
      enroll(*n);
      start_app(*n);
    }
    for (auto& n : nodes) run(*n);
  }

  void crash(MeshNode& n) { world.crash(n.host->id()); }
  // The pod's app stops listening (its node proxy stays): connects to it are refused.
  void stop_app(MeshNode& n) {
    if (n.app_scope) n.app_scope->clear();
    n.app.reset();
  }
  void restart(MeshNode& n) { world.restart(n.host->id()); }
  // The pod's app listens again (after stop_app), if its pod is up (in node
  // mode: its node).
  void start_app(MeshNode& n) {
    if (n.app || !(n.inpod ? n.pod_host->up() : n.running())) return;
    auto app_l = n.pod_host->env().net.listen(Endpoint{n.ip, kAppPort}, {});
    ZT_ASSERT(app_l.ok());
    n.app = std::move(*app_l);
    n.app_scope = std::make_unique<Scope>();
    n.app_scope->spawn(app_server(*n.app, *n.app_scope, n));
  }

  // A pod on `from` connects to `dst` and sends `bytes` bytes.
  ClientConn& open(MeshNode& from, Endpoint dst, size_t bytes) {
    clients.emplace_back();
    ClientConn& c = clients.back();
    c.started = world.now();
    c.sent = bytes;
    client_scope.spawn(talk(from.pod_host->env(), dst, testing::pattern(bytes, uint8_t(clients.size())), c));
    return c;
  }
  bool all_done() const {
    for (const ClientConn& c : clients)
      if (!c.done) return false;
    return true;
  }

  io::sim::World world;
  testing::TlsWorld tls;
  core::mesh::MeshStore store;
  std::shared_ptr<const core::mesh::StateSnapshot> snapshot;
  std::shared_ptr<const tls::TlsContext> client_ctx, server_ctx;
  std::vector<std::unique_ptr<MeshNode>> nodes;
  std::deque<core::mesh::Service> services;
  std::deque<ClientConn> clients;  // stable addresses
  Scope client_scope;

 private:
  // The node's processes: what a crash destroys and a restart builds again.
  void run(MeshNode& n) {
    if (n.inpod) return run_inpod(n);
    Env& env = n.host->env();
    core::proxy::StateSource state = [this, &n] { return per_node_state ? n.state : snapshot; };
    core::hbone::PoolConfig pool_cfg;
    pool_cfg.socket.mark = 1337;  // the pool's own connections bypass capture
    pool_cfg.idle_release = pool_idle_release;
    if (configure_pool) configure_pool(n, pool_cfg);
    n.pool = std::make_unique<core::hbone::Pool>(env, pool_cfg, client_contexts(n));
    core::proxy::OutboundConfig out_cfg;
    out_cfg.metrics = &n.traffic;
    if (configure_outbound) configure_outbound(n, out_cfg);
    auto out_l = env.net.listen(Endpoint{IpAddr::unspecified(IpAddr::Family::v4), 15001}, {});
    ZT_ASSERT(out_l.ok());
    n.outbound = std::make_unique<Outbound>(env, std::move(*out_l), state, *n.pool, out_cfg);
    auto in_l = env.net.listen(Endpoint{n.ip, 15008}, {});
    ZT_ASSERT(in_l.ok());
    core::proxy::InboundConfig in_cfg;
    if (configure_inbound) configure_inbound(n, in_cfg);
    n.inbound = std::make_unique<Inbound>(env, std::move(*in_l),
                                          certificates_per_node ? node_server_context(n) : server_ctx, state, in_cfg);
    n.outbound->start();
    n.inbound->start();
    start_app(n);
    if (make_control) n.control = make_control(n);
  }

  // ztunnel in in-pod mode: the pods' proxies (none until the agent's
  // snapshot enrolls the pod) and the ZDS client; the app is the pod's.
  // The pod's certificates and roots are the node's, as in node mode.
  void run_inpod(MeshNode& n) {
    Env& env = n.host->env();
    core::proxy::StateSource state = [this, &n] { return per_node_state ? n.state : snapshot; };
    core::inpod::PodProxyConfig pc;
    pc.node = n.workload.node;
    pc.pool.idle_release = pool_idle_release;
    if (configure_pool) configure_pool(n, pc.pool);
    pc.out.metrics = &n.traffic;
    if (configure_outbound) configure_outbound(n, pc.out);
    pc.in.original_source = true;
    if (configure_inbound) configure_inbound(n, pc.in);
    n.dials = std::make_unique<core::proxy::DialBudget>();
    pc.in.shared_dials = n.dials.get();
    core::inpod::PodTls pod_tls;
    pod_tls.server = [this, &n](const core::proxy::LocalWorkload&) -> Result<std::shared_ptr<const tls::TlsContext>> {
      return certificates_per_node ? node_server_context(n) : server_ctx;
    };
    pod_tls.client = client_contexts(n);
    n.pods = std::make_unique<core::inpod::PodProxies>(env, pc, state, std::move(pod_tls));
    n.runner = std::make_unique<SimPodRunner>(env.loop, *n.pods, [this, &n](bool proxied) {
      if (on_pod_proxied) on_pod_proxied(n, proxied);
    });
    core::inpod::ZdsClientConfig zc;
    zc.path = zds_path(n);
    n.zds = std::make_unique<core::inpod::ZdsClient>(env, zc, *n.runner);
    n.zds->start();
    if (make_control) n.control = make_control(n);
  }

  // The pool's client context for a source identity (its certificate).
  core::hbone::Pool::ContextFor client_contexts(MeshNode& n) {
    return [this, &n](const core::hbone::PoolKey& key) -> Result<std::shared_ptr<const tls::TlsContext>> {
      if (!certificates_per_node) return client_ctx;
      auto made = node_client_context(n, key.source_identity);
      if (!made && n.control) n.control->request_certificate(key.source_identity);
      return made;
    };
  }

  // What app/worker.cc does for a worker: a client context per source
  // identity, made again when its certificate changes.
  Result<std::shared_ptr<const tls::TlsContext>> node_client_context(MeshNode& n, const std::string& identity) {
    auto it = n.certificates.find(identity);
    if (it == n.certificates.end()) return Error(Errc::invalid_argument, "no certificate for " + identity + " yet");
    auto& cached = n.client_contexts[identity];
    if (cached.second && cached.first == it->second) return cached.second;
    tls::TlsConfig tc;
    tc.role = tls::TlsRole::client;
    tc.credentials = it->second;
    tc.roots = n.roots;
    tc.pin_signature_sizes = true;
    if (on_handshake) tc.on_handshake = [this, &n](const tls::HandshakeRecord& r) { on_handshake(n, r); };
    auto made = tls::TlsContext::create(tc);
    if (!made) return made.error();
    cached = {it->second, *made};
    return cached.second;
  }
  // The certificate of the workload a connection arrived for.
  std::shared_ptr<const tls::TlsContext> node_server_context(MeshNode& n) {
    tls::TlsConfig tc;
    tc.role = tls::TlsRole::server;
    tc.roots = n.roots;
    tc.pin_signature_sizes = true;
    if (on_handshake) tc.on_handshake = [this, &n](const tls::HandshakeRecord& r) { on_handshake(n, r); };
    tc.credentials_for = [&n](const Endpoint&) -> std::shared_ptr<const tls::Credentials> {
      auto it = n.certificates.find(n.workload.identity().to_string());
      return it == n.certificates.end() ? nullptr : it->second;
    };
    auto made = tls::TlsContext::create(tc);
    ZT_ASSERT(made.ok());
    return *made;
  }

  static void stop(MeshNode& n) {
    if (n.control) {
      // The control plane and what it held in memory die with the node.
      n.control.reset();
      n.certificates.clear();
      n.client_contexts.clear();
      n.state.reset();
    }
    if (n.inpod) {
      // ztunnel's process: the pod and its app live on.
      n.zds.reset();
      n.runner.reset();
      n.pods.reset();
      n.dials.reset();
      return;
    }
    if (n.app_scope) n.app_scope->clear();
    n.app.reset();
    n.outbound.reset();
    n.inbound.reset();
    n.pool.reset();
  }

  static Task<void> app_server(Listener& l, Scope& scope, MeshNode& n) {
    for (;;) {
      auto s = co_await io::accept(l);
      if (!s) co_return;
      ++n.app_accepted;
      scope.spawn(echo_with_id(std::move(*s), uint8_t(n.index)));
    }
  }

  static Task<void> echo_with_id(StreamPtr s, uint8_t id) {
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

  static Task<void> talk(Env& env, Endpoint dst, std::vector<uint8_t> data, ClientConn& c) {
    auto s = co_await io::connect(env, dst, {}, std::chrono::seconds(10));
    if (!s) {
      c.end = s.error();
    } else {
      co_await join([](Stream& s, const std::vector<uint8_t>& d) -> Task<void> {
                      if (!d.empty()) (void)co_await io::write_all(s, d);
                      (void)s.shutdown_write();
                    }(**s, data),
                    [](Stream& s, ClientConn& c) -> Task<void> {
                      testing::ReadAll got = co_await testing::read_all(s);
                      c.received = std::move(got.bytes);
                      c.end = std::move(got.end);
                    }(**s, c));
      (*s)->close();
    }
    if (!c.received.empty()) c.served_by = c.received[0];
    c.intact = c.end.ok() && *c.end == 0 && c.received.size() == data.size() + 1 &&
               std::equal(data.begin(), data.end(), c.received.begin() + 1);
    c.ended = env.clock.now();
    c.done = true;
  }
};

// Seeds for a scenario: 1..count, or as the environment says (replay, sweep).
inline std::vector<uint64_t> scenario_seeds(uint64_t count) { return testing::sim_seeds(count); }

}  // namespace zt::sim_tests
