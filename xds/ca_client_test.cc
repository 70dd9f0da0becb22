// The CA client against the simulated istiod's CA, on the simulator: a
// certificate for the identity asked, checked before use; a CA that is down,
// one that answers for another identity, one we do not trust.
#include "xds/ca_client.h"

#include <gtest/gtest.h>

#include "testing/sim_harness.h"
#include "testing/sim_istiod.h"
#include "testing/tls_test_util.h"

namespace zt::xds {
namespace {

using Harness = testing::SimHarness<IpAddr::Family::v4>;
const tls::Identity kId("cluster.local", "default", "sleep");

struct Fixture {
  explicit Fixture(bool trust_the_ca = true) : tls(h.client().clock.wall_now()) {
    auto l = h.server().net.listen(Endpoint{h.server_ip(), 15012}, {});
    ZT_ASSERT(l.ok());
    istiod = std::make_unique<testing::SimIstiod>(h.server(), std::move(*l), tls.server());
    tls::CaOptions opts;
    opts.pin_signature_sizes = true;
    auto mesh_ca = tls::Ca::create(opts, Rng(11), h.server().clock.wall_now());
    auto stranger = tls::Ca::create(opts, Rng(12), h.server().clock.wall_now());
    ZT_ASSERT(mesh_ca.ok() && stranger.ok());
    std::vector<tls::Certificate> roots = trust_the_ca ? mesh_ca->trust_bundle() : stranger->trust_bundle();
    istiod->serve_ca(std::move(*mesh_ca));
    istiod->start();
    grpc::ChannelConfig cc;
    cc.address = Endpoint{h.server_ip(), 15012};
    cc.authority = "istiod.istio-system.svc:15012";
    cc.tls = tls.client();
    channel = std::make_unique<grpc::Channel>(h.client(), cc);
    CaClientConfig cfg;
    cfg.authority = cc.authority;
    cfg.metadata = [] { return Result<h2::Headers>(h2::Headers{{"authorization", "Bearer t"}}); };
    cfg.ttl = std::chrono::hours(12);
    cfg.roots = std::move(roots);
    ca = std::make_unique<CaClient>(h.client(), *channel, cfg);
  }
  ~Fixture() {
    ca.reset();
    channel.reset();
    istiod.reset();
  }
  Result<tls::Credentials> fetch() {
    std::optional<Result<tls::Credentials>> out;
    Scope s;
    s.spawn([](CaClient& ca, std::optional<Result<tls::Credentials>>& out) -> Task<void> {
      out = co_await ca.fetch(kId);
    }(*ca, out));
    EXPECT_TRUE(h.run_until([&] { return out.has_value(); }, std::chrono::minutes(1)));
    return out ? std::move(*out) : Result<tls::Credentials>(Error(Errc::timed_out, "no answer"));
  }

  Harness h;
  testing::TlsWorld tls;
  std::unique_ptr<testing::SimIstiod> istiod;
  std::unique_ptr<grpc::Channel> channel;
  std::unique_ptr<CaClient> ca;
};

TEST(CaClient, IssuesACheckedCertificateForTheIdentity) {
  Fixture f;
  auto creds = f.fetch();
  ASSERT_TRUE(creds.ok()) << creds.error().message();
  EXPECT_EQ(*creds->chain.front().identity(), kId);
  const WallTime now = f.h.client().clock.wall_now();
  EXPECT_TRUE(creds->chain.front().valid_at(now));
  EXPECT_LE(creds->chain.front().not_after() - now, std::chrono::hours(12));
  EXPECT_GE(creds->chain.front().not_after() - now, std::chrono::hours(11));
  EXPECT_EQ(f.istiod->certificates_signed(), 1u);
  EXPECT_NE(std::find(f.istiod->last_metadata().begin(), f.istiod->last_metadata().end(),
                      std::pair<std::string, std::string>{"authorization", "Bearer t"}),
            f.istiod->last_metadata().end());
  // A fresh key each time.
  auto again = f.fetch();
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->key.to_pem(), creds->key.to_pem());
}

TEST(CaClient, ADownCaIsAnErrorNamingIt) {
  Fixture f;
  f.istiod->ca_down = true;
  auto creds = f.fetch();
  ASSERT_FALSE(creds.ok());
  EXPECT_NE(creds.error().message().find("UNAVAILABLE"), std::string::npos) << creds.error().message();
}

TEST(CaClient, ACertificateForAnotherIdentityIsRefused) {
  Fixture f;
  f.istiod->ca_wrong_identity = true;
  auto creds = f.fetch();
  ASSERT_FALSE(creds.ok());
  EXPECT_NE(creds.error().message().find("sa/sleep-not where"), std::string::npos) << creds.error().message();
}

TEST(CaClient, AChainThatDoesNotVerifyIsRefused) {
  Fixture f(/*trust_the_ca=*/false);
  auto creds = f.fetch();
  ASSERT_FALSE(creds.ok());
  EXPECT_NE(creds.error().message().find("does not verify"), std::string::npos) << creds.error().message();
}

}  // namespace
}  // namespace zt::xds
