// The outlier table on its own, with a hand-moved clock: ejection, backoff
// growth and cap, failures during an ejection, reset by success, and the
// predicate handed to load balancing.
#include "core/proxy/outlier.h"

#include <gtest/gtest.h>

namespace zt::core::proxy {
namespace {

using std::chrono::seconds;

class ManualClock final : public Clock {
 public:
  MonoTime now() const override { return now_; }
  WallTime wall_now() const override { return WallTime{}; }
  void advance(Duration d) { now_ += d; }

 private:
  MonoTime now_{seconds(1000)};
};

const EndpointKey kB{"cluster1//v1/Pod/default/b", 8080};

TEST(Outlier, AFailureEjectsForTheBaseTime) {
  ManualClock clock;
  OutlierDetector d(clock);
  EXPECT_FALSE(d.ejected(kB));
  EXPECT_TRUE(d.record_failure(kB));
  EXPECT_TRUE(d.ejected(kB));
  EXPECT_FALSE(d.ejected(EndpointKey{kB.workload_uid, 9090}));  // another port of the same workload
  EXPECT_EQ(d.ejected_until(kB), clock.now() + seconds(5));
  clock.advance(seconds(5));
  EXPECT_FALSE(d.ejected(kB));
  EXPECT_EQ(d.ejected_count(), 0u);
}

TEST(Outlier, BackoffDoublesUpToTheCapAndASuccessResetsIt) {
  ManualClock clock;
  OutlierDetector d(clock);
  std::vector<int64_t> lengths;
  for (int i = 0; i < 9; ++i) {
    ASSERT_TRUE(d.record_failure(kB));
    Duration length = *d.ejected_until(kB) - clock.now();
    lengths.push_back(std::chrono::duration_cast<seconds>(length).count());
    clock.advance(length);  // the ejection runs out; the next try fails again
  }
  EXPECT_EQ(lengths, (std::vector<int64_t>{5, 10, 20, 40, 80, 160, 300, 300, 300}));
  d.record_success(kB);
  ASSERT_TRUE(d.record_failure(kB));
  EXPECT_EQ(*d.ejected_until(kB) - clock.now(), seconds(5));
}

TEST(Outlier, FailuresDuringAnEjectionDoNotLengthenIt) {
  ManualClock clock;
  OutlierDetector d(clock);
  ASSERT_TRUE(d.record_failure(kB));
  const MonoTime until = *d.ejected_until(kB);
  clock.advance(seconds(1));
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(d.record_failure(kB));  // connections already on their way
  EXPECT_EQ(d.ejected_until(kB), until);
  clock.advance(seconds(4));
  ASSERT_TRUE(d.record_failure(kB));
  EXPECT_EQ(*d.ejected_until(kB) - clock.now(), seconds(10));  // the second ejection, not the twelfth
}

TEST(Outlier, AnOldEjectionIsForgotten) {
  ManualClock clock;
  OutlierDetector d(clock);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(d.record_failure(kB));
    clock.advance(*d.ejected_until(kB) - clock.now());
  }
  clock.advance(std::chrono::minutes(6));  // more than max_ejection after the last one ended
  ASSERT_TRUE(d.record_failure(kB));
  EXPECT_EQ(*d.ejected_until(kB) - clock.now(), seconds(5));
}

TEST(Outlier, ThePredicateAvoidsEjectedEndpointsOnly) {
  ManualClock clock;
  OutlierDetector d(clock);
  mesh::AvoidEndpoint avoid = d.avoid();
  mesh::Workload b;
  b.uid = kB.workload_uid;
  EXPECT_FALSE(avoid(b, 8080));
  d.record_failure(kB);
  EXPECT_TRUE(avoid(b, 8080));
  EXPECT_FALSE(avoid(b, 9090));
  clock.advance(seconds(5));
  EXPECT_FALSE(avoid(b, 8080));
}

TEST(Outlier, EndpointOfAPlanIsItsWorkloadAndPort) {
  mesh::RoutePlan plan;
  plan.kind = mesh::RouteKind::passthrough;
  EXPECT_FALSE(endpoint_of(plan).has_value());
  auto w = std::make_shared<mesh::Workload>();
  w->uid = "uid-1";
  plan.kind = mesh::RouteKind::hbone;
  plan.next_hop_workload = w;
  plan.endpoint_port = 8080;
  EXPECT_EQ(endpoint_of(plan), (EndpointKey{"uid-1", 8080}));
}

}  // namespace
}  // namespace zt::core::proxy
