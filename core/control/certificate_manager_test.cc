// Certificate rotation on the simulator, as properties over seeds: renewal
// at half-life, a CA down for most of a lifetime, wall clock jumps both
// ways. Invariants checked every simulated few seconds: the certificate
// handed to the data path is valid at the wall clock (never expired, never
// early), it is never withdrawn while a valid one exists, and renewals come
// on time.
#include "core/control/certificate_manager.h"

#include <gtest/gtest.h>

#include "io/async.h"
#include "io/sim/world.h"
#include "testing/mesh_fixtures.h"
#include "testing/sim_seeds.h"

namespace zt::core::control {
namespace {

using testing::ip;
const std::string kId = "spiffe://cluster.local/ns/default/sa/sleep";

// The fake CA with an on/off switch; its clock is its host's.
class SwitchableCa final : public CertificateSource {
 public:
  SwitchableCa(Env& env, Duration ttl) : env_(env), ttl_(ttl) {
    tls::CaOptions opts;
    opts.pin_signature_sizes = true;
    ca_.emplace(*tls::Ca::create(opts, Rng(5), env.clock.wall_now() - std::chrono::hours(24 * 365)));
  }
  Task<Result<tls::Credentials>> fetch(const tls::Identity& id) override {
    ++calls;
    if (down) co_return Error(Errc::connection_refused, "CA down");
    auto issued = ca_->issue(id, ttl_, env_.clock.wall_now());
    if (!issued) co_return issued.error();
    co_return tls::Credentials{std::move(issued->chain), std::move(issued->key)};
  }
  std::vector<tls::Certificate> roots() const override { return ca_->trust_bundle(); }
  bool down = false;
  int calls = 0;

 private:
  Env& env_;
  Duration ttl_;
  std::optional<tls::Ca> ca_;
};

struct Rig {
  Rig(uint64_t seed, Duration ttl) : world(seed), host(world.add_host("node", {ip("10.0.0.1")})), ca(host.env(), ttl) {
    CertificateOutputs out;
    out.on_certificate = [this](const std::string&, std::shared_ptr<const tls::Credentials> c) {
      held = std::move(c);
      ++renewals;
    };
    out.on_forget = [this](const std::string&) {
      held.reset();
      ++withdrawals;
    };
    manager = std::make_unique<CertificateManager>(host.env(), ca, CertificateManagerConfig{}, out);
    manager->want({kId}, [](const std::string&) { return false; });
  }
  // Runs `d`, checking every `step` that what the data path holds is valid.
  void run_checked(Duration d, Duration step = std::chrono::seconds(5)) {
    for (Duration t{}; t < d; t += step) {
      world.run_for(step);
      if (held) {
        ASSERT_TRUE(held->chain.front().valid_at(host.env().clock.wall_now()))
            << "seed " << world.seed() << ": a certificate outside its validity is presented";
      }
    }
  }
  WallTime expiry() const { return held->chain.front().not_after(); }

  io::sim::World world;
  io::sim::Host& host;
  SwitchableCa ca;
  std::shared_ptr<const tls::Credentials> held;
  int renewals = 0, withdrawals = 0;
  std::unique_ptr<CertificateManager> manager;
};

TEST(CertificateRotation, RenewsBetweenHalfAndSixTenthsOfTheLifetime) {
  for (uint64_t seed : testing::sim_seeds(20)) {
    SCOPED_TRACE(testing::replay(seed));
    Rig r(seed, std::chrono::hours(2));
    r.run_checked(std::chrono::minutes(1));
    ASSERT_EQ(r.renewals, 1) << "seed " << seed;
    const WallTime issued = r.held->chain.front().not_before();
    r.run_checked(std::chrono::minutes(58));  // up to about half-life: nothing yet
    EXPECT_EQ(r.renewals, 1) << "seed " << seed;
    r.run_checked(std::chrono::minutes(15));  // within 1h + 12 min: renewed
    EXPECT_EQ(r.renewals, 2) << "seed " << seed;
    EXPECT_GT(r.held->chain.front().not_before(), issued);
    EXPECT_EQ(r.withdrawals, 0);
    r.run_checked(std::chrono::hours(5));
    EXPECT_GE(r.renewals, 5) << "seed " << seed;
    EXPECT_EQ(r.withdrawals, 0) << "seed " << seed;
  }
}

// The CA is down for 80% of the lifetime, from just after the first
// certificate: the certificate is never withdrawn (it stays valid), and the
// renewal lands within one backoff period (150 s, +20%) of the CA's return.
TEST(CertificateRotation, ACaDownForMostOfALifetimeCostsNothing) {
  for (uint64_t seed : testing::sim_seeds(20)) {
    SCOPED_TRACE(testing::replay(seed));
    Rig r(seed, std::chrono::hours(1));
    r.run_checked(std::chrono::seconds(10));
    ASSERT_EQ(r.renewals, 1);
    r.ca.down = true;
    r.run_checked(std::chrono::minutes(48));
    EXPECT_EQ(r.renewals, 1) << "seed " << seed;
    EXPECT_EQ(r.withdrawals, 0) << "seed " << seed << ": a valid certificate was dropped while the CA was down";
    ASSERT_TRUE(r.held);
    EXPECT_EQ(r.manager->certificates().at(kId).state, CertificateStatus::State::failed);
    EXPECT_LT(r.ca.calls, 40) << "seed " << seed << ": retries back off (to 150 s)";
    r.ca.down = false;
    const MonoTime back = r.world.now();
    ASSERT_TRUE(r.world.run_until([&] { return r.renewals == 2; }, std::chrono::minutes(10))) << "seed " << seed;
    EXPECT_LE(r.world.now() - back, std::chrono::seconds(180)) << "seed " << seed;
    EXPECT_EQ(r.manager->certificates().at(kId).state, CertificateStatus::State::available);
    r.run_checked(std::chrono::hours(2));
    EXPECT_EQ(r.withdrawals, 0) << "seed " << seed;
  }
}

TEST(CertificateRotation, AWallClockJumpPastHalfLifeRenewsWithinATick) {
  for (uint64_t seed : testing::sim_seeds(10)) {
    SCOPED_TRACE(testing::replay(seed));
    Rig r(seed, std::chrono::hours(2));
    r.run_checked(std::chrono::minutes(1));
    r.world.jump_wall(r.host.id(), std::chrono::minutes(75));  // past any renewal time, before expiry
    ASSERT_TRUE(r.world.run_until([&] { return r.renewals == 2; }, std::chrono::seconds(61))) << "seed " << seed;
    EXPECT_EQ(r.withdrawals, 0);
    r.run_checked(std::chrono::hours(3));
  }
}

TEST(CertificateRotation, AWallClockJumpPastExpiryWithdrawsAtOnceAndRefetches) {
  for (uint64_t seed : testing::sim_seeds(10)) {
    SCOPED_TRACE(testing::replay(seed));
    Rig r(seed, std::chrono::hours(2));
    r.run_checked(std::chrono::minutes(1));
    const WallTime old_expiry = r.expiry();
    r.world.jump_wall(r.host.id(), std::chrono::hours(3));
    // Within a tick the old one is withdrawn and a fresh one in place.
    ASSERT_TRUE(r.world.run_until([&] { return r.renewals == 2; }, std::chrono::seconds(61))) << "seed " << seed;
    EXPECT_EQ(r.withdrawals, 1);
    EXPECT_GT(r.expiry(), old_expiry);
    r.run_checked(std::chrono::hours(3));
  }
}

TEST(CertificateRotation, AWallClockJumpBackWithdrawsWhatIsNotYetValid) {
  for (uint64_t seed : testing::sim_seeds(10)) {
    SCOPED_TRACE(testing::replay(seed));
    Rig r(seed, std::chrono::hours(2));
    r.run_checked(std::chrono::minutes(1));
    r.world.jump_wall(r.host.id(), -std::chrono::hours(1));
    ASSERT_TRUE(r.world.run_until([&] { return r.renewals == 2; }, std::chrono::seconds(61))) << "seed " << seed;
    EXPECT_EQ(r.withdrawals, 1);
    r.run_checked(std::chrono::hours(3));
  }
}

TEST(CertificateRotation, TrafficDrivenFetchesGoFirst) {
  io::sim::World world(3);
  io::sim::Host& host = world.add_host("node", {ip("10.0.0.1")});
  struct Ordered final : CertificateSource {
    explicit Ordered(Env& env) : env(env) {}
    Task<Result<tls::Credentials>> fetch(const tls::Identity& id) override {
      order.push_back(id.service_account());
      co_await io::sleep(env.loop, std::chrono::seconds(1));
      co_return Error(Errc::connection_refused, "no");
    }
    std::vector<tls::Certificate> roots() const override { return {}; }
    Env& env;
    std::vector<std::string> order;
  } source(host.env());
  CertificateManagerConfig cfg;
  cfg.fetches_max = 1;
  CertificateManager m(host.env(), source, cfg, {});
  m.want({"spiffe://cluster.local/ns/a/sa/p1", "spiffe://cluster.local/ns/a/sa/p2"},
         [](const std::string&) { return true; });
  m.request("spiffe://cluster.local/ns/a/sa/urgent");
  world.run_for(std::chrono::milliseconds(3500));
  ASSERT_GE(source.order.size(), 3u);
  EXPECT_EQ(source.order[0], "p1");      // already under way when the request came
  EXPECT_EQ(source.order[1], "urgent");  // the request before the other prefetch
  EXPECT_EQ(source.order[2], "p2");
}

}  // namespace
}  // namespace zt::core::control

namespace zt::core::control {
namespace {

// A source that answers inside fetch() (the fake CA): each identity is
// issued once, however many are wanted at once.
TEST(CertificateRotation, ASourceThatAnswersAtOnceIssuesEachIdentityOnce) {
  io::sim::World world(9);
  io::sim::Host& host = world.add_host("node", {ip("10.0.0.1")});
  tls::CaOptions opts;
  opts.pin_signature_sizes = true;
  FakeCaSource ca(host.env(), *tls::Ca::create(opts, Rng(4), host.env().clock.wall_now()), std::chrono::hours(1));
  int issued = 0;
  CertificateOutputs out;
  out.on_certificate = [&](const std::string&, auto) { ++issued; };
  CertificateManager m(host.env(), ca, {}, out);
  std::set<std::string> ids;
  for (int i = 0; i < 30; ++i) ids.insert("spiffe://cluster.local/ns/a/sa/s" + std::to_string(i));
  m.want(ids, [](const std::string&) { return false; });
  world.run_for(std::chrono::seconds(1));
  EXPECT_EQ(issued, 30);
  EXPECT_TRUE(m.all_tried());
}

}  // namespace
}  // namespace zt::core::control
