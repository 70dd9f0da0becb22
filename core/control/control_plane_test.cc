// The control loop's logic on the simulator: readiness waits for the first
// state and the local workloads' certificates; certificates follow the
// node's workloads; a failing CA is retried with backoff and never costs a
// certificate already held.
#include "core/control/control_plane.h"

#include <gtest/gtest.h>

#include "core/mesh/store.h"
#include "io/event.h"
#include "io/sim/world.h"
#include "testing/mesh_fixtures.h"

namespace zt::core::control {
namespace {

using testing::ip;
using testing::make_workload;

// A mesh source the test drives: push() publishes the store's state.
class ScriptedSource final : public MeshSource {
 public:
  explicit ScriptedSource(Env& env) : env_(env) {}
  void start(Publish publish) override { publish_ = std::move(publish); }
  void stop() override { publish_ = nullptr; }
  void push() {
    auto snapshot = store.publish();
    env_.loop.post([this, snapshot] {
      if (publish_) publish_(snapshot);
    });
  }
  mesh::MeshStore store;

 private:
  Env& env_;
  Publish publish_;
};

// A CA that fails while `down` is set, else answers through the fake CA.
class FlakyCa final : public CertificateSource {
 public:
  FlakyCa(Env& env, tls::Ca ca) : inner_(env, std::move(ca), std::chrono::hours(24)) {}
  Task<Result<tls::Credentials>> fetch(const tls::Identity& identity) override {
    ++calls;
    if (down) co_return Error(Errc::connection_refused, "CA unavailable");
    co_return co_await inner_.fetch(identity);
  }
  std::vector<tls::Certificate> roots() const override { return inner_.roots(); }
  bool down = false;
  int calls = 0;

 private:
  FakeCaSource inner_;
};

mesh::Workload on_node(std::string uid, std::string sa, std::string node, std::string_view addr) {
  mesh::Workload w = make_workload(std::move(uid), "default", {ip(addr)});
  w.service_account = std::move(sa);
  w.node = std::move(node);
  return w;
}

struct Fixture {
  Fixture() : host(world.add_host("control", {ip("10.0.0.1")})), source(host.env()) {
    tls::CaOptions opts;
    opts.pin_signature_sizes = true;
    ca.emplace(host.env(), *tls::Ca::create(opts, Rng(7), host.env().clock.wall_now()));
    ControlPlaneOutputs out;
    out.on_state = [this](auto s) { states.push_back(s); };
    out.on_certificate = [this](const std::string& id, auto creds) { held[id] = creds; };
    out.on_forget = [this](const std::string& id) { held.erase(id); };
    cp = std::make_unique<ControlPlane>(host.env(), source, *ca, readiness, ControlPlaneConfig{"node-a"}, out);
  }
  io::sim::World world{42};
  io::sim::Host& host;
  ScriptedSource source;
  std::optional<FlakyCa> ca;
  Readiness readiness;
  std::vector<std::shared_ptr<const mesh::StateSnapshot>> states;
  std::map<std::string, std::shared_ptr<const tls::Credentials>> held;
  std::unique_ptr<ControlPlane> cp;
};

const std::string kSleep = "spiffe://cluster.local/ns/default/sa/sleep";
const std::string kEcho = "spiffe://cluster.local/ns/default/sa/echo";

TEST(ControlPlane, ReadyOnceTheStateAndTheLocalCertificatesAreIn) {
  Fixture f;
  f.cp->start();
  EXPECT_EQ(f.readiness.pending(), (std::vector<std::string>{"mesh state", "workload certificates"}));
  f.source.store.upsert_workload(on_node("w1", "sleep", "node-a", "10.1.0.1"));
  f.source.store.upsert_workload(on_node("w2", "echo", "node-b", "10.1.0.2"));  // another node's
  f.source.push();
  f.world.run_for(std::chrono::seconds(1));
  EXPECT_TRUE(f.readiness.ready()) << f.readiness.pending().front();
  ASSERT_EQ(f.states.size(), 1u);
  EXPECT_EQ(f.held.size(), 1u);
  ASSERT_TRUE(f.held.contains(kSleep));
  EXPECT_EQ(f.held[kSleep]->chain.front().uri_sans().front(), kSleep);
  EXPECT_EQ(f.cp->certificates().at(kSleep).state, CertificateStatus::State::available);
}

TEST(ControlPlane, CertificatesFollowTheNodesWorkloads) {
  Fixture f;
  f.cp->start();
  f.source.store.upsert_workload(on_node("w1", "sleep", "node-a", "10.1.0.1"));
  f.source.push();
  f.world.run_for(std::chrono::seconds(1));
  // A workload moves here, the other leaves: one identity in, one out.
  f.source.store.remove_workload("w1");
  f.source.store.upsert_workload(on_node("w2", "echo", "node-a", "10.1.0.2"));
  f.source.push();
  f.world.run_for(std::chrono::seconds(1));
  EXPECT_FALSE(f.held.contains(kSleep));
  EXPECT_TRUE(f.held.contains(kEcho));
  // The data path may ask for an identity that is not local while a
  // workload still has it.
  f.source.store.upsert_workload(on_node("w3", "sleep", "node-b", "10.1.0.3"));
  f.source.push();
  f.world.run_for(std::chrono::seconds(1));
  EXPECT_FALSE(f.held.contains(kSleep));
  f.cp->request(kSleep);
  f.cp->request("spiffe://cluster.local/ns/default/sa/nobody");  // no workload has it: kept only until the next state
  f.world.run_for(std::chrono::seconds(1));
  EXPECT_TRUE(f.held.contains(kSleep));
  f.source.push();
  f.world.run_for(std::chrono::seconds(1));
  EXPECT_TRUE(f.held.contains(kSleep));
  EXPECT_FALSE(f.held.contains("spiffe://cluster.local/ns/default/sa/nobody"));
}

TEST(ControlPlane, EveryIdentityWhenAskedTo) {
  io::sim::World world(5);
  io::sim::Host& host = world.add_host("control", {ip("10.0.0.1")});
  ScriptedSource source(host.env());
  tls::CaOptions opts;
  opts.pin_signature_sizes = true;
  FakeCaSource ca(host.env(), *tls::Ca::create(opts, Rng(3), host.env().clock.wall_now()), std::chrono::hours(1));
  Readiness readiness;
  std::set<std::string> held;
  ControlPlaneOutputs out;
  out.on_certificate = [&](const std::string& id, auto) { held.insert(id); };
  ControlPlaneConfig cfg{"node-a"};
  cfg.every_identity = true;
  int issued = 0;
  out.on_certificate = [&](const std::string& id, auto) {
    held.insert(id);
    ++issued;
  };
  ControlPlane cp(host.env(), source, ca, readiness, cfg, out);
  cp.start();
  source.store.upsert_workload(on_node("w1", "sleep", "node-a", "10.1.0.1"));
  source.store.upsert_workload(on_node("w2", "echo", "node-b", "10.1.0.2"));
  source.push();
  world.run_for(std::chrono::seconds(1));
  EXPECT_EQ(held, (std::set<std::string>{kEcho, kSleep}));
  EXPECT_EQ(issued, 2) << "a source that answers at once issues each identity once";
  EXPECT_TRUE(readiness.ready());
}

TEST(ControlPlane, AFailingCaIsRetriedWithBackoffAndReadinessDoesNotWaitForever) {
  Fixture f;
  f.ca->down = true;
  f.cp->start();
  f.source.store.upsert_workload(on_node("w1", "sleep", "node-a", "10.1.0.1"));
  f.source.push();
  f.world.run_for(std::chrono::milliseconds(100));
  // Tried once and failed: ready (the failure is logged and retried), but
  // nothing is held.
  EXPECT_TRUE(f.readiness.ready());
  EXPECT_EQ(f.ca->calls, 1);
  EXPECT_EQ(f.cp->certificates().at(kSleep).state, CertificateStatus::State::failed);
  EXPECT_NE(f.cp->certificates().at(kSleep).last_error.find("CA unavailable"), std::string::npos);
  // Backoff: about 1, 2, 4, 8 s (+-20%) between attempts.
  f.world.run_for(std::chrono::seconds(10));
  EXPECT_GE(f.ca->calls, 3);
  EXPECT_LE(f.ca->calls, 5);
  f.ca->down = false;
  f.world.run_for(std::chrono::seconds(20));
  ASSERT_TRUE(f.held.contains(kSleep));
  EXPECT_EQ(f.cp->certificates().at(kSleep).state, CertificateStatus::State::available);
}

TEST(ControlPlane, NoMoreThanEightFetchesAtOnce) {
  // A CA that never answers: every fetch stays in flight.
  class StuckCa final : public CertificateSource {
   public:
    explicit StuckCa(Env& env) : never(env.loop) {}
    Task<Result<tls::Credentials>> fetch(const tls::Identity&) override {
      ++calls;
      co_await never.wait();
      co_return Error(Errc::cancelled, "never");
    }
    std::vector<tls::Certificate> roots() const override { return {}; }
    Event never;
    int calls = 0;
  };
  io::sim::World world(1);
  io::sim::Host& host = world.add_host("control", {ip("10.0.0.1")});
  ScriptedSource source(host.env());
  StuckCa ca(host.env());
  Readiness readiness;
  ControlPlane cp(host.env(), source, ca, readiness, ControlPlaneConfig{}, {});
  cp.start();
  for (int i = 0; i < 20; ++i) {
    source.store.upsert_workload(on_node("w" + std::to_string(i), "sa" + std::to_string(i), "n", "10.1.0." + std::to_string(i + 1)));
  }
  source.push();
  world.run_for(std::chrono::seconds(5));
  EXPECT_EQ(ca.calls, int(CertificateManagerConfig{}.fetches_max));
  EXPECT_EQ(readiness.pending(), std::vector<std::string>{"workload certificates"});
}

}  // namespace
}  // namespace zt::core::control
