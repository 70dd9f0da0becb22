// The simulated istiod's on-demand semantics (upstream pilot's ambient
// index lookup), seen through the real delta xDS client: a service asked
// for by its VIP brings its backing workloads along, and the stream keeps
// following them as the service's endpoints change (new ones arrive, ones
// that left are removed, unless the client asked for them itself); a
// wildcard stream is not affected by companions at all.
#include <gtest/gtest.h>

#include "testing/mesh_fixtures.h"
#include "testing/sim_harness.h"
#include "testing/sim_istiod.h"
#include "testing/tls_test_util.h"
#include "xds/ads_client.h"

namespace zt::testing {
namespace {

using Harness = SimHarness<IpAddr::Family::v4>;
using xds::kAddressType;
using xds::kAuthorizationType;
constexpr uint16_t kIstiodPort = 15012;
const std::string kService = "default/echo.default.svc.cluster.local";

std::string workload_bytes(const std::string& uid, const std::string& ip, const std::string& name_suffix = "") {
  istio::workload::Workload w = workload_proto(uid, ip);
  w.set_name(uid + name_suffix);
  return address_of(w).SerializeAsString();
}

struct Fixture {
  explicit Fixture(bool on_demand) : h(3), tls(h.client().clock.wall_now()) {
    auto l = h.server().net.listen(Endpoint{h.server_ip(), kIstiodPort}, {});
    ZT_ASSERT(l.ok());
    istiod = std::make_unique<SimIstiod>(h.server(), std::move(*l), tls.server());
    istiod->set(kAddressType, kService,
                address_of(service_proto("default", "echo.default.svc.cluster.local", "10.96.0.1", 80, 8080))
                    .SerializeAsString(),
                {"/10.96.0.1"});
    for (int i = 1; i <= 3; ++i) {
      const std::string uid = "uid-" + std::to_string(i), ip = "10.1.0." + std::to_string(i);
      istiod->set(kAddressType, uid, workload_bytes(uid, ip), {"/" + ip});
    }
    istiod->set_companions(kAddressType, kService, {"uid-1", "uid-2"});
    istiod->start();
    xds::grpc::ChannelConfig cc;
    cc.address = Endpoint{h.server_ip(), kIstiodPort};
    cc.authority = "istiod.istio-system.svc:15012";
    cc.tls = tls.client();
    channel = std::make_unique<xds::grpc::Channel>(h.client(), cc);
    xds::AdsConfig cfg;
    cfg.node = xds::node_info("10.0.0.1", "ztunnel-abc", "istio-system", "node-a", {});
    cfg.authority = cc.authority;
    cfg.metadata = [] { return Result<h2::Headers>(h2::Headers{{"clusterid", "Kubernetes"}}); };
    cfg.on_demand = on_demand;
    ads = std::make_unique<xds::AdsClient>(h.client(), *channel, readiness, metrics, cfg);
    ads->start([this](std::shared_ptr<const core::mesh::StateSnapshot> s) { state = std::move(s); });
  }
  ~Fixture() {
    ads.reset();
    channel.reset();
    istiod.reset();
  }
  bool holds(const std::string& uid) const { return state && state->workload_by_uid(uid) != nullptr; }
  size_t workloads() const { return state ? state->workloads().by_uid.size() : 0; }
  void ask(const std::string& key) {
    bool answered = false;
    ads->demand(key, [&answered] { answered = true; });
    ASSERT_TRUE(h.run_until([&] { return answered; }, std::chrono::seconds(5))) << key;
  }
  // Lets a push land.
  void settle() { h.world().run_for(std::chrono::seconds(2)); }

  Harness h;
  TlsWorld tls;
  std::unique_ptr<SimIstiod> istiod;
  std::unique_ptr<xds::grpc::Channel> channel;
  core::control::Readiness readiness;
  core::metrics::Registry metrics;
  std::unique_ptr<xds::AdsClient> ads;
  std::shared_ptr<const core::mesh::StateSnapshot> state;
};

TEST(SimIstiodOnDemand, AServiceBringsItsBackingWorkloadsAndFollowsThem) {
  Fixture f(/*on_demand=*/true);
  ASSERT_TRUE(f.h.run_until([&] { return f.readiness.ready(); }, std::chrono::seconds(30)));
  f.settle();
  EXPECT_EQ(f.workloads(), 0u);

  f.ask("/10.96.0.1");
  ASSERT_NE(f.state, nullptr);
  EXPECT_NE(f.state->service_by_vip({"", *IpAddr::parse("10.96.0.1")}), nullptr);
  EXPECT_TRUE(f.holds("uid-1"));
  EXPECT_TRUE(f.holds("uid-2"));
  EXPECT_FALSE(f.holds("uid-3")) << "not a backend: not brought along";

  // The endpoints change: the one that left is removed, the new one arrives.
  f.istiod->set_companions(kAddressType, kService, {"uid-2", "uid-3"});
  f.istiod->push();
  f.settle();
  EXPECT_FALSE(f.holds("uid-1"));
  EXPECT_TRUE(f.holds("uid-2"));
  EXPECT_TRUE(f.holds("uid-3"));

  // A companion's update follows it.
  f.istiod->set(kAddressType, "uid-3", workload_bytes("uid-3", "10.1.0.3", "-v2"), {"/10.1.0.3"});
  f.istiod->push();
  f.settle();
  ASSERT_TRUE(f.holds("uid-3"));
  EXPECT_EQ(f.state->workload_by_uid("uid-3")->name, "uid-3-v2");

  // Asked for by itself as well, a workload stays when the service drops it.
  f.ask("/10.1.0.1");
  EXPECT_TRUE(f.holds("uid-1"));
  f.istiod->set_companions(kAddressType, kService, {});
  f.istiod->push();
  f.settle();
  EXPECT_TRUE(f.holds("uid-1"));
  EXPECT_FALSE(f.holds("uid-2"));
  EXPECT_FALSE(f.holds("uid-3"));
  EXPECT_NE(f.state->service_by_vip({"", *IpAddr::parse("10.96.0.1")}), nullptr);

  // A companion that goes away altogether is removed too.
  f.istiod->set_companions(kAddressType, kService, {"uid-2"});
  f.istiod->push();
  f.settle();
  ASSERT_TRUE(f.holds("uid-2"));
  f.istiod->remove(kAddressType, "uid-2");
  f.istiod->push();
  f.settle();
  EXPECT_FALSE(f.holds("uid-2"));
  EXPECT_TRUE(f.istiod->nacks().empty());
}

TEST(SimIstiodOnDemand, CompanionsChangeNothingForAWildcardStream) {
  Fixture f(/*on_demand=*/false);
  ASSERT_TRUE(f.h.run_until([&] { return f.readiness.ready(); }, std::chrono::seconds(30)));
  f.settle();
  EXPECT_EQ(f.workloads(), 3u);
  const uint64_t sent = f.istiod->resources_sent();
  f.istiod->set_companions(kAddressType, kService, {"uid-3"});
  f.istiod->push();
  f.settle();
  EXPECT_EQ(f.workloads(), 3u);
  EXPECT_EQ(f.istiod->resources_sent(), sent) << "a companion change alone sends nothing to a wildcard stream";
}

}  // namespace
}  // namespace zt::testing
