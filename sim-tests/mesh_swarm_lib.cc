// The mesh swarm: generators, the fault schedule, the client applications
// and the invariant checks. See mesh_swarm_lib.h and docs/ARCHITECTURE.md
// ("The mesh swarm").
#include "sim-tests/mesh_swarm_lib.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <tuple>

#include "core/control/control_plane.h"
#include "core/mesh/proto_encode.h"
#include "sim-tests/mesh_fixture.h"
#include "testing/sim_istiod.h"
#include "xds/ca_client.h"
#include "xds/grpc/channel.h"

namespace zt::sim_tests::swarm {

core::mesh::StringMatch to_core(const RefString& s) {
  core::mesh::StringMatch m;
  m.kind = s.kind == RefString::exact    ? core::mesh::StringMatch::Kind::exact
           : s.kind == RefString::prefix ? core::mesh::StringMatch::Kind::prefix
           : s.kind == RefString::suffix ? core::mesh::StringMatch::Kind::suffix
                                         : core::mesh::StringMatch::Kind::presence;
  m.value = s.value;
  return m;
}

core::mesh::Authorization to_core(const RefPolicy& p) {
  core::mesh::Authorization a;
  a.name = p.name;
  a.ns = p.ns;
  a.scope = p.scope == RefPolicy::global   ? core::mesh::RbacScope::global
            : p.scope == RefPolicy::ns_wide ? core::mesh::RbacScope::ns
                                            : core::mesh::RbacScope::workload_selector;
  a.action = p.deny ? core::mesh::RbacAction::deny : core::mesh::RbacAction::allow;
  a.dry_run = p.dry_run;
  auto strs = [](const std::vector<RefString>& v) {
    std::vector<core::mesh::StringMatch> out;
    for (const RefString& s : v) out.push_back(to_core(s));
    return out;
  };
  auto cidrs = [](const std::vector<RefCidr>& v) {
    std::vector<core::mesh::Cidr> out;
    for (const RefCidr& c : v) out.push_back(core::mesh::Cidr{c.ip, c.len});
    return out;
  };
  auto sas = [](const std::vector<std::pair<std::string, std::string>>& v) {
    std::vector<core::mesh::ServiceAccountMatch> out;
    for (const auto& [ns, sa] : v) out.push_back({ns, sa});
    return out;
  };
  for (const auto& rule : p.rules) {
    core::mesh::RbacRule r;
    for (const auto& clause : rule) {
      core::mesh::RbacClause c;
      for (const RefMatch& m : clause) {
        core::mesh::RbacMatch x;
        x.principals = strs(m.principals);
        x.not_principals = strs(m.not_principals);
        x.namespaces = strs(m.namespaces);
        x.not_namespaces = strs(m.not_namespaces);
        x.source_ips = cidrs(m.source_ips);
        x.not_source_ips = cidrs(m.not_source_ips);
        x.destination_ips = cidrs(m.destination_ips);
        x.not_destination_ips = cidrs(m.not_destination_ips);
        x.destination_ports = m.ports;
        x.not_destination_ports = m.not_ports;
        x.service_accounts = sas(m.service_accounts);
        x.not_service_accounts = sas(m.not_service_accounts);
        c.push_back(std::move(x));
      }
      r.push_back(std::move(c));
    }
    a.rules.push_back(std::move(r));
  }
  return a;
}


// --- the reference RBAC model ----------------------------------------------

bool RefString::hits(const std::string& s) const {
  switch (kind) {
    case exact: return s == value;
    case prefix: return s.size() >= value.size() && s.compare(0, value.size(), value) == 0;
    case suffix: return s.size() >= value.size() && s.compare(s.size() - value.size(), value.size(), value) == 0;
    case presence: return !s.empty();
  }
  return false;
}

bool RefCidr::hits(const IpAddr& a) const {
  if (a.is_v4() != ip.is_v4()) return false;
  const uint8_t* x = a.data();
  const uint8_t* y = ip.data();
  for (unsigned bit = 0; bit < len; ++bit) {
    const unsigned byte = bit / 8, mask = 0x80u >> (bit % 8);
    if ((x[byte] & mask) != (y[byte] & mask)) return false;
  }
  return true;
}

namespace {

template <typename T, typename F>
bool any_of(const std::vector<T>& v, F f) {
  for (const T& x : v)
    if (f(x)) return true;
  return false;
}

// A field with a positive list: empty, or one entry hits. A negative list:
// no entry hits.
template <typename T, typename F>
bool field(const std::vector<T>& pos, const std::vector<T>& neg, F hit) {
  if (!pos.empty() && !any_of(pos, hit)) return false;
  return !any_of(neg, hit);
}

bool match_hits(const RefMatch& m, const RefConn& c) {
  const std::string principal = c.trust_domain + "/ns/" + c.src_ns + "/sa/" + c.src_sa;
  auto str = [](const std::string& s) { return [&s](const RefString& r) { return r.hits(s); }; };
  auto cidr = [](const IpAddr& a) { return [&a](const RefCidr& r) { return r.hits(a); }; };
  return field(m.principals, m.not_principals, str(principal)) &&
         field(m.namespaces, m.not_namespaces, str(c.src_ns)) &&
         field(m.source_ips, m.not_source_ips, cidr(c.src_ip)) &&
         field(m.destination_ips, m.not_destination_ips, cidr(c.dst_ip)) &&
         field(m.ports, m.not_ports, [&c](uint16_t p) { return p == c.dst_port; }) &&
         field(m.service_accounts, m.not_service_accounts,
               [&c](const std::pair<std::string, std::string>& sa) { return sa.first == c.src_ns && sa.second == c.src_sa; });
}

bool applies(const RefPolicy& p, const RefConn& c) {
  switch (p.scope) {
    case RefPolicy::global: return true;
    case RefPolicy::ns_wide: return p.ns == c.dst_ns;
    case RefPolicy::selector: return std::find(p.selected.begin(), p.selected.end(), c.dst_node) != p.selected.end();
  }
  return false;
}

}  // namespace

bool ref_matches(const RefPolicy& p, const RefConn& c) {
  for (const auto& rule : p.rules) {
    bool all = true;
    for (const auto& clause : rule) {
      bool one = clause.empty();
      for (const RefMatch& m : clause) one = one || match_hits(m, c);
      all = all && one;
    }
    if (all) return true;
  }
  return false;
}

bool ref_allowed(const std::vector<RefPolicy>& policies, const RefConn& c) {
  bool any_allow = false, allow_hit = false;
  for (const RefPolicy& p : policies) {
    if (p.dry_run || !applies(p, c)) continue;
    if (p.deny) {
      if (ref_matches(p, c)) return false;
    } else {
      any_allow = true;
      allow_hit = allow_hit || ref_matches(p, c);
    }
  }
  return !any_allow || allow_hit;
}

// --- the swarm ----------------------------------------------------------------

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr uint16_t kAppPort = MeshFixture::kAppPort;
const char* const kNamespaces[] = {"default", "prod"};
const char* const kAccounts[] = {"client", "server", "web", "db"};
constexpr Duration kCaBackdate = seconds(3);  // the swarm CA's notBefore, before issue (kept below the lifetimes)
constexpr Duration kGrace = seconds(45);       // after a fault ends: keepalive (30 s) + connect timeout (10 s)
constexpr Duration kHealBound = seconds(180);  // every connection ends within this after the heal
// A node's pooled connections to a peer that died (crash, or the crash of a
// graceful restart) are gone within this: its next write or PING meets the
// restarted host's RST, or the PING (after 10 s of quiet) goes unanswered
// for 20 s, both on a 10 s tick; a connect begun before the death times
// out within 10 s.
constexpr Duration kDeadPeerBound = seconds(45);
constexpr Duration kDeadKnownBound = seconds(2);

IpAddr node_ip(size_t i) { return IpAddr::v4(10, 0, uint8_t(i + 1), 1); }
// In-pod mode: node_ip(i) is the pod's (its own host); ztunnel and the CNI
// agent of node i are hosts of their own.
IpAddr ztunnel_ip(size_t i) { return IpAddr::v4(10, 0, uint8_t(i + 1), 2); }
IpAddr agent_ip(size_t i) { return IpAddr::v4(10, 0, uint8_t(i + 1), 250); }

// What a seed turns on (swarm testing: each kind on or off per seed).
struct Profile {
  size_t nodes = 2, services = 1;
  int connections = 40;
  double client_resets = 0, slow = 0, big = 0;
  bool crashes = false, partitions = false, one_way = false, refused = false, goaway = false, wall_jumps = false;
  bool policy_changes = false, endpoint_changes = false;
  int bursts = 0;      // connections opened at one instant from one node to one destination
  bool chaos = false;  // BUGGIFY points and RSTs at random offsets: failures need no named fault
  double short_io = 0, syn_drop = 0;
  int fault_events = 0;
  Duration latency{}, jitter{};
  Duration traffic = seconds(20);  // connections open and faults start in [0, traffic)
  // Certificates from the simulated istiod's CA (each node's real CA client
  // and certificate manager) instead of fixed ones, with short lifetimes so
  // they renew mid-traffic; a root rotation; CA outages.
  bool istiod_ca = false, rotation = false, ca_outages = false;
  Duration cert_ttl{};
  // With istiod: the mesh state over delta xDS (each node's real AdsClient)
  // instead of the fixture's shared snapshot; istiod's ADS outages (every
  // stream reset, new ones refused for a while).
  bool xds = false, ads_outages = false;
  // With xDS: every node's Address on demand (XDS_ON_DEMAND): a node holds
  // only what its data path asked for (and what a service brings along).
  bool on_demand = false;
  // Connections that stay open across the mesh's changes (a share of them
  // pause for seconds between chunks), and policy changes on a schedule of
  // their own: a change that denies an open connection must close it.
  double long_lived = 0;
  int policy_churn = 0;
  // A bulk transfer (over the HTTP/2 stream window) to a client that reads
  // slowly: the echo backs up into the proxies, whose receive buffers flow
  // control must bound (check_memory).
  bool bulk = false;
  // Per node: in-pod mode (its pod enrolled by a CNI agent over ZDS and
  // proxied by PodProxies inside the pod's namespace) instead of node mode.
  // With it: agent restarts, pod re-enrollments, and crashes are ztunnel's
  // (the pod lives on).
  std::vector<bool> inpod;
  bool any_inpod() const { return std::find(inpod.begin(), inpod.end(), true) != inpod.end(); }
};

// In-pod mode is drawn from a stream of its own: the seeds that run none
// draw everything else exactly as before it existed.
void draw_inpod(Profile& p, Rng r) {
  p.inpod.assign(p.nodes, false);
  if (!r.chance(0.3)) return;
  const bool all = r.chance(0.3);
  for (size_t i = 0; i < p.nodes; ++i) p.inpod[i] = all || r.chance(0.5);
  if (!p.any_inpod()) p.inpod[r.below(p.nodes)] = true;
}

Profile draw_profile(Rng& r) {
  Profile p;
  p.nodes = size_t(r.between(2, 5));
  p.services = size_t(r.between(1, 3));
  p.connections = int(r.between(15, 60));
  p.client_resets = r.chance(0.5) ? r.unit() * 0.2 : 0;
  p.slow = r.chance(0.5) ? r.unit() * 0.5 : 0;
  p.big = r.chance(0.3) ? r.unit() * 0.2 : 0;
  p.crashes = r.chance(0.4);
  p.partitions = r.chance(0.4);
  p.one_way = r.chance(0.25);
  p.refused = r.chance(0.4);
  p.goaway = r.chance(0.3);
  p.wall_jumps = r.chance(0.3);
  p.policy_changes = r.chance(0.5);
  p.endpoint_changes = r.chance(0.4);
  p.chaos = r.chance(0.2);
  p.bursts = r.chance(0.4) ? int(r.between(1, 3)) : 0;
  p.short_io = r.chance(0.4) ? r.unit() * 0.3 : 0;
  p.syn_drop = r.chance(0.2) ? r.unit() * 0.1 : 0;
  p.fault_events = int(r.below(10));
  p.latency = std::chrono::microseconds(r.between(100, 5000));
  p.jitter = r.chance(0.5) ? std::chrono::microseconds(r.below(2000)) : Duration(0);
  p.istiod_ca = r.chance(0.7);
  if (p.istiod_ca) {
    p.rotation = r.chance(0.3);
    p.ca_outages = r.chance(0.4);
    // Renewal at half the lifetime: 15 s renews two or three times a seed.
    p.cert_ttl = seconds(int64_t(p.rotation ? r.between(15, 25) : r.between(15, 60)));
    // A rotation runs to the old root's removal: more of it under traffic.
    if (p.rotation) p.traffic = seconds(45);
    p.xds = true;
    p.ads_outages = r.chance(0.4);
  }
  p.long_lived = r.chance(0.5) ? 0.1 + r.unit() * 0.3 : 0;
  p.policy_churn = p.policy_changes ? int(r.between(1, 4)) : 0;
  p.bulk = r.chance(0.15);
  return p;
}

struct NodeSpec {
  std::string ns, sa, zone;
  uint32_t stream_limit = 0;  // 0: the default
};

// A fault, and whom it may be blamed by: connections whose path touches
// `nodes` while it lasts (from `from` to `to`, the heal plus kGrace).
struct Fault {
  enum Kind : uint8_t { hard, app_stopped } kind = hard;
  std::vector<size_t> nodes;
  MonoTime from{}, to{};
  std::string what;
};

struct PolicyVersion {
  MonoTime from{};
  std::vector<RefPolicy> policies;
};

struct ServiceSpec {
  IpAddr vip;
  std::string name;
  std::vector<std::pair<MonoTime, std::vector<size_t>>> backends;  // versions
};

struct Conn {
  size_t id = 0, from = 0;
  std::optional<size_t> service, target;  // one of them
  std::vector<uint8_t> data;
  std::optional<size_t> reset_at;  // the client aborts after this many bytes
  int chunks = 1;
  Duration pause{};
  Duration read_pause{};  // between reads (a slow reader)
  MonoTime started{}, first_byte{}, ended{};
  std::optional<MonoTime> wrote_all;  // its last byte and FIN handed to the socket
  bool done = false, got_first = false, connected = false;
  std::vector<uint8_t> received;
  Result<size_t> end = size_t{0};
  int served_by = -1;
  // The LB check: candidates ejected (for more than a second) at the start,
  // and the ones not ejected at the start.
  std::vector<size_t> ejected_at_start, healthy_at_start;
};

class Swarm;

// The mesh state as the node's control plane gets it without xDS: the
// fixture's snapshot, delivered again on each MeshFixture::publish().
class FixtureMeshSource final : public core::control::MeshSource {
 public:
  FixtureMeshSource(Env& env, MeshFixture& m) : env_(env), m_(m) {}
  ~FixtureMeshSource() override { *alive_ = false; }
  void start(Publish publish) override {
    publish_ = std::move(publish);
    env_.loop.post([this, alive = alive_] {
      if (*alive) changed();
    });
  }
  void stop() override { publish_ = nullptr; }
  void changed() {
    if (publish_ && m_.snapshot) publish_(m_.snapshot);
  }

 private:
  Env& env_;
  MeshFixture& m_;
  Publish publish_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// A node's control plane in the swarm: a gRPC channel to the simulated
// istiod, the real CA client and ControlPlane (certificate manager), and
// with Profile::xds the real delta xDS client (AdsClient) as its mesh
// source: the node's data path then reads the state it delivered.
class SwarmControl final : public NodeControl {
 public:
  SwarmControl(Swarm& swarm, MeshNode& n);
  ~SwarmControl() override;
  void request_certificate(const std::string& identity) override { plane_->request(identity); }
  void roots_changed() override { ca_->set_roots(n_.roots); }
  void state_changed() override {
    if (fixture_source_) fixture_source_->changed();
  }
  void demand(std::string key, std::function<void()> answered) override;

 private:
  Swarm& swarm_;
  MeshNode& n_;
  std::unique_ptr<xds::grpc::Channel> channel_;
  std::unique_ptr<xds::CaClient> ca_;
  core::control::Readiness readiness_;
  core::metrics::Registry ads_metrics_;
  std::unique_ptr<FixtureMeshSource> fixture_source_;
  std::unique_ptr<xds::AdsClient> ads_;                 // (after what it uses)
  std::unique_ptr<core::control::ControlPlane> plane_;  // last: goes first
};

// What a node's data path had of the mesh from some instant on: derived
// from its snapshot into the reference model's terms (the policies it held,
// each applying as the snapshot's workloads name them; each service's
// backends), so the invariants judge a connection by what its nodes had,
// not by what the fixture published (with xDS a node learns late).
struct View {
  MonoTime from{};
  bool none = false;  // no state at all (before the first, or after a crash)
  std::vector<RefPolicy> policies;
  std::vector<std::vector<size_t>> backends;  // per service: node indexes
  // Which pods (by node index) and services it held: on demand, what it
  // had not asked for yet it lacks.
  std::vector<bool> knows_node, knows_service;
};

class Swarm {
 public:
  Swarm(uint64_t seed, std::FILE* trace) : seed_(seed), r_(Rng(seed).stream("mesh-swarm")), p_(draw_profile(r_)),
                                           m_(seed, world_options()) {
    draw_inpod(p_, Rng(seed).stream("mesh-swarm-inpod"));
    if (trace) m_.world.trace().set_log(trace);
    // Drawn apart from r_: the seeds that stay wildcard draw what they drew before.
    p_.on_demand = p_.xds && Rng(seed).stream("on-demand").chance(0.35);
  }
  ~Swarm() {
    // The node control planes talk to istiod: they go before it.
    m_.client_scope.clear();
    for (auto& n : m_.nodes) n->control.reset();
    istiod_.reset();
  }

  static constexpr uint16_t kIstiodPort = 15012;
  static IpAddr istiod_ip() { return IpAddr::v4(10, 0, 0, 100); }
  MeshFixture& fixture() { return m_; }
  const Profile& profile() const { return p_; }
  void certificate_gained(MeshNode& n);
  void certificate_lost(MeshNode& n);
  // With xDS: node `n`'s control plane delivered `state` (its data path
  // reads it from now on), or died with what it held.
  void state_applied(MeshNode& n, std::shared_ptr<const core::mesh::StateSnapshot> state);
  void state_lost(MeshNode& n);
  // On demand: node `n`'s control plane (re)starts with nothing asked; its
  // data path asks for `key` (returns whether the node's state lacked it,
  // so that its xDS client subscribes it); the ask made at `asked` was
  // answered (or not, when `answered_at` is unset) by the 5 s bound.
  void control_started(MeshNode& n);
  bool demanded(MeshNode& n, const std::string& key, bool own_pod = false);
  void demand_bound(MeshNode& n, const std::string& key, MonoTime asked, std::optional<MonoTime> answered_at,
                    uint64_t incarnation);
  uint64_t control_incarnation(size_t n) const { return control_incarnation_[n]; }
  // build() alone, then `changes` policy and endpoint changes: the states
  // the fixture publishes (draw_swarm_states).
  std::vector<std::shared_ptr<const core::mesh::StateSnapshot>> draw_states(int changes);

  testing::SwarmSeedResult run();

 private:
  io::sim::WorldOptions world_options() {
    io::sim::WorldOptions o;
    o.link.latency = p_.latency;
    o.link.jitter = p_.jitter;
    o.faults.short_io = p_.short_io;
    o.faults.syn_drop = p_.syn_drop;
    if (p_.chaos) {
      o.faults.buggify_enable = 0.5;
      o.faults.conn_reset = r_.unit() * 0.05;
    } else if (r_.chance(0.6)) {
      // Fault points no connection may fail by: a server's GOAWAY after an
      // answer (the next streams are refused and must move), late window
      // updates, tiny TLS records and copy buffers.
      o.faults.buggify_enable = 0.8;
      o.faults.buggify_only = {"h2.early_goaway", "h2.zero_window", "tls.short_records", "copy.tiny_buffer"};
    }
    return o;
  }

  void build();
  RefMatch draw_match();
  RefPolicy draw_policy(size_t i);
  std::vector<RefPolicy> draw_policies();
  void apply_policies(const std::vector<RefPolicy>& ps);
  void apply_backends(ServiceSpec& s, const std::vector<size_t>& backends);
  void schedule_open(MonoTime at, std::optional<std::pair<size_t, size_t>> burst = std::nullopt, bool bulk = false);
  void open(Conn& c);
  void schedule_fault(MonoTime at);
  void change_policies();
  void heal();
  void check(std::vector<std::string>& out);
  void check_leaks(std::vector<std::string>& out);
  void start_istiod();
  void push_istiod();
  // `aliases` by resource name: what else a client may subscribe it by.
  void sync_istiod(std::string_view type, const std::vector<core::mesh::NamedResource>& now,
                   std::map<std::string, std::string>& held,
                   const std::map<std::string, std::vector<std::string>>* aliases);
  View view_of(const core::mesh::StateSnapshot& s);
  // Node `n`'s views in effect at some time in [a, b] (a `none` one when
  // it had no state for part of it).
  std::vector<const View*> views(size_t n, MonoTime a, MonoTime b) const;
  bool all_have_state() const {
    for (auto& n : m_.nodes)
      if (n->running() && !n->state) return false;
    return true;
  }
  // After the heal: every running node holds what was published last of
  // what it holds or asked for (see the definition at converged_node).
  bool converged_node(const MeshNode& n) const;
  void check_on_demand_holdings(const MeshNode& n);
  void update_may_hold();
  // An ADS outage that may have kept an on-demand ask unanswered during
  // [a, b]: while istiod refused streams, and the reconnect's backoff after.
  std::string ads_outage_during(MonoTime a, MonoTime b) const;
  // Whether the connection's nodes had to ask (on demand) for something:
  // the client for its pod or the destination, a candidate for its pod.
  bool needed_ask(const Conn& c) const;
  void observe(MeshNode& n, const tls::HandshakeRecord& r);
  void open_gap(size_t n, std::string what);
  // In-pod: ztunnel restarted (after a crash): its pod is not proxied until
  // the agent's snapshot enrolls it again.
  void restart_node(size_t a);
  void pod_proxied(MeshNode& n, bool proxied);
  void open_enroll_gap(size_t n, std::string what);
  bool all_enrolled() const {
    for (auto& n : m_.nodes)
      if (n->inpod && !n->enrolled()) return false;
    return true;
  }
  bool ca_outage_recently() const;
  void schedule_rotation();
  bool all_certified() const {
    for (auto& n : m_.nodes)
      if (n->running() && n->certificates.empty()) return false;
    return true;
  }

  MeshNode& node(size_t i) { return *m_.nodes[i]; }
  RefConn ref_conn(const Conn& c, size_t dst) const {
    RefConn rc;
    rc.src_ns = specs_[c.from].ns;
    rc.src_sa = specs_[c.from].sa;
    rc.src_ip = node_ip(c.from);
    rc.dst_ip = node_ip(dst);
    rc.dst_port = kAppPort;
    rc.dst_ns = specs_[dst].ns;
    rc.dst_node = dst;
    return rc;
  }
  // The backends the client's node had for the connection's service at
  // some time in [a, b].
  std::vector<size_t> candidates(const Conn& c, MonoTime a, MonoTime b) const {
    if (c.target) return {*c.target};
    std::set<size_t> out;
    for (const View* v : views(c.from, a, b))
      if (!v->none) out.insert(v->backends[*c.service].begin(), v->backends[*c.service].end());
    return {out.begin(), out.end()};
  }
  std::string blame(const Conn& c, MonoTime end) const;
  // On demand, a pod the client's node could not learn within the bound is
  // passed through (upstream: an unknown destination), straight to the
  // pod's app: no node applies the mesh's policy to it.
  bool passed_through(const Conn& c) const {
    const Duration bound = core::proxy::OnDemand{}.timeout;
    if (!p_.on_demand || !c.target || !c.got_first || c.first_byte < c.started + bound) return false;
    for (const View* v : views(c.from, c.started, c.started + bound - milliseconds(1)))
      if (!v->none && v->knows_node[*c.target]) return false;
    return true;
  }
  // The app that served `c` was stopped while it lived (it closes with FIN).
  bool app_closed(const Conn& c) const {
    for (const Fault& f : faults_)
      if (f.kind == Fault::app_stopped && f.from <= c.ended && f.to >= c.started && f.nodes[0] == size_t(c.served_by))
        return true;
    return false;
  }
  // In-pod: the client's ztunnel died while `c` lived. The sockets it held
  // in the pod closed as a dead process's do (FIN when nothing was unread,
  // as the kernel does): the client may see a clean end with bytes missing.
  bool client_proxy_died(const Conn& c) const {
    for (MonoTime t : ztunnel_deaths_[c.from])
      if (t >= c.started && t <= c.ended) return true;
    return false;
  }
  std::string describe(const Conn& c) const;
  double at_s(MonoTime t) const { return std::chrono::duration<double>(t - origin_).count(); }

  uint64_t seed_;
  Rng r_;
  Profile p_;
  MeshFixture m_;
  std::optional<tls::Ca> ca_;
  std::vector<NodeSpec> specs_;
  std::deque<ServiceSpec> services_;
  std::vector<PolicyVersion> policies_;
  std::deque<Conn> conns_;
  std::vector<Fault> faults_;
  std::vector<std::optional<MonoTime>> crashed_at_;  // per node: down since
  std::vector<std::vector<std::pair<MonoTime, MonoTime>>> down_;  // per node: crash windows
  std::vector<bool> app_stopped_;
  std::vector<std::string> ejected_for_nothing_;
  std::set<std::string> policy_keys_;
  MonoTime origin_{}, healed_{};
  std::map<std::string, uint64_t, std::less<>> counts_;

  // With p_.istiod_ca.
  std::unique_ptr<testing::SimIstiod> istiod_;
  std::optional<tls::Ca> next_ca_;  // the root a rotation moves to
  std::optional<tls::Certificate> old_root_, new_root_;
  std::vector<Duration> wall_offset_;                // per node: the sum of its wall-clock jumps
  std::vector<std::optional<size_t>> gap_;           // per node: its open "no certificate" fault
  std::vector<std::optional<size_t>> enroll_gap_;    // per in-pod node: its open "pod not proxied" fault
  // Per in-pod node: dels its agent was asked to send, not yet seen to stop
  // the pod (one an agent restart drops for its snapshot stays counted).
  std::vector<int> dels_sent_;
  // Per in-pod node: when its ztunnel died (a crash, or the crash of a
  // graceful restart) while its pod lived on.
  std::vector<std::vector<MonoTime>> ztunnel_deaths_;
  std::vector<std::pair<MonoTime, MonoTime>> ca_outages_;  // the CA down (to: max while down)
  int ca_down_ = 0;
  bool started_ = false;
  std::vector<std::string> certificate_violations_;

  // The dead-peer invariant: when a node dies, each other node's pool must
  // drop the connections it had opened to it (ids below `below`) within
  // kDeadPeerBound. A node that died itself in between has a new pool.
  struct DeadPeerCheck {
    size_t node, peer;
    uint64_t below;
    uint64_t incarnation;
    MonoTime died, due;
  };
  void peer_died(size_t a);
  void check_dead_peer(const DeadPeerCheck& c);
  std::vector<uint64_t> incarnation_;  // per node: deaths so far, and (in-pod) pod pools made
  // And at every second: a connection a pool knows is dead is dropped at
  // once (within kDeadKnownBound), never kept until its idle release.
  void sample_pools();
  // And at every second: each node's host holds no more descriptors than
  // the traffic that touched it recently accounts for (check_descriptors).
  void check_descriptors();
  // And the proxies' HTTP/2 receive buffers (what a slow reader leaves
  // unread) within their flow-control windows, per stream and per connection.
  void check_memory();
  std::vector<std::string> memory_violations_;
  size_t unread_peak_ = 0;  // the most one node held unread at a sample
  std::vector<std::string> descriptor_violations_;
  std::vector<size_t> descriptors_peak_;  // per node: the most seen at a sample
  std::map<std::tuple<size_t, uint64_t, uint64_t>, MonoTime> dead_seen_;  // (node, incarnation, id): first seen dead
  size_t dead_peer_pending_ = 0;
  MonoTime dead_peer_last_due_{};
  std::vector<std::string> dead_peer_violations_;
  // What each node's data path had (see View), and the policies ever
  // drawn by key (names carry their version: a key is never reused).
  std::vector<std::vector<View>> views_;
  std::map<std::string, RefPolicy> policy_by_key_;
  std::vector<std::string> state_violations_;
  // With xDS: what istiod holds (name -> bytes) per type; per node its open
  // "no mesh state" fault; istiod's ADS outages (to: max while down).
  std::map<std::string, std::string> held_addresses_, held_authorizations_;
  std::map<std::string, std::vector<std::string>> held_companions_;  // service name -> its backing workloads' names
  std::vector<std::optional<size_t>> state_gap_;
  std::vector<std::pair<MonoTime, MonoTime>> ads_outages_;
  int ads_down_ = 0;
  // On demand, per node, since its control plane last started: every key
  // its data path asked for, those its state lacked (its xDS client
  // subscribed them), the services they name, and the workloads those
  // services brought along at some point (a node may hold them).
  std::vector<std::set<std::string>> asked_, subscribed_;
  std::vector<std::set<size_t>> asked_services_;
  std::vector<std::set<std::string>> may_hold_;
  std::vector<uint64_t> control_incarnation_;
  std::vector<std::string> demand_violations_;
};

SwarmControl::SwarmControl(Swarm& swarm, MeshNode& n) : swarm_(swarm), n_(n) {
  MeshFixture& m = swarm.fixture();
  Env& env = n.host->env();
  xds::grpc::ChannelConfig cc;
  cc.address = Endpoint{Swarm::istiod_ip(), Swarm::kIstiodPort};
  cc.authority = "istiod.istio-system.svc:15012";
  cc.tls = m.tls.client();
  // The node proxy's own connections bypass capture (as the pool's): its
  // pod's address is the node's here, and an outbound without the mesh
  // state yet would refuse them (before, they went through it as
  // passthrough once the fixture's state was in).
  cc.socket.mark = 1337;
  channel_ = std::make_unique<xds::grpc::Channel>(env, cc);
  xds::CaClientConfig ca_cfg;
  ca_cfg.authority = cc.authority;
  ca_cfg.metadata = [] { return Result<h2::Headers>(h2::Headers{{"clusterid", "Kubernetes"}}); };
  ca_cfg.ttl = swarm.profile().cert_ttl;
  ca_cfg.roots = n.roots;
  ca_ = std::make_unique<xds::CaClient>(env, *channel_, ca_cfg);
  core::control::MeshSource* source = nullptr;
  if (swarm.profile().xds) {
    xds::AdsConfig ads_cfg;
    ads_cfg.node = xds::node_info(n.ip.to_string(), n.workload.name, n.workload.ns, n.workload.node, {});
    ads_cfg.authority = cc.authority;
    ads_cfg.metadata = [] { return Result<h2::Headers>(h2::Headers{{"clusterid", "Kubernetes"}}); };
    ads_cfg.on_demand = swarm.profile().on_demand;
    if (ads_cfg.on_demand) swarm.control_started(n);
    ads_ = std::make_unique<xds::AdsClient>(env, *channel_, readiness_, ads_metrics_, ads_cfg);
    source = ads_.get();
  } else {
    fixture_source_ = std::make_unique<FixtureMeshSource>(env, m);
    source = fixture_source_.get();
  }
  core::control::ControlPlaneOutputs out;
  out.on_state = [&swarm, &n](std::shared_ptr<const core::mesh::StateSnapshot> state) {
    if (swarm.profile().xds) swarm.state_applied(n, std::move(state));
  };
  out.on_certificate = [&swarm, &n](const std::string& id, std::shared_ptr<const tls::Credentials> creds) {
    swarm.fixture().set_certificate(n, id, std::move(creds));
    swarm.certificate_gained(n);
  };
  out.on_forget = [&swarm, &n](const std::string& id) {
    n.certificates.erase(id);
    swarm.certificate_lost(n);
  };
  core::control::ControlPlaneConfig cp_cfg;
  cp_cfg.node_name = n.workload.node;
  plane_ = std::make_unique<core::control::ControlPlane>(env, *source, *ca_, readiness_, cp_cfg, out);
  plane_->start();
  if (ads_ && swarm.profile().on_demand) {
    // The node knows its pod (as in-pod enrollment tells a node proxy its
    // pods, by uid) and asks for it: the state then names its identity,
    // whose certificate the control plane fetches before any traffic (the
    // inbound presents it; nothing would ask for it otherwise).
    swarm.demanded(n, n.workload.uid, /*own_pod=*/true);
    ads_->demand(n.workload.uid, [] {});
  }
}

SwarmControl::~SwarmControl() {
  if (plane_) plane_->stop();
  if (ads_) swarm_.state_lost(n_);
}

// The data path's ask goes to the node's xDS client; the swarm records it
// and checks, at the data path's 5 s bound, that it was answered.
void SwarmControl::demand(std::string key, std::function<void()> answered) {
  if (!ads_ || !swarm_.profile().on_demand) {
    answered();
    return;
  }
  swarm_.demanded(n_, key);
  MeshFixture& m = swarm_.fixture();
  const MonoTime asked = m.world.now();
  auto answered_at = std::make_shared<std::optional<MonoTime>>();
  const uint64_t incarnation = swarm_.control_incarnation(n_.index);
  m.world.scheduler().at(asked + core::proxy::OnDemand{}.timeout, io::sim::kNetwork, "swarm.demand_bound",
                         [&swarm = swarm_, &n = n_, key, asked, answered_at, incarnation] {
                           swarm.demand_bound(n, key, asked, *answered_at, incarnation);
                         });
  ads_->demand(std::move(key), [&m, answered_at, answered = std::move(answered)] {
    *answered_at = m.world.now();
    answered();
  });
}

// --- generators ----------------------------------------------------------------

RefString draw_principal(Rng& r) {
  const std::string ns = kNamespaces[r.below(2)], sa = kAccounts[r.below(4)];
  switch (r.below(4)) {
    case 0: return {RefString::exact, "cluster.local/ns/" + ns + "/sa/" + sa};
    case 1: return {RefString::prefix, "cluster.local/ns/" + ns + "/"};
    case 2: return {RefString::suffix, "/sa/" + sa};
    default: return r.chance(0.5) ? RefString{RefString::presence, ""} : RefString{RefString::exact, "cluster.local/ns/" + ns + "/sa/" + sa};
  }
}

RefMatch Swarm::draw_match() {
  RefMatch m;
  const size_t n = specs_.size();
  const int fields = int(r_.between(1, 2));
  for (int f = 0; f < fields; ++f) {
    const bool neg = r_.chance(0.3);
    switch (r_.below(6)) {
      case 0: (neg ? m.not_principals : m.principals).push_back(draw_principal(r_)); break;
      case 1: {
        RefString s = r_.chance(0.7) ? RefString{RefString::exact, kNamespaces[r_.below(2)]}
                                     : RefString{RefString::prefix, "pr"};
        (neg ? m.not_namespaces : m.namespaces).push_back(s);
        break;
      }
      case 2: {
        const size_t i = r_.below(n);
        RefCidr c = r_.chance(0.6) ? RefCidr{node_ip(i), 32}
                                   : (r_.chance(0.5) ? RefCidr{IpAddr::v4(10, 0, 0, 0), 16} : RefCidr{IpAddr::v4(10, 0, 0, 0), 23});
        (neg ? m.not_source_ips : m.source_ips).push_back(c);
        break;
      }
      case 3: (neg ? m.not_destination_ips : m.destination_ips).push_back(RefCidr{node_ip(r_.below(n)), 32}); break;
      case 4: (neg ? m.not_ports : m.ports).push_back(r_.chance(0.7) ? kAppPort : uint16_t(9090)); break;
      default:
        (neg ? m.not_service_accounts : m.service_accounts)
            .push_back({kNamespaces[r_.below(2)], kAccounts[r_.below(4)]});
        break;
    }
  }
  return m;
}

RefPolicy Swarm::draw_policy(size_t i) {
  RefPolicy p;
  p.name = "p" + std::to_string(i) + "-" + std::to_string(r_.below(1000));
  const uint64_t scope = r_.below(3);
  p.scope = scope == 0 ? RefPolicy::global : scope == 1 ? RefPolicy::ns_wide : RefPolicy::selector;
  p.ns = p.scope == RefPolicy::global ? "istio-system" : kNamespaces[r_.below(2)];
  if (p.scope == RefPolicy::selector) {
    for (size_t n = 0; n < specs_.size(); ++n)
      if (r_.chance(0.5)) p.selected.push_back(n);
  }
  p.deny = r_.chance(0.35);
  if (!p.deny && r_.chance(0.5)) {
    // A broad rule as well (most meshes allow most of their traffic).
    RefMatch broad;
    broad.principals.push_back({RefString::prefix, "cluster.local/"});
    if (r_.chance(0.5)) broad.not_principals.push_back(draw_principal(r_));
    p.rules.push_back({{broad}});
  }
  p.dry_run = r_.chance(0.2);
  const int rules = int(r_.below(3));  // 0: never matches
  for (int ri = 0; ri < rules; ++ri) {
    std::vector<std::vector<RefMatch>> rule;
    const int clauses = int(r_.between(1, 2));
    for (int ci = 0; ci < clauses; ++ci) {
      std::vector<RefMatch> clause;
      const int matches = int(r_.between(1, 2));
      for (int mi = 0; mi < matches; ++mi) clause.push_back(draw_match());
      rule.push_back(std::move(clause));
    }
    p.rules.push_back(std::move(rule));
  }
  return p;
}

std::vector<RefPolicy> Swarm::draw_policies() {
  std::vector<RefPolicy> out;
  const int n = r_.chance(0.2) ? 0 : int(r_.between(1, 4));
  for (int i = 0; i < n; ++i) {
    out.push_back(draw_policy(size_t(i)));
    // The version in the name: a key is never reused for other content
    // (View looks a node's policies up by key).
    out.back().name += "-v" + std::to_string(policies_.size());
  }
  return out;
}

void Swarm::apply_policies(const std::vector<RefPolicy>& ps) {
  for (const std::string& k : policy_keys_) m_.store.remove_authorization(k);
  policy_keys_.clear();
  for (auto& n : m_.nodes) n->workload.authorization_policies.clear();
  for (const RefPolicy& p : ps) {
    const std::string key = p.ns + "/" + p.name;
    m_.store.upsert_policy(key, to_core(p));
    policy_by_key_[key] = p;
    policy_keys_.insert(key);
    if (p.scope == RefPolicy::selector)
      for (size_t i : p.selected) node(i).workload.authorization_policies.push_back(key);
  }
  for (auto& n : m_.nodes) m_.store.upsert_workload(n->workload);
}

void Swarm::apply_backends(ServiceSpec& s, const std::vector<size_t>& backends) {
  const core::mesh::NamespacedHostname key{"default", s.name + ".default.svc.cluster.local"};
  for (auto& n : m_.nodes) {
    n->workload.services.erase(key);
    if (std::find(backends.begin(), backends.end(), n->index) != backends.end()) n->workload.services[key] = {{80, 0}};
    m_.store.upsert_workload(n->workload);
  }
  s.backends.emplace_back(m_.world.now(), backends);
}

std::vector<size_t> draw_subset(Rng& r, size_t n) {
  std::vector<size_t> out;
  for (size_t i = 0; i < n; ++i)
    if (r.chance(0.6)) out.push_back(i);
  if (out.empty()) out.push_back(size_t(r.below(n)));
  return out;
}

void Swarm::build() {
  m_.certificates_per_node = true;
  m_.pool_idle_release = seconds(15);
  for (size_t i = 0; i < p_.nodes; ++i) {
    NodeSpec s;
    s.ns = kNamespaces[r_.below(2)];
    s.sa = kAccounts[r_.below(4)];
    s.zone = r_.chance(0.5) ? "z1" : "z2";
    if (r_.chance(0.4)) s.stream_limit = uint32_t(r_.between(1, 8));
    specs_.push_back(s);
  }
  m_.configure_inbound = [this](const MeshNode& n, core::proxy::InboundConfig& cfg) {
    if (specs_[n.index].stream_limit) cfg.h2.concurrent_streams_max = specs_[n.index].stream_limit;
    if (p_.on_demand) cfg.on_demand = MeshFixture::ask_control(node(n.index));
  };
  m_.configure_outbound = [this](const MeshNode& n, core::proxy::OutboundConfig& cfg) {
    if (p_.on_demand) cfg.on_demand = MeshFixture::ask_control(node(n.index));
  };
  asked_.assign(p_.nodes, {});
  subscribed_.assign(p_.nodes, {});
  asked_services_.assign(p_.nodes, {});
  may_hold_.assign(p_.nodes, {});
  control_incarnation_.assign(p_.nodes, 0);
  // The mesh's CA, made a day before the simulation starts. Fixed
  // certificates (no istiod) are valid from two hours before to two days
  // after: wall-clock jumps of an hour either way keep them valid. With
  // istiod's CA they live seconds, issued 3 s back (the default minute
  // would exceed the lifetimes).
  tls::CaOptions ca_opts;
  ca_opts.pin_signature_sizes = true;
  if (p_.istiod_ca) ca_opts.backdate = kCaBackdate;
  const WallTime epoch = WallTime(std::chrono::seconds(1'767'225'600));  // io/sim's wall clock at 0
  auto ca = tls::Ca::create(ca_opts, Rng(seed_).stream("ca"), epoch - std::chrono::hours(24));
  ZT_ASSERT(ca.ok());
  ca_.emplace(std::move(*ca));
  for (size_t i = 0; i < p_.nodes; ++i) {
    const std::string name = "node-" + std::to_string(i);
    MeshNode& n = p_.inpod[i]
                      ? m_.add_inpod_node(name, node_ip(i), ztunnel_ip(i), agent_ip(i), specs_[i].sa, specs_[i].zone)
                      : m_.add_node(name, node_ip(i), specs_[i].sa, specs_[i].zone);
    n.workload.ns = specs_[i].ns;
    m_.store.upsert_workload(n.workload);
    if (!p_.istiod_ca) {
      auto issued = ca_->issue(tls::Identity("cluster.local", specs_[i].ns, specs_[i].sa), std::chrono::hours(48),
                               epoch - std::chrono::hours(2));
      ZT_ASSERT(issued.ok());
      m_.set_certificate(n, n.workload.identity().to_string(), testing::credentials(std::move(*issued)));
    }
    m_.set_roots(n, ca_->trust_bundle());
  }
  wall_offset_.assign(p_.nodes, Duration(0));
  gap_.assign(p_.nodes, std::nullopt);
  enroll_gap_.assign(p_.nodes, std::nullopt);
  dels_sent_.assign(p_.nodes, 0);
  ztunnel_deaths_.assign(p_.nodes, {});
  m_.on_pod_proxied = [this](MeshNode& n, bool proxied) { pod_proxied(n, proxied); };
  state_gap_.assign(p_.nodes, std::nullopt);
  views_.assign(p_.nodes, {});
  m_.per_node_state = p_.xds;
  m_.on_publish = [this] {
    if (p_.xds) {
      push_istiod();
      return;
    }
    // Without xDS every node's data path reads the fixture's snapshot.
    for (size_t i = 0; i < p_.nodes; ++i) views_[i].push_back(view_of(*m_.snapshot));
  };
  m_.on_handshake = [this](MeshNode& n, const tls::HandshakeRecord& r) { observe(n, r); };
  if (p_.istiod_ca) {
    old_root_ = ca_->root();
    if (p_.rotation) {
      auto next = tls::Ca::create(ca_opts, Rng(seed_).stream("ca-next"), epoch - std::chrono::hours(24));
      ZT_ASSERT(next.ok());
      next_ca_.emplace(std::move(*next));
      new_root_ = next_ca_->root();
    }
    start_istiod();
  }
  for (size_t s = 0; s < p_.services; ++s) {
    ServiceSpec spec;
    spec.vip = IpAddr::v4(10, 96, 0, uint8_t(s + 1));
    spec.name = "svc" + std::to_string(s);
    std::optional<core::mesh::LoadBalancer> lb;
    if (r_.chance(0.3)) {
      lb.emplace();
      lb->mode = core::mesh::LbMode::failover;
      lb->routing_preference = {core::mesh::LbScope::region, core::mesh::LbScope::zone};
    }
    m_.add_service(spec.name, spec.vip, {}, lb);
    services_.push_back(spec);
    apply_backends(services_.back(), draw_subset(r_, p_.nodes));
  }
  policies_.push_back({m_.world.now(), draw_policies()});
  apply_policies(policies_.back().policies);
  crashed_at_.assign(p_.nodes, std::nullopt);
  incarnation_.assign(p_.nodes, 0);
  down_.assign(p_.nodes, {});
  app_stopped_.assign(p_.nodes, false);
}

// --- certificates from istiod's CA ---------------------------------------------------

void Swarm::start_istiod() {
  io::sim::Host& h = m_.world.add_host("istiod", {istiod_ip()});
  auto l = h.env().net.listen(Endpoint{istiod_ip(), kIstiodPort}, {});
  ZT_ASSERT(l.ok());
  istiod_ = std::make_unique<testing::SimIstiod>(h.env(), std::move(*l), m_.tls.server());
  istiod_->serve_ca(std::move(*ca_));
  ca_.reset();
  istiod_->start();
  m_.make_control = [this](MeshNode& n) -> std::unique_ptr<NodeControl> {
    // A restarted node has no certificate until its first fetch.
    if (started_) open_gap(n.index, "node-" + std::to_string(n.index) + " fetching its certificate after a restart");
    return std::make_unique<SwarmControl>(*this, n);
  };
}

// The invariant at the TLS layer: every certificate a node presents is
// inside its validity on that node's wall clock, and so is every chain it
// accepts (on its own clock, when it verified it).
void Swarm::observe(MeshNode& n, const tls::HandshakeRecord& r) {
  counts_["handshake"]++;
  auto outside = [](WallTime at, WallTime from, WallTime until) { return at < from || at > until; };
  auto secs = [](Duration d) { return std::to_string(std::chrono::duration<double>(d).count()); };
  const std::string role = r.role == tls::TlsRole::server ? "server" : "client";
  if (certificate_violations_.size() >= 10) return;
  if (r.presented && outside(r.presented_at, r.presented_from, r.presented_until))
    certificate_violations_.push_back("node-" + std::to_string(n.index) + " (" + role +
                                      ") presented a certificate outside its validity at " +
                                      std::to_string(at_s(m_.world.now())) + " s: " +
                                      secs(r.presented_at - r.presented_from) + " s after notBefore, " +
                                      secs(r.presented_at - r.presented_until) + " s after notAfter");
  if (r.accepted && outside(r.accepted_at, r.accepted_from, r.accepted_until))
    certificate_violations_.push_back("node-" + std::to_string(n.index) + " (" + role +
                                      ") accepted a peer chain outside its validity at " +
                                      std::to_string(at_s(m_.world.now())) + " s: " +
                                      secs(r.accepted_at - r.accepted_from) + " s after notBefore, " +
                                      secs(r.accepted_at - r.accepted_until) + " s after notAfter");
}

// A node without a certificate: what runs through it may fail until it has
// one again (and kGrace after, as for any fault).
void Swarm::open_gap(size_t n, std::string what) {
  if (gap_[n]) return;
  faults_.push_back({Fault::hard, {n}, m_.world.now(), MonoTime::max(), std::move(what)});
  gap_[n] = faults_.size() - 1;
}

// --- in-pod mode ---------------------------------------------------------------

void Swarm::restart_node(size_t a) {
  m_.restart(node(a));
  if (node(a).inpod) open_enroll_gap(a, "node-" + std::to_string(a) + "'s pod not enrolled after its ztunnel restarted");
}

// A pod's proxies stopped (the agent deleted it) or started (enrolled):
// between the two, what runs through its node may fail (and kGrace after).
// They stop only for a del the agent sent (the agent's snapshots always
// name the pod). A started pod has a new pool (the dead-peer checks of the
// old one end).
void Swarm::pod_proxied(MeshNode& n, bool proxied) {
  if (!proxied) {
    counts_["pod_unenrolled"]++;
    if (dels_sent_[n.index] == 0)
      state_violations_.push_back("node-" + std::to_string(n.index) + "'s ztunnel stopped its pod's proxies at " +
                                  std::to_string(at_s(m_.world.now())) + " s with no del from its CNI agent");
    else
      --dels_sent_[n.index];
    open_enroll_gap(n.index, "node-" + std::to_string(n.index) + "'s pod re-enrolling");
    return;
  }
  counts_["pod_enrolled"]++;
  ++incarnation_[n.index];
  if (!enroll_gap_[n.index]) return;
  faults_[*enroll_gap_[n.index]].to = m_.world.now() + kGrace;
  enroll_gap_[n.index].reset();
}

void Swarm::open_enroll_gap(size_t n, std::string what) {
  if (!started_ || enroll_gap_[n]) return;
  faults_.push_back({Fault::hard, {n}, m_.world.now(), MonoTime::max(), std::move(what)});
  enroll_gap_[n] = faults_.size() - 1;
}

void Swarm::certificate_gained(MeshNode& n) {
  counts_["certificate_issued"]++;
  if (!gap_[n.index]) return;
  faults_[*gap_[n.index]].to = m_.world.now() + kGrace;
  gap_[n.index].reset();
}

// The certificate manager withdrew an expired certificate: only a CA outage
// (now, or recently enough that the fetch's backoff has not come round
// again) excuses that; otherwise a renewal failed.
void Swarm::certificate_lost(MeshNode& n) {
  if (!n.certificates.empty()) return;
  const bool outage = ca_outage_recently();
  open_gap(n.index, "certificate of node-" + std::to_string(n.index) + " lapsed" +
                        (outage ? " during a CA outage" : " (no CA outage)"));
  if (!outage && !p_.chaos)
    certificate_violations_.push_back("node-" + std::to_string(n.index) + "'s certificate lapsed at " +
                                      std::to_string(at_s(m_.world.now())) + " s with no CA outage (a renewal failed)");
}

bool Swarm::ca_outage_recently() const {
  const MonoTime now = m_.world.now();
  for (const auto& [from, to] : ca_outages_) {
    if (to == MonoTime::max()) return true;
    // The fetch backoff doubles from 1 s (+-20%): after an outage of d, the
    // next attempt comes within about 1.2 d.
    if (from <= now && now <= to + (to - from) * 2 + seconds(3)) return true;
  }
  return false;
}

// --- the mesh state over xDS ------------------------------------------------------

// The fixture published: istiod gets what changed (as the Kubernetes
// informers would tell it) and pushes it to every open ADS stream.
void Swarm::push_istiod() {
  const core::mesh::StateSnapshot& snap = *m_.snapshot;
  const SwarmXdsResources now = swarm_xds_resources(snap);
  // What an on-demand client may ask by: a workload's "network/ip", a
  // service's "network/vip" (its name is already "namespace/hostname"); a
  // service brings its backing workloads along (upstream's ambient index).
  std::map<std::string, std::vector<std::string>> aliases, companions;
  for (const auto& [uid, w] : snap.workloads().by_uid) {
    for (const IpAddr& ip : w->ips)
      aliases[core::mesh::resource_name(*w)].push_back(core::mesh::NetworkAddress{w->network, ip}.to_string());
    for (const auto& [service, ports] : w->services) companions[service.to_string()].push_back(core::mesh::resource_name(*w));
  }
  for (const auto& [key, svc] : snap.services().by_host)
    for (const core::mesh::NetworkAddress& vip : svc->vips) aliases[core::mesh::resource_name(*svc)].push_back(vip.to_string());
  sync_istiod(xds::kAddressType, now.addresses, held_addresses_, &aliases);
  sync_istiod(xds::kAuthorizationType, now.authorizations, held_authorizations_, nullptr);
  for (const auto& [name, held] : held_companions_)
    if (!companions.contains(name)) istiod_->set_companions(xds::kAddressType, name, {});
  for (const auto& [name, list] : companions) {
    auto it = held_companions_.find(name);
    if (it == held_companions_.end() || it->second != list) istiod_->set_companions(xds::kAddressType, name, list);
  }
  held_companions_ = std::move(companions);
  update_may_hold();
  istiod_->push();
}

void Swarm::sync_istiod(std::string_view type, const std::vector<core::mesh::NamedResource>& now,
                        std::map<std::string, std::string>& held,
                        const std::map<std::string, std::vector<std::string>>* aliases) {
  std::map<std::string, std::string> next;
  for (const core::mesh::NamedResource& r : now) next[r.name] = r.bytes;
  for (const auto& [name, bytes] : held)
    if (!next.contains(name)) istiod_->remove(type, name);
  for (const auto& [name, bytes] : next) {
    auto it = held.find(name);
    if (it != held.end() && it->second == bytes) continue;
    std::vector<std::string> names;
    if (aliases && aliases->contains(name)) names = aliases->at(name);
    istiod_->set(type, name, bytes, std::move(names));
  }
  held = std::move(next);
}

// The snapshot in the reference model's terms. Which policies exist and
// which workloads name them is the data the node was given; what they mean
// (RefPolicy, ref_allowed) stays the reference model's: a policy is looked
// up by its key among those the swarm drew, and must equal what was drawn.
View Swarm::view_of(const core::mesh::StateSnapshot& s) {
  View v;
  v.from = m_.world.now();
  auto names = [](const core::mesh::Workload* w, const std::string& key) {
    return w && std::find(w->authorization_policies.begin(), w->authorization_policies.end(), key) !=
                    w->authorization_policies.end();
  };
  for (const auto& [key, held] : s.policies().by_key) {
    auto it = policy_by_key_.find(key);
    if (it == policy_by_key_.end()) {
      state_violations_.push_back("a node holds policy " + key + ", which the swarm never drew");
      continue;
    }
    RefPolicy p = it->second;
    if (!(*held == to_core(p)))
      state_violations_.push_back("a node holds policy " + key + " other than the swarm drew it (xDS round trip)");
    if (p.scope == RefPolicy::selector) {
      p.selected.clear();
      for (size_t i = 0; i < m_.nodes.size(); ++i)
        if (names(s.workload_by_uid(node(i).workload.uid), key)) p.selected.push_back(i);
    }
    v.policies.push_back(std::move(p));
  }
  for (const ServiceSpec& spec : services_) {
    const core::mesh::NamespacedHostname key{"default", spec.name + ".default.svc.cluster.local"};
    std::vector<size_t> backends;
    for (size_t i = 0; i < m_.nodes.size(); ++i) {
      const core::mesh::Workload* w = s.workload_by_uid(node(i).workload.uid);
      if (w && w->services.contains(key)) backends.push_back(i);
    }
    v.backends.push_back(std::move(backends));
    v.knows_service.push_back(s.service_by_vip({"", spec.vip}) != nullptr);
  }
  for (size_t i = 0; i < m_.nodes.size(); ++i) v.knows_node.push_back(s.workload_by_uid(node(i).workload.uid) != nullptr);
  return v;
}

std::vector<const View*> Swarm::views(size_t n, MonoTime a, MonoTime b) const {
  static const View kNoState{MonoTime{}, true, {}, {}};
  std::vector<const View*> out;
  const std::vector<View>& h = views_[n];
  if (h.empty() || h[0].from > a) out.push_back(&kNoState);
  for (size_t i = 0; i < h.size(); ++i) {
    const MonoTime end = i + 1 < h.size() ? h[i + 1].from : MonoTime::max();
    if (h[i].from <= b && end >= a) out.push_back(&h[i]);
  }
  return out;
}

// As app/worker.cc on every state change: the node's data path reads the
// new state, and its inbound re-checks what it has open against it.
void Swarm::state_applied(MeshNode& n, std::shared_ptr<const core::mesh::StateSnapshot> state) {
  counts_["state_applied"]++;
  n.state = std::move(state);
  views_[n.index].push_back(view_of(*n.state));
  if (p_.on_demand) check_on_demand_holdings(n);
  if (state_gap_[n.index]) {
    faults_[*state_gap_[n.index]].to = m_.world.now() + kGrace;
    state_gap_[n.index].reset();
  }
  n.recheck_policies();
}

// The node's control plane died (a crash) and its state with it: until the
// restarted one has a state again, what runs through the node may fail.
void Swarm::state_lost(MeshNode& n) {
  ++control_incarnation_[n.index];  // what it was asked dies with it
  View none;
  none.from = m_.world.now();
  none.none = true;
  views_[n.index].push_back(std::move(none));
  if (!started_ || state_gap_[n.index]) return;
  faults_.push_back({Fault::hard, {n.index}, m_.world.now(), MonoTime::max(),
                     "node-" + std::to_string(n.index) + " without mesh state (its control plane restarting)"});
  state_gap_[n.index] = faults_.size() - 1;
}

// --- on demand ---------------------------------------------------------------------

namespace {
// Whether `state` answers an on-demand ask ("network/ip": a workload or a
// service there), so that the node's xDS client need not subscribe it.
bool answers(const core::mesh::StateSnapshot* state, const std::string& key) {
  if (!state) return false;
  if (key.find('/') == std::string::npos) return state->workload_by_uid(key) != nullptr;  // a workload uid
  auto addr = core::mesh::NetworkAddress::parse(key);
  return addr && (state->workload_by_address(*addr) || state->service_by_vip(*addr));
}
}  // namespace

void Swarm::control_started(MeshNode& n) {
  const size_t i = n.index;
  asked_[i].clear();
  subscribed_[i].clear();
  asked_services_[i].clear();
  may_hold_[i].clear();
  ++control_incarnation_[i];
}

bool Swarm::demanded(MeshNode& n, const std::string& key, bool own_pod) {
  const size_t i = n.index;
  counts_[own_pod ? "demand_own_pod" : "demand"]++;
  asked_[i].insert(key);
  const bool lacked = !answers(n.state.get(), key);
  if (lacked) {
    if (!own_pod) counts_["demand_subscribed"]++;
    subscribed_[i].insert(key);
  }
  if (auto addr = core::mesh::NetworkAddress::parse(key))
    for (size_t s = 0; s < services_.size(); ++s)
      if (services_[s].vip == addr->ip) asked_services_[i].insert(s);
  update_may_hold();
  return lacked;
}

// istiod brings a service's backing workloads along, from the state
// published last: a node that asked for the service may hold any workload
// that backed it since.
void Swarm::update_may_hold() {
  for (size_t i = 0; i < asked_services_.size(); ++i)
    for (size_t s : asked_services_[i])
      for (size_t b : services_[s].backends.back().second) may_hold_[i].insert(node(b).workload.uid);
}

// On demand a node holds only what its data path asked for: a workload or
// service by its address, or a workload a service it asked for brought.
void Swarm::check_on_demand_holdings(const MeshNode& n) {
  const size_t i = n.index;
  if (state_violations_.size() >= 10) return;
  for (const auto& [uid, w] : n.state->workloads().by_uid) {
    bool asked = may_hold_[i].contains(uid) || asked_[i].contains(uid);
    for (const IpAddr& ip : w->ips) asked = asked || asked_[i].contains(core::mesh::NetworkAddress{w->network, ip}.to_string());
    if (!asked)
      state_violations_.push_back("on-demand node-" + std::to_string(i) + " holds workload " + uid + " at " +
                                  std::to_string(at_s(m_.world.now())) + " s, which it never asked for");
  }
  for (const auto& [key, svc] : n.state->services().by_host) {
    bool asked = false;
    for (const core::mesh::NetworkAddress& vip : svc->vips) asked = asked || asked_[i].contains(vip.to_string());
    if (!asked)
      state_violations_.push_back("on-demand node-" + std::to_string(i) + " holds service " + key.to_string() + " at " +
                                  std::to_string(at_s(m_.world.now())) + " s, which it never asked for");
  }
}

// The data path waits 5 s for an answer: istiod reachable (no ADS outage
// then, nor the reconnect after one), a node's ask must be answered by
// then; or the connection that asked fails for nothing.
void Swarm::demand_bound(MeshNode& n, const std::string& key, MonoTime asked, std::optional<MonoTime> answered_at,
                         uint64_t incarnation) {
  if (answered_at) {
    counts_["demand_answered"]++;
    return;
  }
  counts_["demand_unanswered_5s"]++;
  if (p_.chaos) return void(counts_["demand_unanswered_chaos"]++);
  if (incarnation != control_incarnation_[n.index]) return void(counts_["demand_unanswered_node_restarted"]++);  // the control plane asked died
  if (!ads_outage_during(asked, m_.world.now()).empty()) return void(counts_["demand_unanswered_ads_outage"]++);
  if (demand_violations_.size() < 10)
    demand_violations_.push_back("node-" + std::to_string(n.index) + " asked for " + key + " at " +
                                 std::to_string(at_s(asked)) + " s and had no answer 5 s later, istiod reachable");
}

std::string Swarm::ads_outage_during(MonoTime a, MonoTime b) const {
  for (const auto& [from, to] : ads_outages_) {
    // The reconnect backoff doubles from 10 ms (+-jitter): after an outage
    // of d, the next attempt comes within about 1.2 d.
    const MonoTime reach = to == MonoTime::max() ? to : to + (to - from) * 2 + seconds(3);
    if (from <= b && reach >= a) return "ADS outage from " + std::to_string(at_s(from)) + " s";
  }
  return "";
}

bool Swarm::needed_ask(const Conn& c) const {
  for (const View* v : views(c.from, c.started, c.started)) {
    if (v->none || !v->knows_node[c.from]) return true;
    if (c.service ? !v->knows_service[*c.service] : !v->knows_node[*c.target]) return true;
  }
  const MonoTime end = c.done ? c.ended : MonoTime::max();
  for (size_t b : candidates(c, c.started, end))
    for (const View* v : views(b, c.started, end))
      if (v->none || !v->knows_node[b]) return true;
  return false;
}

// With on demand, after the heal a node has converged when: it holds every
// policy published, and only those, as published (Authorization stays a
// wildcard subscription); every Address it holds is published, as
// published; every key it subscribed (an ask its state lacked) that the
// published state answers is held; and every service it holds has all its
// published backing workloads with it. (Without on demand: all of it.)
bool Swarm::converged_node(const MeshNode& n) const {
  if (!n.state) return false;
  const SwarmXdsResources want = swarm_xds_resources(*m_.snapshot);
  const SwarmXdsResources got = swarm_xds_resources(*n.state);
  auto as_map = [](const std::vector<core::mesh::NamedResource>& v) {
    std::map<std::string, std::string> out;
    for (const core::mesh::NamedResource& r : v) out[r.name] = r.bytes;
    return out;
  };
  const std::map<std::string, std::string> published = as_map(want.addresses), held = as_map(got.addresses);
  if (as_map(want.authorizations) != as_map(got.authorizations)) return false;
  if (!p_.on_demand) return published == held;
  for (const auto& [name, bytes] : held) {
    auto it = published.find(name);
    if (it == published.end() || it->second != bytes) return false;
  }
  const core::mesh::StateSnapshot& pub = *m_.snapshot;
  for (const std::string& key : subscribed_[n.index]) {
    if (key.find('/') == std::string::npos) {  // a workload uid
      if (pub.workload_by_uid(key) && !held.contains(key)) return false;
      continue;
    }
    auto addr = core::mesh::NetworkAddress::parse(key);
    if (!addr) continue;
    if (const core::mesh::Workload* w = pub.workload_by_address(*addr); w && !held.contains(core::mesh::resource_name(*w)))
      return false;
    if (const core::mesh::Service* svc = pub.service_by_vip(*addr); svc && !held.contains(core::mesh::resource_name(*svc)))
      return false;
  }
  for (const auto& [key, svc] : n.state->services().by_host)
    for (const auto& [uid, w] : pub.workloads().by_uid)
      if (w->services.contains(key) && !held.contains(core::mesh::resource_name(*w))) return false;
  return true;
}

// Root rotation the way Istio does it (sim-tests/root_rotation_test.cc):
// the new root joins every node's bundle (each at its own moment), istiod
// signs with it, and once every certificate of the old root has expired or
// been renewed the old root leaves the bundles, node by node. Traffic and
// renewals go on throughout; nothing may fail for it.
void Swarm::schedule_rotation() {
  io::sim::Scheduler& s = m_.world.scheduler();
  const MonoTime t_add = origin_ + milliseconds(int64_t(r_.below(4000)));
  const MonoTime t_switch = t_add + seconds(3);
  const MonoTime t_drop = t_switch + p_.cert_ttl + kCaBackdate + seconds(2);
  for (size_t i = 0; i < p_.nodes; ++i) {
    s.at(t_add + milliseconds(int64_t(r_.below(2000))), io::sim::kNetwork, "swarm.root_add",
         [this, i] { m_.set_roots(node(i), {*old_root_, *new_root_}); });
    s.at(t_drop + milliseconds(int64_t(r_.below(2000))), io::sim::kNetwork, "swarm.root_drop",
         [this, i] { m_.set_roots(node(i), {*new_root_}); });
  }
  s.at(t_switch, io::sim::kNetwork, "swarm.root_switch", [this] {
    istiod_->serve_ca(std::move(*next_ca_));
    next_ca_.reset();
    counts_["root_rotation"]++;
  });
}

// --- the client applications --------------------------------------------------

Task<void> write_side(Env& env, Stream& s, Conn& c) {
  const size_t total = c.reset_at ? std::min(*c.reset_at, c.data.size()) : c.data.size();
  const size_t chunk = std::max<size_t>(1, total / size_t(c.chunks) + 1);
  for (size_t off = 0; off < total;) {
    const size_t n = std::min(chunk, total - off);
    if (!co_await io::write_all(s, ConstBytes(c.data).subspan(off, n))) co_return;
    off += n;
    if (off < total && c.pause > Duration(0)) co_await io::sleep(env.loop, c.pause);
  }
  if (c.reset_at) {
    co_await io::sleep(env.loop, milliseconds(int64_t(c.id % 50)));
    s.abort();
    co_return;
  }
  if (s.shutdown_write()) c.wrote_all = env.clock.now();
}

Task<void> read_side(Env& env, Stream& s, Conn& c) {
  std::vector<uint8_t> buf(16384);
  for (;;) {
    Result<size_t> n = co_await io::read(s, buf);
    if (!n || *n == 0) {
      c.end = std::move(n);
      co_return;
    }
    if (!c.got_first) {
      c.got_first = true;
      c.first_byte = env.clock.now();
      c.served_by = buf[0];
    }
    c.received.insert(c.received.end(), buf.begin(), buf.begin() + std::ptrdiff_t(*n));
    if (c.read_pause > Duration(0)) co_await io::sleep(env.loop, c.read_pause);
  }
}

Task<void> talk(Env& env, Endpoint dst, Conn& c) {
  auto s = co_await io::connect(env, dst, {}, seconds(10));
  if (!s) {
    c.end = s.error();
  } else {
    c.connected = true;
    co_await join(write_side(env, **s, c), read_side(env, **s, c));
    (*s)->close();
  }
  c.ended = env.clock.now();
  c.done = true;
}

void Swarm::open(Conn& c) {
  MeshNode& from = node(c.from);
  if (!from.pod_host->up()) {
    c.done = true;  // its pod is down: never opened
    c.started = c.ended = m_.world.now();
    c.end = Error(Errc::not_connected, "client node down");
    counts_["open_on_down_node"]++;
    return;
  }
  c.started = m_.world.now();
  const std::vector<size_t> cands = candidates(c, c.started, c.started);
  const Outbound* outbound = from.data_outbound();
  for (size_t b : cands) {
    auto until = outbound ? outbound->outliers().ejected_until(node(b).app_endpoint()) : std::nullopt;
    if (until && *until > c.started + seconds(1)) c.ejected_at_start.push_back(b);
    else if (!until) c.healthy_at_start.push_back(b);
  }
  // Outlier detection ejects only for failures: an endpoint ejected with
  // no fault ever touching it (or its client) was ejected for nothing.
  if (!p_.chaos && outbound) {
    for (size_t b : cands) {
      if (!outbound->outliers().ejected(node(b).app_endpoint())) continue;
      bool fault = false;
      for (const Fault& f : faults_)
        for (size_t n : f.nodes) fault = fault || n == b || n == c.from;
      if (!fault)
        ejected_for_nothing_.push_back("node-" + std::to_string(c.from) + " had node-" + std::to_string(b) +
                                       " ejected at " + std::to_string(at_s(c.started)) + " s with no fault on it");
    }
  }
  const Endpoint dst = c.service ? Endpoint{services_[*c.service].vip, 80} : Endpoint{node_ip(*c.target), kAppPort};
  m_.client_scope.spawn(talk(from.pod_host->env(), dst, c));
}

void Swarm::schedule_open(MonoTime at, std::optional<std::pair<size_t, size_t>> burst, bool bulk) {
  conns_.emplace_back();
  Conn& c = conns_.back();
  c.id = conns_.size();
  c.from = size_t(r_.below(p_.nodes));
  if (burst) {
    c.from = burst->first;
    c.target = burst->second;
  } else if (r_.chance(0.7)) {
    c.service = size_t(r_.below(services_.size()));
  } else {
    c.target = (c.from + 1 + size_t(r_.below(p_.nodes - 1))) % p_.nodes;  // a pod to itself is not proxied
  }
  size_t bytes = r_.below(4000);
  if (r_.chance(p_.big)) bytes = r_.below(300 * 1024);
  c.data = testing::pattern(bytes, uint8_t(c.id));
  if (r_.chance(p_.client_resets)) c.reset_at = r_.below(bytes + 1);
  if (r_.chance(p_.slow)) {
    c.chunks = int(r_.between(2, 6));
    c.pause = milliseconds(int64_t(r_.below(3000)));
  }
  if (r_.chance(p_.long_lived)) {
    c.chunks = int(r_.between(3, 6));
    c.pause = milliseconds(int64_t(r_.between(2000, 8000)));
  }
  if (bulk) {
    // 5 to 6 MiB each way, read 16 KiB at a time every 20 to 60 ms: some
    // 10 to 20 s, with the echo held back by the reader all along.
    c.data = testing::pattern(size_t(r_.between(5 << 20, 6 << 20)), uint8_t(c.id));
    c.reset_at.reset();
    c.chunks = 1;
    c.pause = Duration(0);
    c.read_pause = milliseconds(int64_t(r_.between(20, 60)));
  }
  m_.world.scheduler().at(at, io::sim::kNetwork, "swarm.open", [this, &c] { open(c); });
}

// --- faults --------------------------------------------------------------------------

void Swarm::schedule_fault(MonoTime at) {
  io::sim::World& w = m_.world;
  const size_t a = size_t(r_.below(p_.nodes));
  size_t b = size_t(r_.below(p_.nodes));
  if (b == a) b = (a + 1) % p_.nodes;
  const Duration len = milliseconds(int64_t(200 + r_.below(12000)));
  // (Seeds without istiod's CA draw as before: their schedules stay.)
  // (Seeds with in-pod nodes draw two kinds more: theirs.)
  switch (r_.below(p_.any_inpod() ? 12 : p_.istiod_ca ? 10 : 8)) {
    case 0:
      if (!p_.crashes) break;
      // In in-pod mode the crash is ztunnel's: the pod lives on, and its
      // connections through the dead proxy must end (the crash to blame).
      w.scheduler().at(at, io::sim::kNetwork, "swarm.crash", [this, a] {
        if (!node(a).host->up()) return;
        faults_.push_back({Fault::hard, {a}, m_.world.now(), MonoTime::max(),
                           "crash of node-" + std::to_string(a) + (node(a).inpod ? "'s ztunnel (its pod lives)" : "")});
        crashed_at_[a] = m_.world.now();
        if (node(a).inpod) {
          ztunnel_deaths_[a].push_back(m_.world.now());
          counts_["ztunnel_crash_pod_lives"]++;
        }
        m_.crash(node(a));
        peer_died(a);
      });
      w.scheduler().at(at + len, io::sim::kNetwork, "swarm.restart", [this, a] {
        if (node(a).host->up()) return;
        for (Fault& f : faults_)
          if (f.to == MonoTime::max() && f.nodes == std::vector<size_t>{a} && f.what.starts_with("crash"))
            f.to = m_.world.now() + kGrace;
        if (!node(a).inpod) {
          down_[a].emplace_back(*crashed_at_[a], m_.world.now());
          app_stopped_[a] = false;  // (the app restarted with its node)
        }
        crashed_at_[a].reset();
        restart_node(a);
      });
      break;
    case 10:
      if (!p_.inpod[a]) break;
      // The CNI agent restarts: ztunnel reconnects, and the agent's
      // snapshot names the pod in the same namespace: nothing changes, so
      // nothing may fail for it (no fault to blame).
      w.scheduler().at(at, io::sim::kNetwork, "swarm.agent_restart", [this, a, len] {
        io::sim::Host& agent = *node(a).agent_host;
        if (!agent.up()) return;
        counts_["agent_restart"]++;
        m_.world.crash(agent.id());
        m_.world.scheduler().at(m_.world.now() + len, io::sim::kNetwork, "swarm.agent_back",
                                [this, a] { m_.world.restart(node(a).agent_host->id()); });
      });
      break;
    case 11:
      if (!p_.inpod[a]) break;
      // The agent deletes the pod and adds it again: its proxies stop (their
      // connections drain, cut at the deadline) and start again. The gap
      // is a fault from when ztunnel stops them (pod_proxied).
      w.scheduler().at(at, io::sim::kNetwork, "swarm.reenroll", [this, a] {
        counts_["pod_reenrollment"]++;
        ++dels_sent_[a];
        m_.reenroll(node(a));
      });
      break;
    case 1:
    case 2: {
      const bool one_way = r_.chance(0.5);
      if (!(one_way ? p_.one_way : p_.partitions)) break;
      w.scheduler().at(at, io::sim::kNetwork, "swarm.partition", [this, a, b, len, one_way] {
        // (The data path's hosts: in in-pod mode the pods'.)
        io::sim::HostId ha = node(a).pod_host->id(), hb = node(b).pod_host->id();
        if (one_way) m_.world.partition_one_way(ha, hb);
        else m_.world.partition(ha, hb);
        faults_.push_back({Fault::hard, {a, b}, m_.world.now(), m_.world.now() + len + kGrace,
                           std::string(one_way ? "one-way " : "") + "partition node-" + std::to_string(a) +
                               " / node-" + std::to_string(b)});
      });
      w.scheduler().at(at + len, io::sim::kNetwork, "swarm.heal",
                       [this, a, b] { m_.world.heal(node(a).pod_host->id(), node(b).pod_host->id()); });
      break;
    }
    case 3:
      if (!p_.refused) break;
      w.scheduler().at(at, io::sim::kNetwork, "swarm.stop_app", [this, a, len] {
        if (!node(a).pod_host->up() || app_stopped_[a]) return;
        app_stopped_[a] = true;
        m_.stop_app(node(a));
        faults_.push_back({Fault::app_stopped, {a}, m_.world.now(), m_.world.now() + len + kGrace,
                           "app of node-" + std::to_string(a) + " stopped"});
      });
      w.scheduler().at(at + len, io::sim::kNetwork, "swarm.start_app", [this, a] {
        app_stopped_[a] = false;
        m_.start_app(node(a));
      });
      break;
    case 4:
      if (!p_.goaway) break;
      // A graceful restart: the inbound drains (GOAWAY; tunnels in flight
      // go on, new connections are refused), then the node's processes are
      // replaced, announcing a new stream limit: pools that learned the old
      // one send streams the new incarnation refuses, and must retry them.
      // It blames what runs through the node until just after the restart
      // (peers learn of it by RST at their next write, or by their PING).
      w.scheduler().at(at, io::sim::kNetwork, "swarm.drain", [this, a, len] {
        if (!node(a).host->up() || !node(a).running()) return;
        if (node(a).inbound) node(a).inbound->drain();
        if (node(a).pods) node(a).pods->drain_all();
        faults_.push_back({Fault::hard, {a}, m_.world.now(), MonoTime::max(), "drain (GOAWAY) of node-" + std::to_string(a)});
        const size_t fault = faults_.size() - 1;
        m_.world.scheduler().at(m_.world.now() + len, io::sim::kNetwork, "swarm.drain_restart", [this, a, fault] {
          faults_[fault].to = m_.world.now() + kGrace;
          if (!node(a).host->up()) return;
          specs_[a].stream_limit = r_.chance(0.5) ? uint32_t(r_.between(1, 8)) : 0;
          if (node(a).inpod) {
            ztunnel_deaths_[a].push_back(m_.world.now());
            counts_["ztunnel_crash_pod_lives"]++;
          }
          m_.crash(node(a));
          peer_died(a);
          restart_node(a);
          if (!node(a).inpod) {
            down_[a].emplace_back(m_.world.now(), m_.world.now());
            app_stopped_[a] = false;
          }
          faults_[fault].to = m_.world.now() + seconds(2);
        });
      });
      break;
    case 5:
      if (!p_.wall_jumps) break;
      w.scheduler().at(at, io::sim::kNetwork, "swarm.wall_jump", [this, a] {
        Duration jump = std::chrono::minutes(int64_t(r_.below(120)) - 60);
        if (p_.istiod_ca) {
          // Certificates of seconds: a node's clock stays within a second
          // behind (the 3 s backdate covers it) and an eighth of the
          // lifetime ahead (renewal at half-life still comes before expiry),
          // or the node could rightly hold no valid certificate.
          const int64_t lo = -1000 - to_ms(wall_offset_[a]);
          const int64_t hi = to_ms(p_.cert_ttl) / 8 - to_ms(wall_offset_[a]);
          jump = milliseconds(lo + int64_t(r_.below(uint64_t(hi - lo + 1))));
        }
        wall_offset_[a] += jump;
        m_.world.jump_wall(node(a).host->id(), jump);
      });
      break;
    case 8:
      if (!p_.ca_outages) break;
      w.scheduler().at(at, io::sim::kNetwork, "swarm.ca_down", [this, len] {
        ++ca_down_;
        istiod_->ca_down = true;
        ca_outages_.emplace_back(m_.world.now(), MonoTime::max());
        counts_["ca_outage"]++;
        const size_t k = ca_outages_.size() - 1;
        m_.world.scheduler().at(m_.world.now() + len, io::sim::kNetwork, "swarm.ca_up", [this, k] {
          if (ca_down_ > 0 && --ca_down_ == 0) istiod_->ca_down = false;
          if (ca_outages_[k].second == MonoTime::max()) ca_outages_[k].second = m_.world.now();
        });
      });
      break;
    case 9:
      if (!p_.ads_outages) break;
      // istiod's ADS goes away for a while (a restart, a rollout): every
      // stream is reset and new ones are refused until it is back. The
      // nodes keep serving with the state they have, which goes stale if
      // the mesh changes meanwhile: the invariants judge each node by what
      // it had (View), so stale policy is no excuse and needs none. A node
      // that restarts meanwhile has no state until istiod is back (its
      // "without mesh state" fault).
      w.scheduler().at(at, io::sim::kNetwork, "swarm.ads_down", [this, len] {
        ++ads_down_;
        istiod_->refuse_streams = true;
        istiod_->reset_streams();
        ads_outages_.emplace_back(m_.world.now(), MonoTime::max());
        counts_["ads_outage"]++;
        const size_t k = ads_outages_.size() - 1;
        m_.world.scheduler().at(m_.world.now() + len, io::sim::kNetwork, "swarm.ads_up", [this, k] {
          if (ads_down_ > 0 && --ads_down_ == 0) istiod_->refuse_streams = false;
          if (ads_outages_[k].second == MonoTime::max()) ads_outages_[k].second = m_.world.now();
        });
      });
      break;
    case 6:
      if (!p_.policy_changes) break;
      w.scheduler().at(at, io::sim::kNetwork, "swarm.policy", [this] { change_policies(); });
      break;
    default:
      if (!p_.endpoint_changes) break;
      w.scheduler().at(at, io::sim::kNetwork, "swarm.endpoints", [this] {
        ServiceSpec& s = services_[r_.below(services_.size())];
        apply_backends(s, draw_subset(r_, p_.nodes));
        m_.publish();
        counts_["endpoint_change"]++;
      });
      break;
  }
}

void Swarm::change_policies() {
  policies_.push_back({m_.world.now(), draw_policies()});
  apply_policies(policies_.back().policies);
  m_.publish();
  // (With xDS each node re-checks when it applies the change.)
  if (!p_.xds)
    for (auto& n : m_.nodes) n->recheck_policies();
  counts_["policy_change"]++;
}

void Swarm::peer_died(size_t a) {
  ++incarnation_[a];
  for (size_t x = 0; x < p_.nodes; ++x) {
    const core::hbone::Pool* pool = node(x).data_pool();
    if (x == a || !pool) continue;
    const DeadPeerCheck c{x, a, pool->next_connection_id(), incarnation_[x], m_.world.now(),
                          m_.world.now() + kDeadPeerBound};
    ++dead_peer_pending_;
    dead_peer_last_due_ = std::max(dead_peer_last_due_, c.due);
    m_.world.scheduler().at(c.due, io::sim::kNetwork, "swarm.dead_peer_check", [this, c] {
      --dead_peer_pending_;
      check_dead_peer(c);
    });
  }
}

void Swarm::sample_pools() {
  const MonoTime now = m_.world.now();
  for (size_t x = 0; x < p_.nodes; ++x) {
    const core::hbone::Pool* pool = node(x).data_pool();
    if (!pool) continue;
    for (const core::hbone::Pool::ConnectionInfo& info : pool->inspect()) {
      if (!info.dead) continue;
      const auto [it, first] = dead_seen_.try_emplace({x, incarnation_[x], info.id}, now);
      if (!first && now - it->second > kDeadKnownBound && it->second != MonoTime::max()) {
        dead_peer_violations_.push_back("node-" + std::to_string(x) + " kept pool connection #" +
                                        std::to_string(info.id) + " to " + info.peer.to_string() + " dead since " +
                                        std::to_string(at_s(it->second)) + " s, at " + std::to_string(at_s(now)) + " s");
        it->second = MonoTime::max();  // reported once
      }
    }
  }
  check_descriptors();
  check_memory();
  m_.world.scheduler().at(now + seconds(1), io::sim::kNetwork, "swarm.sample_pools", [this] { sample_pools(); });
}

// The descriptor bound, by the swarm's own ledger (not the proxy's
// counters): what a node's host holds open, its pod's app and clients
// included, is at most (in in-pod mode: what the pod's host holds, where
// the pod's proxies make their sockets, with 4 listeners, 15006 too, and
// no channel to istiod: that is on ztunnel's host, bounded by 2)
// - 3 listeners (15001, 15008, the app's 8080) and 2 for the control
//   plane's channel to istiod (an old one closing as a new one opens);
// - per connection from the node: the client's socket and the captured one
//   while it lives (and 2 s to close), and up to two pool connections (the
//   first, and a retry's) until the pool's idle release after it ends;
// - per connection that may land on the node (its target, or any backend
//   its service ever had): the dial to the app and the app's socket while it
//   lives, and up to two HBONE connections accepted for it, as long.
// A connection whose nodes a fault touched since it started keeps its
// pool and HBONE share until the fault's window ends (it includes kGrace:
// a peer's keepalive takes up to 30 s to drop a connection whose other end
// vanished).
void Swarm::check_descriptors() {
  const MonoTime now = m_.world.now();
  const Duration recent = m_.pool_idle_release + seconds(5);
  std::vector<std::set<size_t>> may_serve(services_.size());
  for (size_t s = 0; s < services_.size(); ++s)
    for (const auto& [at, backends] : services_[s].backends) may_serve[s].insert(backends.begin(), backends.end());
  descriptors_peak_.resize(p_.nodes, 0);
  for (size_t n = 0; n < p_.nodes; ++n) {
    // (An in-pod pod outlives its ztunnel: what a dead ztunnel held in it
    // must be gone too.)
    if (!node(n).pod_host->up()) continue;
    if (node(n).inpod) {
      const io::sim::World::Descriptors z = m_.world.descriptors_of(node(n).host->id());
      if (z.total() > 2 && descriptor_violations_.size() < 5)
        descriptor_violations_.push_back("node-" + std::to_string(n) + "'s ztunnel host held " +
                                         std::to_string(z.total()) + " descriptors at " + std::to_string(at_s(now)) +
                                         " s; its channel to istiod accounts for 2");
    }
    size_t bound = 5;
    for (const Conn& c : conns_) {
      if (c.started == MonoTime{} || c.started > now) continue;
      const bool to_n = c.target ? *c.target == n : may_serve[*c.service].contains(n);
      if (c.from != n && !to_n) continue;
      const bool alive = !c.done || c.ended + seconds(2) >= now;
      bool held = alive || c.ended + recent >= now;
      for (const Fault& f : faults_) {
        if (held) break;
        if (f.from > now || f.to < c.started) continue;
        for (size_t x : f.nodes)
          held = held || x == c.from || x == n || (c.target ? *c.target == x : may_serve[*c.service].contains(x));
      }
      if (!held) continue;
      const size_t share = (alive ? 2 : 0) + 2;
      bound += (c.from == n ? share : 0) + (to_n ? share : 0);
    }
    const io::sim::World::Descriptors d = m_.world.descriptors_of(node(n).pod_host->id());
    descriptors_peak_[n] = std::max(descriptors_peak_[n], d.total());
    if (d.total() > bound && descriptor_violations_.size() < 5)
      descriptor_violations_.push_back("node-" + std::to_string(n) + " held " + std::to_string(d.streams) +
                                       " connections and " + std::to_string(d.listeners) + " listeners at " +
                                       std::to_string(at_s(now)) + " s; the traffic accounts for " +
                                       std::to_string(bound));
  }
}

void Swarm::check_memory() {
  const h2::Settings windows = h2::Settings::client();  // the node proxies' (both roles share the windows)
  for (size_t n = 0; n < p_.nodes; ++n) {
    // (In-pod: the running pod's; a retiring one's go within its deadline.)
    std::vector<std::pair<std::string, h2::Connection::Unread>> held;
    if (const core::hbone::Pool* pool = node(n).data_pool())
      for (const core::hbone::Pool::ConnectionInfo& info : pool->inspect())
        held.emplace_back("pool connection #" + std::to_string(info.id) + " to " + info.peer.to_string(), info.unread);
    if (const Inbound* inbound = node(n).data_inbound())
      for (const h2::Connection::Unread& u : inbound->unread()) held.emplace_back("an inbound HBONE connection", u);
    size_t total = 0;
    for (const auto& [what, u] : held) {
      total += u.total;
      if ((u.stream_max > windows.stream_window_bytes || u.total > windows.connection_window_bytes) &&
          memory_violations_.size() < 5)
        memory_violations_.push_back("node-" + std::to_string(n) + "'s " + what + " held " + std::to_string(u.total) +
                                     " bytes unread (" + std::to_string(u.stream_max) + " on one stream) at " +
                                     std::to_string(at_s(m_.world.now())) + " s");
    }
    unread_peak_ = std::max(unread_peak_, total);
  }
}

void Swarm::check_dead_peer(const DeadPeerCheck& c) {
  MeshNode& x = node(c.node);
  const core::hbone::Pool* pool = x.data_pool();
  if (incarnation_[c.node] != c.incarnation || !pool) return;  // its pool died too (or was replaced)
  for (const core::hbone::Pool::ConnectionInfo& info : pool->inspect()) {
    if (info.id >= c.below || info.peer.ip != node(c.peer).ip) continue;
    dead_peer_violations_.push_back(
        "node-" + std::to_string(c.node) + " still holds pool connection #" + std::to_string(info.id) + " (" +
        (info.established ? (info.dead ? "established, dead" : "established") : "connecting") + ") to node-" +
        std::to_string(c.peer) + " at " + std::to_string(at_s(m_.world.now())) + " s, opened before node-" +
        std::to_string(c.peer) + " died at " + std::to_string(at_s(c.died)) + " s");
  }
}

void Swarm::heal() {
  m_.world.heal_all();
  if (istiod_) {
    istiod_->ca_down = false;
    ca_down_ = 0;
    for (auto& o : ca_outages_)
      if (o.second == MonoTime::max()) o.second = m_.world.now();
    istiod_->refuse_streams = false;
    ads_down_ = 0;
    for (auto& o : ads_outages_)
      if (o.second == MonoTime::max()) o.second = m_.world.now();
  }
  for (size_t i = 0; i < p_.nodes; ++i) {
    if (node(i).agent_host && !node(i).agent_host->up()) m_.world.restart(node(i).agent_host->id());
    if (!node(i).host->up()) {
      for (Fault& f : faults_)
        if (f.to == MonoTime::max() && f.nodes == std::vector<size_t>{i}) f.to = m_.world.now() + kGrace;
      if (!node(i).inpod) down_[i].emplace_back(*crashed_at_[i], m_.world.now());
      crashed_at_[i].reset();
      restart_node(i);
    }
    m_.start_app(node(i));
    app_stopped_[i] = false;
  }
  healed_ = m_.world.now();
}

// --- invariants ------------------------------------------------------------------------

std::string Swarm::blame(const Conn& c, MonoTime end) const {
  if (p_.chaos) return "chaos (BUGGIFY, random RSTs)";
  // A pod's connect ends at its own node's capture, with nothing in between:
  // it times out only when its SYNs are lost, to SYN drops or to a full
  // accept queue. With SYN drops on and no queue ever full, the network
  // lost them (four SYNs in the 10 s a client waits).
  if (!c.connected && !c.end.ok() && c.end.code() == Errc::timed_out && p_.syn_drop > 0 &&
      !m_.world.fault_counts().contains("backlog_overflow"))
    return "SYN drops (the client's connect timed out)";
  // On demand, what a node had to ask for it could not learn while istiod
  // was away (the connection then goes on without it).
  if (p_.on_demand && needed_ask(c)) {
    const std::string outage = ads_outage_during(c.started, end);
    if (!outage.empty()) return outage + " (an on-demand ask could not reach istiod)";
  }
  const std::vector<size_t> cands = candidates(c, c.started, end);
  std::vector<size_t> path = cands;
  path.push_back(c.from);
  auto overlaps = [&](const Fault& f) { return f.from <= end && f.to >= c.started; };
  auto has = [](const std::vector<size_t>& v, size_t n) { return std::find(v.begin(), v.end(), n) != v.end(); };
  // The candidates it was routed among: what the client's node had in its
  // first second (an endpoint added later cannot take its retry), and
  // what it had at the start (the retry follows the refusal within
  // milliseconds: it may still see only those). Per set, how many some
  // fault touches while the connection lives.
  const std::vector<size_t> routed = candidates(c, c.started, std::min(end, c.started + seconds(1)));
  const std::vector<size_t> at_start = candidates(c, c.started, c.started);
  auto touched = [&](const std::vector<size_t>& set) {
    std::set<size_t> out;
    for (const Fault& f : faults_)
      if (overlaps(f))
        for (size_t n : f.nodes)
          if (has(set, n)) out.insert(n);
    return out.size();
  };
  const bool retry_touched = touched(routed) >= std::min<size_t>(2, routed.size()) ||
                             touched(at_start) >= std::min<size_t>(2, at_start.size());
  for (const Fault& f : faults_) {
    if (!overlaps(f)) continue;
    for (size_t n : f.nodes) {
      if (f.kind == Fault::app_stopped) {
        // A refused connect is retried once, on another endpoint
        // (Outbound::connect_upstream): it may fail the connections it
        // served or that were addressed to it, or any of the service when
        // the retry may land on a touched candidate too (two touched, or
        // all). (Was: only when all were touched; with three or more
        // candidates, two stopped apps fail a connection that tries both,
        // as the one retry allows.)
        if (!has(routed, n)) continue;
        if ((c.target && *c.target == n) || c.served_by == int(n) || retry_touched)
          return f.what;
      } else if (has(path, n)) {
        return f.what;
      }
    }
  }
  return "";
}

std::string Swarm::describe(const Conn& c) const {
  std::string s = "conn " + std::to_string(c.id) + " node-" + std::to_string(c.from) + " -> " +
                  (c.service ? "svc" + std::to_string(*c.service) : "node-" + std::to_string(*c.target)) + " (" +
                  std::to_string(c.data.size()) + " bytes" + (c.reset_at ? ", client resets" : "") +
                  (c.chunks > 1 ? ", slow" : "") + ") started " + std::to_string(at_s(c.started)) + " s";
  if (c.done) s += ", ended " + std::to_string(at_s(c.ended)) + " s";
  s += ", served by " + std::to_string(c.served_by) + ", got " + std::to_string(c.received.size()) + "/" +
       std::to_string(c.data.size() + 1) + ", " + (c.end.ok() ? "EOF" : c.end.error().message());
  return s;
}

void Swarm::check(std::vector<std::string>& out) {
  for (const std::string& e : certificate_violations_) out.push_back("certificates: " + e);
  for (const std::string& e : ejected_for_nothing_) out.push_back("ejection with no fault to blame: " + e);
  for (const std::string& e : dead_peer_violations_) out.push_back("pool kept a dead peer: " + e);
  for (const std::string& e : descriptor_violations_) out.push_back("descriptors over their bound: " + e);
  for (const std::string& e : memory_violations_) out.push_back("receive buffers over the flow-control window: " + e);
  for (const std::string& e : state_violations_) out.push_back("mesh state: " + e);
  for (const std::string& e : demand_violations_) out.push_back("on demand: " + e);
  for (const Conn& c : conns_) {
    if (c.started == MonoTime{} && !c.done) continue;  // never opened
    // (In in-pod mode a crash is ztunnel's: the client's pod lives, and its
    // connections must end. down_ holds node-mode crashes only.)
    bool client_crashed = false;
    for (const auto& [from, to] : down_[c.from])
      if (from >= c.started && (!c.done || from <= c.ended)) client_crashed = true;
    if (crashed_at_[c.from] && !node(c.from).inpod) client_crashed = true;
    if (!c.done) {
      if (!client_crashed) out.push_back("never ended (liveness): " + describe(c));
      continue;
    }
    if (client_crashed) continue;  // its pod died with it
    const MonoTime end = c.ended;
    const std::vector<size_t> cands = candidates(c, c.started, end);
    // Bytes: what arrived is the server's id byte, then a prefix of the
    // echo; a clean end carries all of it.
    if (!c.received.empty()) {
      if (std::find(cands.begin(), cands.end(), size_t(c.served_by)) == cands.end())
        out.push_back("answered by a node that is not a destination: " + describe(c));
      const size_t n = std::min(c.received.size() - 1, c.data.size());
      if (c.received.size() - 1 > c.data.size() ||
          !std::equal(c.data.begin(), c.data.begin() + std::ptrdiff_t(n), c.received.begin() + 1))
        out.push_back("bytes corrupted, duplicated or out of order: " + describe(c));
    }
    const bool clean = c.end.ok() && *c.end == 0;
    const bool intact = clean && c.received.size() == c.data.size() + 1;
    const std::string culprit = blame(c, end);
    // (An application that stops closes its connections: FIN, legitimately;
    // so does the kernel for an in-pod client's ztunnel that dies.)
    if (clean && !c.reset_at && c.served_by >= 0 && !intact && !app_closed(c) && !client_proxy_died(c))
      out.push_back("clean end with bytes missing (a reset forwarded as FIN?): " + describe(c));
    // Policy: served by b only if some policy b's node had while the
    // connection was set up allowed it (a node without state allows
    // nothing).
    if (c.served_by >= 0 && !passed_through(c)) {
      bool ok = false;
      for (const View* v : views(size_t(c.served_by), c.started, c.got_first ? c.first_byte : end))
        ok = ok || (!v->none && ref_allowed(v->policies, ref_conn(c, size_t(c.served_by))));
      if (!ok) out.push_back("served although the reference RBAC model denies it: " + describe(c));
    }
    // Every candidate allowed by everything its node had while the
    // connection lived: no fault to blame, the connection must be intact.
    bool all_allow = true;
    for (size_t b : cands)
      for (const View* v : views(b, c.started, end))
        all_allow = all_allow && !v->none && ref_allowed(v->policies, ref_conn(c, b));
    if (all_allow && !c.reset_at && culprit.empty() && !intact) {
      std::string names;
      for (size_t b : cands) names += (names.empty() ? "node-" : ", node-") + std::to_string(b);
      out.push_back("failed with no fault to blame: " + describe(c) + "; candidates " + names);
    }
    // A policy change that denies an open connection closes it (when the
    // serving node applies it). Open there for sure: while the client had
    // not sent all of it (the app had no EOF, so the serving node still
    // relayed). Once it had, the serving side may be done and the echo
    // still on its way to a slow reader: nothing left to close there.
    if (c.served_by >= 0 && intact && culprit.empty()) {
      for (const View& v : views_[size_t(c.served_by)]) {
        if (v.none || v.from <= c.first_byte || v.from + seconds(2) >= end) continue;
        if (!c.wrote_all || v.from >= *c.wrote_all) continue;
        if (!ref_allowed(v.policies, ref_conn(c, size_t(c.served_by))))
          out.push_back("a policy change node-" + std::to_string(c.served_by) + " applied at " +
                        std::to_string(at_s(v.from)) + " s denied it and it was not closed: " + describe(c));
      }
    }
    // The LB: not an endpoint ejected at the start while one that was
    // healthy then (and still is at the end) exists.
    if (c.served_by >= 0 && culprit.empty() &&
        std::find(c.ejected_at_start.begin(), c.ejected_at_start.end(), size_t(c.served_by)) != c.ejected_at_start.end()) {
      const Outbound* outbound = node(c.from).data_outbound();
      for (size_t h : c.healthy_at_start) {
        const std::vector<View>& hv = views_[h];
        if (outbound && !outbound->outliers().ejected(node(h).app_endpoint()) && !hv.empty() &&
            !hv.back().none && ref_allowed(hv.back().policies, ref_conn(c, h))) {
          out.push_back("the LB picked ejected node-" + std::to_string(c.served_by) + " while node-" +
                        std::to_string(h) + " was healthy: " + describe(c));
          break;
        }
      }
    }
  }
}

void Swarm::check_leaks(std::vector<std::string>& out) {
  for (auto& n : m_.nodes) {
    if (!n->running()) continue;
    if (const core::hbone::Pool* pool = n->data_pool(); pool && pool->connections() != 0)
      out.push_back("node-" + std::to_string(n->index) + ": " + std::to_string(pool->connections()) +
                    " pool connections left after the idle release");
    if (n->inpod) {
      if (n->pods->active() != 0 || n->pods->retiring() != 0 || n->dials->in_flight() != 0)
        out.push_back("node-" + std::to_string(n->index) + " (in-pod): connections left: " +
                      std::to_string(n->pods->active()) + ", retiring pods " + std::to_string(n->pods->retiring()) +
                      ", dials " + std::to_string(n->dials->in_flight()));
      continue;
    }
    if (n->outbound->active() != 0 || n->inbound->active() != 0 || n->inbound->dials_in_flight() != 0)
      out.push_back("node-" + std::to_string(n->index) + ": connections left: outbound " +
                    std::to_string(n->outbound->active()) + ", inbound " + std::to_string(n->inbound->active()) +
                    ", dials " + std::to_string(n->inbound->dials_in_flight()));
  }
  if (m_.world.live_connections() != 0)
    out.push_back(std::to_string(m_.world.live_connections()) + " simulated connections left: " +
                  m_.world.describe_leftovers());
}

testing::SwarmSeedResult Swarm::run() {
  const auto wall_start = Clock::now();
  build();
  m_.start();
  if (p_.istiod_ca && !m_.world.run_until([this] { return all_certified(); }, seconds(10)))
    certificate_violations_.push_back("the nodes did not all get a certificate from istiod within 10 s");
  if (p_.xds && !m_.world.run_until([this] { return all_have_state(); }, seconds(10)))
    state_violations_.push_back("the nodes did not all get the mesh state from istiod within 10 s");
  if (p_.any_inpod() && !m_.world.run_until([this] { return all_enrolled(); }, seconds(10)))
    state_violations_.push_back("the CNI agents did not enroll every in-pod pod within 10 s");
  started_ = true;
  origin_ = m_.world.now();
  sample_pools();
  if (p_.rotation) schedule_rotation();
  for (int i = 0; i < p_.connections; ++i)
    schedule_open(origin_ + Duration(int64_t(r_.below(uint64_t(p_.traffic.count())))));
  for (int b = 0; b < p_.bursts; ++b) {
    // A burst to one peer (whose stream limit may be low): the pool must
    // carry all of it, refusing none.
    const size_t from = size_t(r_.below(p_.nodes));
    const size_t to = (from + 1 + size_t(r_.below(p_.nodes - 1))) % p_.nodes;
    const MonoTime at = origin_ + Duration(int64_t(r_.below(uint64_t(p_.traffic.count()))));
    const int n = int(r_.between(10, 40));
    for (int i = 0; i < n; ++i) schedule_open(at, std::make_pair(from, to));
  }
  for (int i = 0; i < p_.fault_events; ++i) schedule_fault(origin_ + Duration(int64_t(r_.below(uint64_t(p_.traffic.count())))));
  if (p_.bulk) schedule_open(origin_ + Duration(int64_t(r_.below(uint64_t(p_.traffic.count())))), std::nullopt, true);
  for (int i = 0; i < p_.policy_churn; ++i)
    m_.world.scheduler().at(origin_ + Duration(int64_t(r_.below(uint64_t(p_.traffic.count())))), io::sim::kNetwork,
                            "swarm.policy", [this] { change_policies(); });
  m_.world.run_for(p_.traffic + seconds(5));
  heal();
  auto settled = [this] {
    for (const Conn& c : conns_) {
      if (c.done) continue;
      bool crashed = false;
      for (const auto& [from, to] : down_[c.from]) crashed = crashed || from >= c.started;
      if (!crashed) return false;
    }
    return true;
  };
  m_.world.run_until(settled, kHealBound);
  // Dead-peer checks still due run now (the world is otherwise quiet).
  if (dead_peer_pending_ > 0) m_.world.run_until([this] { return dead_peer_pending_ == 0; }, dead_peer_last_due_ - m_.world.now() + seconds(1));
  // With xDS: after the heal every node converges on what was published
  // last (the ADS reconnect backs off at most 15 s).
  auto converged = [this] {
    for (auto& n : m_.nodes)
      if (n->running() && !converged_node(*n)) return false;
    return true;
  };
  if (p_.xds && !m_.world.run_until(converged, seconds(40)))
    state_violations_.push_back("the nodes did not all converge on the published state within 40 s of the heal");
  // In-pod: after the heal every pod is proxied again (ztunnel reconnects
  // to its agent within its 15 s backoff, and the snapshot names the pod).
  if (p_.any_inpod() && !m_.world.run_until([this] { return all_enrolled(); }, seconds(30)))
    state_violations_.push_back("the in-pod pods were not all enrolled again within 30 s of the heal");
  testing::SwarmSeedResult out;
  check(out.violations);
  for (const Fault& f : faults_)
    out.violations.empty() ? void() : out.violations.push_back("(fault) " + f.what + " from " + std::to_string(at_s(f.from)) + " s");
  if (out.violations.empty()) {
    // Connections of pods that died with their node hang in the client
    // scope: drop them, then give the pools their idle release.
    m_.client_scope.clear();
    // The control planes' channels to istiod are not data-path connections.
    for (auto& n : m_.nodes) n->control.reset();
    m_.make_control = nullptr;
    m_.world.run_for(m_.pool_idle_release + seconds(35));
    check_leaks(out.violations);
  }
  out.hash = m_.world.trace().hash();
  out.virtual_s = std::chrono::duration<double>(m_.world.now().time_since_epoch()).count();
  out.wall_s = std::chrono::duration<double>(Clock::now() - wall_start).count();
  out.faults = m_.world.fault_counts();
  for (const auto& [name, state] : m_.world.fault_points().points())
    if (state.second) out.faults["buggify:" + name] += state.second;
  for (const auto& [k, v] : counts_) out.faults[k] += v;
  size_t intact = 0, served = 0;
  for (const Conn& c : conns_) {
    intact += c.done && c.end.ok() && *c.end == 0 && c.received.size() == c.data.size() + 1;
    served += c.served_by >= 0;
  }
  out.stats = "nodes=" + std::to_string(p_.nodes) + " services=" + std::to_string(p_.services) +
              " conns=" + std::to_string(conns_.size()) + " intact=" + std::to_string(intact) +
              " served=" + std::to_string(served) + " faults=" + std::to_string(faults_.size()) +
              " policies=" + std::to_string(policies_.size()) + (p_.chaos ? " chaos" : "") +
              (p_.istiod_ca ? " ca_ttl=" + std::to_string(to_ms(p_.cert_ttl) / 1000) + "s" : "") +
              (p_.rotation ? " rotation" : "") + (p_.xds ? " xds" : "") + (p_.on_demand ? " ondemand" : "") +
              (p_.bulk ? " bulk" : "") +
              " fd_peak=" + std::to_string(descriptors_peak_.empty() ? 0 : *std::max_element(descriptors_peak_.begin(), descriptors_peak_.end())) +
              " unread_peak_kib=" + std::to_string(unread_peak_ >> 10) +
              (p_.any_inpod() ? " inpod=" + std::to_string(std::count(p_.inpod.begin(), p_.inpod.end(), true)) : "");
  return out;
}

std::vector<std::shared_ptr<const core::mesh::StateSnapshot>> Swarm::draw_states(int changes) {
  std::vector<std::shared_ptr<const core::mesh::StateSnapshot>> out;
  build();
  m_.publish();
  out.push_back(m_.snapshot);
  for (int i = 0; i < changes; ++i) {
    if (r_.chance(0.5)) {
      policies_.push_back({m_.world.now(), draw_policies()});
      apply_policies(policies_.back().policies);
    } else {
      apply_backends(services_[r_.below(services_.size())], draw_subset(r_, p_.nodes));
    }
    m_.publish();
    out.push_back(m_.snapshot);
  }
  return out;
}

}  // namespace

SwarmXdsResources swarm_xds_resources(const core::mesh::StateSnapshot& state) {
  SwarmXdsResources out;
  auto add = [](std::vector<core::mesh::NamedResource>& to, std::string name, const auto& encoded) {
    // Every value the swarm draws has an xDS form (proto_encode.h refuses
    // only what the wire cannot carry).
    ZT_ASSERT(encoded.ok());
    to.push_back({std::move(name), core::mesh::serialize_deterministic(*encoded)});
  };
  for (const auto& [uid, w] : state.workloads().by_uid)
    add(out.addresses, core::mesh::resource_name(*w), core::mesh::encode_address(*w));
  for (const auto& [key, svc] : state.services().by_host)
    add(out.addresses, core::mesh::resource_name(*svc), core::mesh::encode_address(*svc));
  for (const auto& [key, policy] : state.policies().by_key)
    add(out.authorizations, key, core::mesh::encode_authorization(*policy));
  return out;
}

std::vector<std::shared_ptr<const core::mesh::StateSnapshot>> draw_swarm_states(uint64_t seed, int changes) {
  Swarm s(seed, nullptr);
  return s.draw_states(changes);
}

testing::SwarmSeedResult run_mesh_swarm_seed(uint64_t seed, std::FILE* trace) {
  Swarm s(seed, trace);
  return s.run();
}

}  // namespace zt::sim_tests::swarm
