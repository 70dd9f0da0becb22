// A rapidcheck stateful model of a small simulated mesh: 2 or 3 nodes, each
// running the real node proxy (sim-tests/mesh_fixture.h: Outbound, Inbound,
// the HBONE pool, mTLS with per-node certificates, HTTP/2, policy, routing,
// outlier detection), two services, and pods whose applications echo.
//
// Commands (traffic weighted over faults): open a client connection (to a service or a pod), send bytes on
// it, close it (FIN), reset it (RST), crash a node, restart it, partition two
// nodes, heal, swap the policy set, add or remove a service backend, rotate
// certificates (renew one node's, add a new root, drop the old root), jump a
// node's wall clock, wait. Each command runs for a simulated second or two,
// then the postconditions are checked against the model:
//   - on every connection, whatever arrived is the serving node's id byte
//     from a node the connection may reach, then a prefix of what was sent
//     (no wrong, duplicated or reordered byte, whatever the faults);
//   - a connection is served only if the reference RBAC model
//     (mesh_swarm_lib.h, independent of core/) allows it under a policy set
//     in effect since it opened;
//   - on a healthy path (no crash, partition, or their grace period touching
//     it since it opened) a connection opens iff the reference model allows
//     it, echoes every byte in order, ends cleanly after its FIN, ends after
//     its RST, and is closed by a policy change that denies it;
//   - in the end, after healing and a grace period, new connections on
//     every path behave as the reference model says, every connection ends,
//     and nothing leaks (pool connections, proxied connections, sockets).
//
// The world's seed is drawn from rapidcheck's generator without shrinking, so
// rapidcheck's seed (or its `reproduce` string) replays a failure exactly:
//   RC_PARAMS="seed=123" ./build/dev/sim-tests/mesh_model_test
//   RC_PARAMS="reproduce=..." ./build/dev/sim-tests/mesh_model_test
//   RC_PARAMS="max_success=2000 max_size=60" ...   # a longer sweep
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "sim-tests/mesh_fixture.h"
#include "sim-tests/mesh_swarm_lib.h"

namespace zt::sim_tests {
namespace {

using namespace std::chrono_literals;
using swarm::RefCidr;
using swarm::RefConn;
using swarm::RefMatch;
using swarm::RefPolicy;
using swarm::RefString;
using swarm::to_core;

constexpr size_t kServices = 2;
constexpr uint16_t kAppPort = MeshFixture::kAppPort;
// After a partition heals or a node restarts: the HBONE keepalive (30 s)
// finds dead pooled connections, plus a connect timeout (10 s).
constexpr Duration kGrace = 45s;
constexpr int64_t kMaxWallOffsetMin = 90;  // certificates stay valid within this skew
const WallTime kEpoch = WallTime(std::chrono::seconds(1'767'225'600));  // io/sim's wall clock at 0

struct NodeSpec {
  const char* ns;
  const char* sa;
  const char* zone;
};
constexpr NodeSpec kNodes[] = {{"default", "client", "z1"}, {"prod", "server", "z1"}, {"default", "web", "z2"}};

IpAddr node_ip(size_t i) { return IpAddr::v4(10, 0, uint8_t(i + 1), 1); }
IpAddr service_vip(size_t s) { return IpAddr::v4(10, 96, 0, uint8_t(s + 1)); }

// --- the policy sets the ChangePolicy command swaps between ----------------------
// Each set exercises a different part of the RBAC space on the three nodes
// (node-0 default/client, node-1 prod/server, node-2 default/web).

RefMatch match_principal_suffix(const std::string& s) {
  RefMatch m;
  m.principals.push_back({RefString::suffix, s});
  return m;
}

std::vector<RefPolicy> policy_set(int which) {
  std::vector<RefPolicy> out;
  RefPolicy p;
  switch (which) {
    case 0: break;  // nothing: everything allowed
    case 1:         // DENY everywhere what web sends
      p.name = "deny-web";
      p.ns = "istio-system";
      p.scope = RefPolicy::global;
      p.deny = true;
      p.rules = {{{match_principal_suffix("/sa/web")}}};
      out.push_back(p);
      break;
    case 2: {  // ALLOW into prod: default namespace, but not the client account
      p.name = "prod-allow";
      p.ns = "prod";
      p.scope = RefPolicy::ns_wide;
      RefMatch m;
      m.namespaces.push_back({RefString::exact, "default"});
      m.not_principals.push_back({RefString::suffix, "/sa/client"});
      p.rules = {{{m}}};
      out.push_back(p);
      break;
    }
    case 3: {  // ALLOW into node-0 and node-2 from anywhere but node-1; a dry-run DENY of all
      p.name = "selected";
      p.ns = "default";
      p.scope = RefPolicy::selector;
      p.selected = {0, 2};
      RefMatch m;
      m.not_source_ips.push_back(RefCidr{node_ip(1), 32});
      p.rules = {{{m}}};
      out.push_back(p);
      RefPolicy d;
      d.name = "deny-all-dry";
      d.ns = "istio-system";
      d.scope = RefPolicy::global;
      d.deny = true;
      d.dry_run = true;
      RefMatch any;
      any.principals.push_back({RefString::presence, ""});
      d.rules = {{{any}}};
      out.push_back(d);
      break;
    }
    case 4: {  // DENY into the default namespace on the app port, unless from default/client
      p.name = "deny-default";
      p.ns = "default";
      p.scope = RefPolicy::ns_wide;
      p.deny = true;
      RefMatch m;
      m.not_service_accounts.push_back({"default", "client"});
      m.ports.push_back(kAppPort);
      p.rules = {{{m}}};
      out.push_back(p);
      break;
    }
    case 5: {  // ALLOW into web only from the account prod/client, which no node runs as:
               // default/client has the same name in another namespace, and must not pass
      p.name = "web-from-prod-client";
      p.ns = "default";
      p.scope = RefPolicy::selector;
      p.selected = {2};
      RefMatch m;
      m.service_accounts.push_back({"prod", "client"});
      p.rules = {{{m}}};
      out.push_back(p);
      break;
    }
    default: {  // ALLOW overlapping: default sources to anything but node-2 (two clauses ANDed),
                // and prod sources into node-1
      p.name = "global-allow";
      p.ns = "istio-system";
      p.scope = RefPolicy::global;
      RefMatch from_default;
      from_default.principals.push_back({RefString::prefix, "cluster.local/ns/default/"});
      RefMatch not_node2;
      not_node2.not_destination_ips.push_back(RefCidr{node_ip(2), 32});
      p.rules = {{{from_default}, {not_node2}}};
      out.push_back(p);
      RefPolicy s;
      s.name = "node1-prod";
      s.ns = "prod";
      s.scope = RefPolicy::selector;
      s.selected = {1};
      RefMatch prod;
      prod.namespaces.push_back({RefString::exact, "prod"});
      s.rules = {{{prod}}};
      out.push_back(s);
      break;
    }
  }
  return out;
}
constexpr int kPolicySets = 7;

bool allowed(int policy, size_t from, size_t to) {
  RefConn c;
  c.src_ns = kNodes[from].ns;
  c.src_sa = kNodes[from].sa;
  c.src_ip = node_ip(from);
  c.dst_ip = node_ip(to);
  c.dst_port = kAppPort;
  c.dst_ns = kNodes[to].ns;
  c.dst_node = to;
  return swarm::ref_allowed(policy_set(policy), c);
}

// --- the model ------------------------------------------------------------------------

struct ConnModel {
  size_t from = 0;
  std::optional<size_t> service, target;
  std::set<size_t> candidates;  // the nodes that may serve it
  std::set<int> policies;       // the policy sets in effect since it opened
  size_t sent = 0;
  bool fin = false, reset = false, client_dead = false;
  // The path was healthy when it opened and nothing has touched it since:
  // the exact expectations hold.
  bool strict = false;
  int expect = 0;  // strict: +1 served, -1 refused, 0 either (candidates disagree)
  bool usable() const { return !reset && !client_dead; }
};

struct Model {
  size_t nodes = 3;
  Duration now{};  // since the command sequence began
  std::vector<bool> up;
  std::set<std::pair<size_t, size_t>> partitioned;  // (low, high)
  std::vector<Duration> node_tainted_until;
  std::map<std::pair<size_t, size_t>, Duration> pair_tainted_until;
  std::vector<std::set<size_t>> backends;  // per service
  int policy = 0;
  std::vector<ConnModel> conns;
  // Certificates: the CA's newest root generation, the generations in the
  // nodes' trust bundle, each node's certificate's generation.
  int root = 0;
  std::set<int> bundle{0};
  std::vector<int> cert_root;
  std::vector<int64_t> wall_offset_min;

  explicit Model(size_t n) : nodes(n), up(n, true), node_tainted_until(n), cert_root(n, 0), wall_offset_min(n, 0) {
    backends = {{1}, {}};
    for (size_t i = 0; i < n; ++i) backends[1].insert(i);
  }

  static std::pair<size_t, size_t> pair(size_t a, size_t b) { return {std::min(a, b), std::max(a, b)}; }
  bool touches(const ConnModel& c, size_t node) const { return c.from == node || c.candidates.count(node) > 0; }
  bool healthy(size_t from, const std::set<size_t>& cands) const {
    if (cands.empty() || !up[from] || node_tainted_until[from] > now) return false;
    for (size_t c : cands) {
      if (!up[c] || node_tainted_until[c] > now || partitioned.count(pair(from, c))) return false;
      auto it = pair_tainted_until.find(pair(from, c));
      if (it != pair_tainted_until.end() && it->second > now) return false;
    }
    return true;
  }
  std::set<size_t> candidates_of(size_t from, std::optional<size_t> service, std::optional<size_t> target) const {
    (void)from;
    if (target) return {*target};
    return backends[*service];
  }
};

// --- the system under test -------------------------------------------------------------

// One client connection of a pod, driven command by command.
struct Client {
  StreamPtr stream;
  bool connected = false, done = false, writing = false, fin_wanted = false, aborted = false, write_failed = false;
  std::vector<uint8_t> pending, sent;  // queued but not yet written; everything queued
  std::vector<uint8_t> received;
  Result<size_t> end = size_t{0};  // how the read side ended: 0 for EOF, else the error
  int served_by() const { return received.empty() ? -1 : received[0]; }
  bool echoed_all() const {
    return received.size() == sent.size() + 1 && std::equal(sent.begin(), sent.end(), received.begin() + 1);
  }
  std::string describe() const {
    std::ostringstream os;
    os << (connected ? "connected" : "not connected") << ", served by " << served_by() << ", sent " << sent.size()
       << ", received " << received.size() << ", " << (done ? (end.ok() ? "ended with EOF" : "ended: " + end.error().message()) : "open");
    return os.str();
  }
};

class Mesh {
 public:
  Mesh(uint64_t seed, size_t nodes) : m_(seed) {
    m_.certificates_per_node = true;
    m_.pool_idle_release = 15s;
    tls::CaOptions ca_opts;
    ca_opts.pin_signature_sizes = true;
    auto ca = tls::Ca::create(ca_opts, Rng(seed).stream("ca"), kEpoch - 24h);
    ZT_ASSERT(ca.ok());
    ca_.emplace(std::move(*ca));
    for (size_t i = 0; i < nodes; ++i) {
      MeshNode& n = m_.add_node("node-" + std::to_string(i), node_ip(i), kNodes[i].sa, kNodes[i].zone);
      n.workload.ns = kNodes[i].ns;
      m_.store.upsert_workload(n.workload);
      renew(i);
      m_.set_roots(n, ca_->trust_bundle());
    }
    const Model initial(nodes);
    for (size_t s = 0; s < kServices; ++s) {
      m_.add_service("svc" + std::to_string(s), service_vip(s), {});
      set_backends(s, initial.backends[s]);
    }
    m_.start();
    m_.world.run_for(1s);
  }
  ~Mesh() {
    scope_.clear();
    clients_.clear();
  }

  MeshFixture& fixture() { return m_; }
  MeshNode& node(size_t i) { return *m_.nodes[i]; }
  Client& client(size_t i) { return clients_[i]; }
  size_t clients() const { return clients_.size(); }
  void step(Duration d) { m_.world.run_for(d); }

  void open(size_t from, Endpoint dst) {
    clients_.emplace_back();
    scope_.spawn(connect_and_read(node(from).host->env(), dst, clients_.back(), scope_));
  }
  void send(Client& c, std::vector<uint8_t> bytes) {
    c.sent.insert(c.sent.end(), bytes.begin(), bytes.end());
    c.pending.insert(c.pending.end(), bytes.begin(), bytes.end());
    kick(c, scope_);
  }
  void close(Client& c) {
    c.fin_wanted = true;
    kick(c, scope_);
  }
  void reset(Client& c) {
    c.aborted = true;
    if (c.stream) c.stream->abort();
  }

  void set_policies(int which) {
    for (const std::string& k : policy_keys_) m_.store.remove_authorization(k);
    policy_keys_.clear();
    for (auto& n : m_.nodes) n->workload.authorization_policies.clear();
    for (const RefPolicy& p : policy_set(which)) {
      const std::string key = p.ns + "/" + p.name;
      m_.store.upsert_policy(key, to_core(p));
      policy_keys_.push_back(key);
      if (p.scope == RefPolicy::selector)
        for (size_t i : p.selected)
          if (i < m_.nodes.size()) node(i).workload.authorization_policies.push_back(key);
    }
    for (auto& n : m_.nodes) m_.store.upsert_workload(n->workload);
    m_.publish();
    for (auto& n : m_.nodes)
      if (n->inbound) n->inbound->recheck_policies();  // as app/worker.cc does on a policy change
  }
  void set_backends(size_t service, const std::set<size_t>& backends) {
    const core::mesh::NamespacedHostname key{"default", "svc" + std::to_string(service) + ".default.svc.cluster.local"};
    for (auto& n : m_.nodes) {
      n->workload.services.erase(key);
      if (backends.count(n->index)) n->workload.services[key] = {{80, 0}};
      m_.store.upsert_workload(n->workload);
    }
    m_.publish();
  }

  // Certificates: a new one for node i from the CA's newest root; a new
  // root joins every bundle; the old root leaves every bundle.
  void renew(size_t i) {
    MeshNode& n = node(i);
    auto issued = ca_->issue(tls::Identity("cluster.local", kNodes[i].ns, kNodes[i].sa), 48h, wall_reference() - 2h);
    ZT_ASSERT(issued.ok());
    m_.set_certificate(n, n.workload.identity().to_string(), testing::credentials(std::move(*issued)));
  }
  void add_root() {
    ZT_ASSERT(ca_->rotate(wall_reference() - 3h).ok());
    for (auto& n : m_.nodes) m_.set_roots(*n, ca_->trust_bundle());
  }
  void drop_old_root() {
    ca_->drop_old_roots();
    for (auto& n : m_.nodes) m_.set_roots(*n, ca_->trust_bundle());
  }

  // The end: heal everything, wait out the grace period, then every path
  // behaves as the reference model says, every connection ends, and after
  // the pools' idle release nothing is left.
  std::vector<std::string> finish(const Model& model) {
    std::vector<std::string> out;
    m_.world.heal_all();
    for (auto& n : m_.nodes)
      if (!n->host->up()) m_.restart(*n);
    m_.world.run_for(kGrace + 5s);
    const size_t first_new = clients_.size();
    std::vector<std::pair<size_t, std::set<size_t>>> fresh;  // (from, candidates)
    for (size_t from = 0; from < model.nodes; ++from) {
      for (size_t to = 0; to < model.nodes; ++to) {
        if (to == from) continue;  // a pod to itself is not proxied
        open(from, Endpoint{node_ip(to), kAppPort});
        fresh.push_back({from, {to}});
      }
      for (size_t s = 0; s < kServices; ++s) {
        if (model.backends[s].empty()) continue;
        open(from, Endpoint{service_vip(s), 80});
        fresh.push_back({from, model.backends[s]});
      }
    }
    for (size_t i = first_new; i < clients_.size(); ++i) {
      send(clients_[i], testing::pattern(3000, uint8_t(i)));
      close(clients_[i]);
    }
    // Every connection the model still holds open ends after its FIN.
    for (size_t i = 0; i < model.conns.size(); ++i)
      if (model.conns[i].usable() && !model.conns[i].fin) close(clients_[i]);
    m_.world.run_until([&] {
      for (size_t i = 0; i < clients_.size(); ++i)
        if (!clients_[i].done && (i >= model.conns.size() || !model.conns[i].client_dead)) return false;
      return true;
    }, 3min);
    for (size_t i = 0; i < clients_.size(); ++i) {
      if (i < model.conns.size() && model.conns[i].client_dead) continue;
      if (!clients_[i].done) out.push_back("conn " + std::to_string(i) + " never ended after the heal: " + clients_[i].describe());
    }
    for (size_t k = 0; k < fresh.size(); ++k) {
      const Client& c = clients_[first_new + k];
      const auto& [from, cands] = fresh[k];
      bool all = true, none = true;
      for (size_t b : cands) (allowed(model.policy, from, b) ? none : all) = false;
      const std::string what = "after the heal, node-" + std::to_string(from) + " -> " + std::to_string(cands.size()) +
                               " candidate(s) starting with node-" + std::to_string(*cands.begin()) + ": " + c.describe();
      if (all && !(c.done && c.end.ok() && *c.end == 0 && c.echoed_all())) out.push_back("not intact " + what);
      if (none && !c.received.empty()) out.push_back("served against policy " + what);
    }
    if (!out.empty()) return out;
    for (Client& c : clients_)
      if (c.stream) c.stream->close();
    scope_.clear();
    clients_.clear();
    m_.world.run_for(m_.pool_idle_release + 35s);
    for (auto& n : m_.nodes) {
      if (n->pool->connections() != 0)
        out.push_back("node-" + std::to_string(n->index) + ": " + std::to_string(n->pool->connections()) +
                      " pool connections left after the idle release");
      if (n->outbound->active() != 0 || n->inbound->active() != 0 || n->inbound->dials_in_flight() != 0)
        out.push_back("node-" + std::to_string(n->index) + ": proxied connections left: outbound " +
                      std::to_string(n->outbound->active()) + ", inbound " + std::to_string(n->inbound->active()) +
                      ", dials " + std::to_string(n->inbound->dials_in_flight()));
    }
    if (m_.world.live_connections() != 0)
      out.push_back(std::to_string(m_.world.live_connections()) + " simulated connections left: " +
                    m_.world.describe_leftovers());
    return out;
  }

 private:
  // The simulation's wall clock without any node's jump.
  WallTime wall_reference() const { return kEpoch + m_.world.now().time_since_epoch(); }

  static void kick(Client& c, Scope& scope) {
    if (!c.connected || c.writing || c.aborted) return;
    c.writing = true;
    scope.spawn(pump(c));
  }
  // Writes what is queued, then the FIN once asked for and all is written.
  static Task<void> pump(Client& c) {
    while (!c.pending.empty() && !c.write_failed && !c.aborted) {
      std::vector<uint8_t> chunk = std::move(c.pending);
      c.pending.clear();
      if (!co_await io::write_all(*c.stream, chunk)) c.write_failed = true;
    }
    if (c.fin_wanted && !c.write_failed && !c.aborted) (void)c.stream->shutdown_write();
    c.writing = false;
  }
  static Task<void> connect_and_read(Env& env, Endpoint dst, Client& c, Scope& scope) {
    auto s = co_await io::connect(env, dst, {}, std::chrono::seconds(10));
    if (!s) {
      c.end = s.error();
      c.done = true;
      co_return;
    }
    c.stream = std::move(*s);
    c.connected = true;
    if (c.aborted) c.stream->abort();
    if (!c.pending.empty() || c.fin_wanted) kick(c, scope);
    std::vector<uint8_t> buf(16384);
    for (;;) {
      Result<size_t> n = co_await io::read(*c.stream, buf);
      if (!n || *n == 0) {
        c.end = std::move(n);
        break;
      }
      c.received.insert(c.received.end(), buf.begin(), buf.begin() + std::ptrdiff_t(*n));
    }
    c.done = true;
  }

  MeshFixture m_;
  std::optional<tls::Ca> ca_;
  std::vector<std::string> policy_keys_;
  std::deque<Client> clients_;  // stable addresses; index = the model's connection index
  Scope scope_;
};

// --- postconditions ------------------------------------------------------------------------

// Checked after every command, on every connection, with the model after it.
void check_all(const Model& model, Mesh& mesh, const std::string& after) {
  RC_ASSERT(mesh.clients() == model.conns.size());
  for (size_t i = 0; i < model.conns.size(); ++i) {
    const ConnModel& cm = model.conns[i];
    const Client& c = mesh.client(i);
    const std::string what = "after " + after + ", conn " + std::to_string(i) + " (" + c.describe() + ")";
    // Safety, on every path: the id byte of a node it may reach, then a
    // prefix of what was sent, and only if some policy in effect allowed it.
    if (!c.received.empty()) {
      const size_t by = c.received[0];
      if (!cm.candidates.count(by)) RC_FAIL("served by a node that is not a destination: " + what);
      const size_t n = c.received.size() - 1;
      if (n > c.sent.size() || !std::equal(c.received.begin() + 1, c.received.end(), c.sent.begin()))
        RC_FAIL("bytes wrong, duplicated or out of order: " + what);
      bool ok = false;
      for (int p : cm.policies) ok = ok || allowed(p, cm.from, by);
      if (!ok) RC_FAIL("served although the reference RBAC model denies it: " + what);
    }
    if (cm.client_dead) continue;
    if (cm.reset && c.connected && !c.done) RC_FAIL("still open after its reset: " + what);
    if (!cm.strict) continue;
    if (cm.expect < 0 && (!c.done || !c.received.empty())) RC_FAIL("not refused although policy denies it: " + what);
    if (cm.expect > 0 && c.received.empty()) RC_FAIL("not served although policy allows it: " + what);
    if (c.received.empty()) continue;  // expect 0: refused is fine
    if (!c.echoed_all()) RC_FAIL("echo incomplete on a healthy path: " + what);
    if (cm.fin && !(c.done && c.end.ok() && *c.end == 0)) RC_FAIL("no clean end after the FIN on a healthy path: " + what);
    if (!cm.fin && c.done) RC_FAIL("ended before its FIN on a healthy path: " + what);
  }
}

using Cmd = rc::state::Command<Model, Mesh>;

// A value in [lo, hi), uniform whatever the test case's size (rapidcheck's
// inRange scales its range with the size, which would pin small ranges to
// `lo`), shrinking towards `lo`.
template <typename T>
T pick(T lo, T hi) {
  return *rc::gen::resize(100, rc::gen::inRange<T>(lo, hi));
}

// Every command runs for a while: long enough for a healthy path to finish
// what the command started, short enough for faults to overlap traffic.
struct Step : Cmd {
  int step_ms = pick(1000, 2001);
  void run(const Model& s0, Mesh& mesh) const override {
    act(s0, mesh);
    mesh.step(std::chrono::milliseconds(step_ms));
    Model s1 = s0;
    apply(s1);
    check_all(s1, mesh, show_string());
    after(s0, s1, mesh);
  }
  void apply(Model& s) const override {
    change(s);
    s.now += std::chrono::milliseconds(step_ms);
  }
  virtual void act(const Model&, Mesh&) const = 0;
  virtual void change(Model&) const {}
  virtual void after(const Model&, const Model&, Mesh&) const {}
  std::string show_string() const {
    std::ostringstream os;
    show(os);
    return os.str();
  }
};

size_t pick_node(const Model& s) { return pick<size_t>(0, s.nodes); }
size_t pick_conn(const Model& s) { return s.conns.empty() ? 0 : pick<size_t>(0, s.conns.size()); }

struct Open : Step {
  size_t from, to;
  bool to_service;
  explicit Open(const Model& s)
      : from(pick_node(s)), to(pick<size_t>(0, std::max(s.nodes, kServices))),
        to_service(*rc::gen::arbitrary<bool>()) {}
  std::optional<size_t> service() const { return to_service ? std::optional<size_t>(to) : std::nullopt; }
  std::optional<size_t> target() const { return to_service ? std::nullopt : std::optional<size_t>(to); }
  void checkPreconditions(const Model& s) const override {
    RC_PRE(s.up[from]);
    if (to_service) {
      RC_PRE(to < kServices);
    } else {
      RC_PRE(to < s.nodes && to != from);
    }
  }
  void change(Model& s) const override {
    ConnModel c;
    c.from = from;
    c.service = service();
    c.target = target();
    c.candidates = s.candidates_of(from, c.service, c.target);
    c.policies = {s.policy};
    c.strict = s.healthy(from, c.candidates);
    bool all = true, none = true;
    for (size_t b : c.candidates) (allowed(s.policy, from, b) ? none : all) = false;
    c.expect = all ? 1 : none ? -1 : 0;
    s.conns.push_back(c);
  }
  void act(const Model&, Mesh& mesh) const override {
    mesh.open(from, to_service ? Endpoint{service_vip(to), 80} : Endpoint{node_ip(to), kAppPort});
  }
  void show(std::ostream& os) const override {
    os << "Open(node-" << from << " -> " << (to_service ? "svc" : "node-") << to << ", " << step_ms << "ms)";
  }
};

struct Send : Step {
  size_t conn;
  size_t bytes = *rc::gen::resize(100, rc::gen::oneOf(rc::gen::inRange<size_t>(1, 2000), rc::gen::inRange<size_t>(1, 60000)));
  explicit Send(const Model& s) : conn(pick_conn(s)) {}
  void checkPreconditions(const Model& s) const override {
    RC_PRE(conn < s.conns.size());
    RC_PRE(s.conns[conn].usable() && !s.conns[conn].fin);
  }
  void change(Model& s) const override { s.conns[conn].sent += bytes; }
  void act(const Model& s, Mesh& mesh) const override {
    mesh.send(mesh.client(conn), testing::pattern(bytes, uint8_t(conn * 7 + s.conns[conn].sent)));
  }
  void show(std::ostream& os) const override { os << "Send(conn " << conn << ", " << bytes << " bytes, " << step_ms << "ms)"; }
};

struct Close : Step {
  size_t conn;
  explicit Close(const Model& s) : conn(pick_conn(s)) {}
  void checkPreconditions(const Model& s) const override {
    RC_PRE(conn < s.conns.size());
    RC_PRE(s.conns[conn].usable() && !s.conns[conn].fin);
  }
  void change(Model& s) const override { s.conns[conn].fin = true; }
  void act(const Model&, Mesh& mesh) const override { mesh.close(mesh.client(conn)); }
  void show(std::ostream& os) const override { os << "Close(conn " << conn << ", " << step_ms << "ms)"; }
};

struct Reset : Step {
  size_t conn;
  explicit Reset(const Model& s) : conn(pick_conn(s)) {}
  void checkPreconditions(const Model& s) const override {
    RC_PRE(conn < s.conns.size());
    RC_PRE(s.conns[conn].usable());
  }
  void change(Model& s) const override {
    s.conns[conn].reset = true;
    s.conns[conn].strict = false;
  }
  void act(const Model&, Mesh& mesh) const override { mesh.reset(mesh.client(conn)); }
  void show(std::ostream& os) const override { os << "Reset(conn " << conn << ", " << step_ms << "ms)"; }
};

struct Crash : Step {
  size_t n;
  explicit Crash(const Model& s) : n(pick_node(s)) {}
  void checkPreconditions(const Model& s) const override { RC_PRE(n < s.nodes && s.up[n]); }
  void change(Model& s) const override {
    s.up[n] = false;
    for (ConnModel& c : s.conns) {
      if (c.from == n) c.client_dead = true;  // its pod died with the node
      if (s.touches(c, n)) c.strict = false;
    }
  }
  void act(const Model&, Mesh& mesh) const override { mesh.fixture().crash(mesh.node(n)); }
  void show(std::ostream& os) const override { os << "Crash(node-" << n << ", " << step_ms << "ms)"; }
};

struct Restart : Step {
  size_t n;
  explicit Restart(const Model& s) : n(pick_node(s)) {}
  void checkPreconditions(const Model& s) const override { RC_PRE(n < s.nodes && !s.up[n]); }
  void change(Model& s) const override {
    s.up[n] = true;
    s.node_tainted_until[n] = s.now + std::chrono::milliseconds(step_ms) + kGrace;
  }
  void act(const Model&, Mesh& mesh) const override { mesh.fixture().restart(mesh.node(n)); }
  void show(std::ostream& os) const override { os << "Restart(node-" << n << ", " << step_ms << "ms)"; }
};

struct Partition : Step {
  size_t a, b;
  explicit Partition(const Model& s) : a(pick_node(s)), b(pick_node(s)) {}
  void checkPreconditions(const Model& s) const override {
    RC_PRE(a < b && b < s.nodes);
    RC_PRE(!s.partitioned.count({a, b}));
  }
  void change(Model& s) const override {
    s.partitioned.insert({a, b});
    for (ConnModel& c : s.conns)
      if ((c.from == a && c.candidates.count(b)) || (c.from == b && c.candidates.count(a))) c.strict = false;
  }
  void act(const Model&, Mesh& mesh) const override {
    mesh.fixture().world.partition(mesh.node(a).host->id(), mesh.node(b).host->id());
  }
  void show(std::ostream& os) const override { os << "Partition(node-" << a << ", node-" << b << ", " << step_ms << "ms)"; }
};

struct Heal : Step {
  explicit Heal(const Model&) {}
  void checkPreconditions(const Model& s) const override { RC_PRE(!s.partitioned.empty()); }
  void change(Model& s) const override {
    for (const auto& p : s.partitioned) s.pair_tainted_until[p] = s.now + std::chrono::milliseconds(step_ms) + kGrace;
    s.partitioned.clear();
  }
  void act(const Model&, Mesh& mesh) const override { mesh.fixture().world.heal_all(); }
  void show(std::ostream& os) const override { os << "Heal(" << step_ms << "ms)"; }
};

struct ChangePolicy : Step {
  int policy = pick(0, kPolicySets);
  explicit ChangePolicy(const Model&) {}
  void checkPreconditions(const Model& s) const override { RC_PRE(policy != s.policy); }
  void change(Model& s) const override {
    s.policy = policy;
    for (ConnModel& c : s.conns) {
      c.policies.insert(policy);
      // Whether a served connection survives depends on who served it:
      // `after` checks it against the node that did; the model keeps only
      // those every candidate allows.
      if (!c.strict || c.expect <= 0) {
        c.strict = c.strict && c.expect < 0;
        continue;
      }
      for (size_t b : c.candidates) c.strict = c.strict && allowed(policy, c.from, b);
    }
  }
  void act(const Model&, Mesh& mesh) const override { mesh.set_policies(policy); }
  // A served connection on a healthy path that the new set denies is closed.
  void after(const Model& s0, const Model&, Mesh& mesh) const override {
    for (size_t i = 0; i < s0.conns.size(); ++i) {
      const ConnModel& c = s0.conns[i];
      const Client& cl = mesh.client(i);
      if (!c.strict || !c.usable() || cl.received.empty()) continue;
      if (!allowed(policy, c.from, size_t(cl.served_by())) && !cl.done)
        RC_FAIL("conn " + std::to_string(i) + " still open after policy set " + std::to_string(policy) +
                " denied it: " + cl.describe());
    }
  }
  void show(std::ostream& os) const override { os << "ChangePolicy(set " << policy << ", " << step_ms << "ms)"; }
};

struct ChangeEndpoints : Step {
  size_t service = pick<size_t>(0, kServices);
  size_t n;
  explicit ChangeEndpoints(const Model& s) : n(pick_node(s)) {}
  void checkPreconditions(const Model& s) const override { RC_PRE(n < s.nodes); }
  void change(Model& s) const override {
    auto& b = s.backends[service];
    if (!b.erase(n)) b.insert(n);
    // A connection not yet routed may go to the new backend.
    for (ConnModel& c : s.conns)
      if (c.service == service && !c.strict) c.candidates.insert(n);
  }
  void act(const Model& s0, Mesh& mesh) const override {
    std::set<size_t> b = s0.backends[service];
    if (!b.erase(n)) b.insert(n);
    mesh.set_backends(service, b);
  }
  void show(std::ostream& os) const override {
    os << "ChangeEndpoints(svc" << service << " toggles node-" << n << ", " << step_ms << "ms)";
  }
};

// Certificate rotation as the fixture offers it (per-node certificates and
// trust bundles, as a node's control plane hands them over): renew one
// node's certificate from the newest root; a new root joins the bundles
// (the CA signs with it from then on); the old root leaves the bundles once
// every certificate chains to the new one. The preconditions keep every
// step safe: no connection may fail because of a rotation.
struct Rotate : Step {
  enum Kind : uint8_t { renew, add_root, drop_old_root } kind = Kind(pick(0, 3));
  size_t n;
  explicit Rotate(const Model& s) : n(pick_node(s)) {}
  void checkPreconditions(const Model& s) const override {
    RC_PRE(n < s.nodes);
    if (kind == add_root) {
      RC_PRE(s.bundle.size() == 1);
    }
    if (kind == drop_old_root) {
      RC_PRE(s.bundle.size() > 1);
      for (int r : s.cert_root) RC_PRE(r == s.root);
    }
  }
  void change(Model& s) const override {
    switch (kind) {
      case renew: s.cert_root[n] = s.root; break;
      case add_root: s.bundle.insert(++s.root); break;
      case drop_old_root: s.bundle = {s.root}; break;
    }
  }
  void act(const Model&, Mesh& mesh) const override {
    switch (kind) {
      case renew: mesh.renew(n); break;
      case add_root: mesh.add_root(); break;
      case drop_old_root: mesh.drop_old_root(); break;
    }
  }
  void show(std::ostream& os) const override {
    os << "Rotate(" << (kind == renew ? "renew node-" + std::to_string(n) : kind == add_root ? "add root" : "drop old root")
       << ", " << step_ms << "ms)";
  }
};

struct JumpClock : Step {
  size_t n;
  int64_t minutes = pick<int64_t>(-60, 61);
  explicit JumpClock(const Model& s) : n(pick_node(s)) {}
  void checkPreconditions(const Model& s) const override {
    RC_PRE(n < s.nodes);
    RC_PRE(std::abs(s.wall_offset_min[n] + minutes) <= kMaxWallOffsetMin);
  }
  void change(Model& s) const override { s.wall_offset_min[n] += minutes; }
  void act(const Model&, Mesh& mesh) const override {
    mesh.fixture().world.jump_wall(mesh.node(n).host->id(), std::chrono::minutes(minutes));
  }
  void show(std::ostream& os) const override { os << "JumpClock(node-" << n << ", " << minutes << "min, " << step_ms << "ms)"; }
};

// Time passing with nothing else: grace periods end, pooled connections go idle.
struct Wait : Step {
  int seconds = pick(1, 61);
  explicit Wait(const Model&) {}
  void change(Model& s) const override { s.now += std::chrono::seconds(seconds); }
  void act(const Model&, Mesh& mesh) const override { mesh.step(std::chrono::seconds(seconds)); }
  void show(std::ostream& os) const override { os << "Wait(" << seconds << "s, " << step_ms << "ms)"; }
};

RC_GTEST_PROP(MeshModel, CommandsKeepTheMeshTrueToTheModel, ()) {
  const uint64_t seed = *rc::gen::noShrink(rc::gen::arbitrary<uint64_t>());
  const size_t nodes = pick<size_t>(2, 4);
  Mesh mesh(seed, nodes);
  const Model initial(nodes);
  const auto commands = *rc::state::gen::commands(
      initial, rc::state::gen::execOneOfWithArgs<Open, Open, Open, Open, Open, Send, Send, Send, Send, Send, Close,
                                                 Close, Close, Reset, Crash, Restart, Partition, Heal, ChangePolicy,
                                                 ChangeEndpoints, Rotate, JumpClock, Wait>());
  Model final_model = initial;
  rc::state::runAll(commands, initial, mesh);
  rc::state::applyAll(commands, final_model);
  // What the case exercised (rapidcheck prints the distribution).
  size_t served = 0, refused = 0, faulted = 0;
  for (const ConnModel& c : final_model.conns) {
    served += c.strict && c.expect > 0;
    refused += c.strict && c.expect < 0;
    faulted += !c.strict;
  }
  RC_CLASSIFY(served > 0, "healthy served");
  RC_CLASSIFY(refused > 0, "healthy refused");
  RC_CLASSIFY(faulted > 0, "faulted or reset");
  RC_CLASSIFY(final_model.root > 0, "root rotated");
  const std::vector<std::string> violations = mesh.finish(final_model);
  if (!violations.empty()) {
    std::string all = "world seed " + std::to_string(seed) + ", " + std::to_string(nodes) + " nodes:\n";
    for (const auto& v : violations) all += "  " + v + "\n";
    RC_FAIL(all);
  }
}

}  // namespace
}  // namespace zt::sim_tests
