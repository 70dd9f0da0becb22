// Root rotation across a mesh, on the simulator, over seeds: three nodes
// whose certificates come from istiod's CA (the real CaClient and
// ControlPlane, renewing at half-life) while a pod sends through the mesh
// without pause, and the mesh root rotates the way Istio rotates it:
//
//   1. a new root joins every node's trust bundle (each node learns it at
//      its own moment, within minutes: a ConfigMap reaching each node);
//   2. istiod starts signing with the new root;
//   3. once every certificate of the old root has been renewed, the old root
//      leaves the bundles (again node by node).
//
// Invariant: every connection before, during and after is intact, and in
// the end every certificate chains to the new root. Pooled connections are
// released after 20 s idle, so handshakes keep happening across every step.
// A control run drops the old root before the renewals, which must fail
// connections: the check can fail.
//
//   ZT_SIM_SEED=7 ./build/dev/sim-tests/root_rotation_test   # replay one seed
#include <gtest/gtest.h>

#include "core/control/control_plane.h"
#include "sim-tests/mesh_fixture.h"
#include "testing/sim_istiod.h"
#include "xds/ca_client.h"

namespace zt::sim_tests {
namespace {

using namespace std::chrono_literals;
constexpr uint64_t kSeeds = 6;
constexpr Duration kLifetime = 1h;  // SECRET_TTL: renewals every ~30 min

// The mesh state the nodes start from; xDS is not what this test is about.
class FixedMesh final : public core::control::MeshSource {
 public:
  FixedMesh(Env& env, std::shared_ptr<const core::mesh::StateSnapshot> s) : env_(env), state_(std::move(s)) {}
  void start(Publish publish) override {
    env_.loop.post([this, publish = std::move(publish)] { publish(state_); });
  }
  void stop() override {}

 private:
  Env& env_;
  std::shared_ptr<const core::mesh::StateSnapshot> state_;
};

// A node's control plane: a channel to istiod, the CA client, the manager.
struct NodeControl {
  std::unique_ptr<xds::grpc::Channel> channel;
  std::unique_ptr<xds::CaClient> ca;
  std::unique_ptr<FixedMesh> mesh;
  core::control::Readiness readiness;
  std::unique_ptr<core::control::ControlPlane> plane;
};

struct Outcome {
  size_t connections = 0, intact = 0;
  size_t on_new_root = 0, certificates = 0;  // at the end
  std::string first_failure;
};

Outcome rotate(uint64_t seed, bool drop_old_root_early) {
  MeshFixture m(seed);
  m.certificates_per_node = true;
  m.pool_idle_release = 20s;
  Rng rng(seed);
  MeshNode& a = m.add_node("node-a", IpAddr::v4(10, 0, 1, 1), "client");
  MeshNode& b = m.add_node("node-b", IpAddr::v4(10, 0, 2, 1), "server");
  MeshNode& c = m.add_node("node-c", IpAddr::v4(10, 0, 3, 1), "server");
  const IpAddr vip = IpAddr::v4(172, 16, 0, 1);
  m.add_service("echo", vip, {&b, &c});

  io::sim::Host& istiod_host = m.world.add_host("istiod", {IpAddr::v4(10, 0, 0, 100)});
  auto listener = istiod_host.env().net.listen(Endpoint{IpAddr::v4(10, 0, 0, 100), 15012}, {});
  ZT_ASSERT(listener.ok());
  testing::SimIstiod istiod(istiod_host.env(), std::move(*listener), m.tls.server());
  tls::CaOptions ca_opts;
  ca_opts.pin_signature_sizes = true;
  const WallTime t0 = istiod_host.env().clock.wall_now();
  auto old_ca = tls::Ca::create(ca_opts, Rng(seed * 2 + 1), t0 - 24h);
  auto new_ca = tls::Ca::create(ca_opts, Rng(seed * 2 + 2), t0 - 24h);
  ZT_ASSERT(old_ca.ok() && new_ca.ok());
  const tls::Certificate old_root = old_ca->root(), new_root = new_ca->root();
  istiod.serve_ca(std::move(*old_ca));
  istiod.start();

  for (MeshNode* n : {&a, &b, &c}) m.set_roots(*n, {old_root});
  m.start();
  std::map<MeshNode*, NodeControl> control;
  for (MeshNode* n : {&a, &b, &c}) {
    NodeControl& nc = control[n];
    Env& env = n->host->env();
    xds::grpc::ChannelConfig cc;
    cc.address = Endpoint{IpAddr::v4(10, 0, 0, 100), 15012};
    cc.authority = "istiod.istio-system.svc:15012";
    cc.tls = m.tls.client();
    nc.channel = std::make_unique<xds::grpc::Channel>(env, cc);
    xds::CaClientConfig ca_cfg;
    ca_cfg.authority = cc.authority;
    ca_cfg.metadata = [] { return Result<h2::Headers>(h2::Headers{{"clusterid", "Kubernetes"}}); };
    ca_cfg.ttl = kLifetime;
    ca_cfg.roots = {old_root};
    nc.ca = std::make_unique<xds::CaClient>(env, *nc.channel, ca_cfg);
    nc.mesh = std::make_unique<FixedMesh>(env, m.snapshot);
    core::control::ControlPlaneOutputs out;
    out.on_state = [](std::shared_ptr<const core::mesh::StateSnapshot>) {};
    out.on_certificate = [&m, n](const std::string& id, std::shared_ptr<const tls::Credentials> creds) {
      m.set_certificate(*n, id, std::move(creds));
    };
    out.on_forget = [n](const std::string& id) { n->certificates.erase(id); };
    core::control::ControlPlaneConfig cp_cfg;
    cp_cfg.node_name = n->host->name();
    nc.plane = std::make_unique<core::control::ControlPlane>(env, *nc.mesh, *nc.ca, nc.readiness, cp_cfg, out);
    nc.plane->start();
  }
  // A node's trust bundle changes (its copy of the root ConfigMap).
  auto give_roots = [&](MeshNode* n, std::vector<tls::Certificate> roots) {
    m.set_roots(*n, roots);
    control[n].ca->set_roots(std::move(roots));
  };
  EXPECT_TRUE(m.world.run_until(
      [&] {
        for (auto& [n, nc] : control)
          if (!nc.readiness.ready()) return false;
        return true;
      },
      1min))
      << "seed " << seed;

  // The pod on node-a talks to the service without pause; gaps up to 40 s
  // let pooled connections go idle, so new handshakes happen throughout.
  const MonoTime start = m.world.now();
  const Duration t_add = Duration(rng.between(uint64_t(to_ms(5min)), uint64_t(to_ms(20min))) * 1'000'000);
  const Duration t_switch = t_add + 6min;
  const Duration t_drop = drop_old_root_early ? t_switch + 1min : t_switch + kLifetime + 5min;
  const Duration t_end = t_drop + 40min;
  for (MeshNode* n : {&a, &b, &c}) {
    const Duration add_at = t_add + Duration(rng.below(uint64_t(to_ms(5min))) * 1'000'000);
    const Duration drop_at = t_drop + Duration(rng.below(uint64_t(to_ms(5min))) * 1'000'000);
    n->host->env().loop.run_after(add_at, [&, n] { give_roots(n, {old_root, new_root}); });
    n->host->env().loop.run_after(drop_at, [&, n] { give_roots(n, {new_root}); });
  }
  istiod_host.env().loop.run_after(t_switch, [&] { istiod.serve_ca(std::move(*new_ca)); });

  while (m.world.now() - start < t_end) {
    m.open(a, Endpoint{vip, 80}, 1 + rng.below(20000));
    m.world.run_for(Duration(rng.between(uint64_t(to_ms(1s)), uint64_t(to_ms(40s))) * 1'000'000));
  }
  EXPECT_TRUE(m.world.run_until([&] { return m.all_done(); }, 2min)) << "seed " << seed;

  Outcome o;
  for (const ClientConn& conn : m.clients) {
    ++o.connections;
    if (conn.intact) {
      ++o.intact;
    } else if (o.first_failure.empty()) {
      o.first_failure = "at " + std::to_string(to_ms(conn.started - start) / 1000) + " s: " +
                        (conn.end.ok() ? "bytes lost" : conn.end.error().message());
    }
  }
  for (MeshNode* n : {&a, &b, &c}) {
    for (const auto& [id, creds] : n->certificates) {
      ++o.certificates;
      if (creds->chain.back().to_pem() == new_root.to_pem()) ++o.on_new_root;
    }
  }
  for (auto& [n, nc] : control) nc.plane->stop();
  m.client_scope.clear();
  control.clear();
  return o;
}

TEST(RootRotation, NoConnectionFailsBeforeDuringOrAfter) {
  for (uint64_t seed : scenario_seeds(kSeeds)) {
    SCOPED_TRACE(testing::replay(seed));
    Outcome o = rotate(seed, false);
    EXPECT_EQ(o.intact, o.connections) << "seed " << seed << ": first failure " << o.first_failure
                                       << " (replay: ZT_SIM_SEED=" << seed << ")";
    EXPECT_GE(o.connections, 150u) << "seed " << seed;
    EXPECT_EQ(o.certificates, 3u) << "seed " << seed;
    EXPECT_EQ(o.on_new_root, o.certificates) << "seed " << seed << ": every certificate chains to the new root";
    std::printf("seed %llu: %zu of %zu connections intact through the rotation\n",
                static_cast<unsigned long long>(seed), o.intact, o.connections);
  }
}

// The control: the old root leaves the bundles a minute after istiod
// switched, while nodes still present certificates of the old root.
TEST(RootRotation, DroppingTheOldRootTooEarlyFailsConnections) {
  for (uint64_t seed : scenario_seeds(2)) {
    SCOPED_TRACE(testing::replay(seed));
    Outcome o = rotate(seed, true);
    EXPECT_LT(o.intact, o.connections) << "seed " << seed << ": the invariant did not see a broken rotation";
  }
}

}  // namespace
}  // namespace zt::sim_tests
