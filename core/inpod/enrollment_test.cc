// Enrollment across agent connections: the snapshot after each (re)connect
// decides which pods stay, pods already enrolled keep running through the
// reconnect, and a property checks every random session against a model.
#include "core/inpod/enrollment.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

namespace zt::core::inpod {
namespace {

EnrollmentChange apply(Enrollment& e, const ZdsRequest& r) {
  auto c = e.apply(r);
  EXPECT_TRUE(c.ok()) << c.error().message();
  return c ? *c : EnrollmentChange{};
}

TEST(Enrollment, TheSnapshotAfterAReconnectDecidesWhoStays) {
  Enrollment e;
  e.connected();
  EXPECT_EQ(apply(e, AddPod{"a", {}}).added, std::vector<std::string>{"a"});
  apply(e, AddPod{"b", {}});
  apply(e, AddPod{"c", {}});
  EXPECT_TRUE(apply(e, SnapshotSent{}).removed.empty());
  // The agent restarts; its new snapshot keeps a, re-adds b, forgets c.
  e.connected();
  EXPECT_EQ(e.size(), 3u) << "nothing goes before the snapshot ends";
  EXPECT_TRUE(apply(e, KeepPod{"a"}).removed.empty());
  EXPECT_EQ(apply(e, AddPod{"b", {}}), EnrollmentChange{}) << "the same namespace again: b keeps its listeners";
  EXPECT_EQ(apply(e, SnapshotSent{}).removed, std::vector<std::string>{"c"});
  // b's sandbox is recreated: a new namespace, so its listeners move there.
  EXPECT_EQ(apply(e, AddPod{"b", {}, "ns-2"}).replaced, std::vector<std::string>{"b"});
  EXPECT_EQ(e.uids(), (std::vector<std::string>{"a", "b"}));
  // After the snapshot: a del removes, a second del is no error.
  EXPECT_EQ(apply(e, DelPod{"a"}).removed, std::vector<std::string>{"a"});
  EXPECT_TRUE(apply(e, DelPod{"a"}).removed.empty());
}

TEST(Enrollment, KeepingAPodThatIsNotEnrolledIsANack) {
  Enrollment e;
  e.connected();
  auto r = e.apply(KeepPod{"ghost"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "invalid_argument: ZDS: keep for pod ghost, which is not enrolled");
}

// Sessions of random messages against a model: after each snapshot_sent,
// the enrolled pods are exactly those added or kept since the connection
// began (and not deleted after), plus those added after the snapshot; every
// removal reported was enrolled and every addition was not.
RC_GTEST_PROP(Enrollment, MatchesTheModelOverRandomSessions, ()) {
  Enrollment e;
  std::set<std::string> model, named;
  bool in_snapshot = false;
  const auto steps = *rc::gen::inRange(1, 200);
  for (int i = 0; i < steps; ++i) {
    const int kind = *rc::gen::inRange(0, 5);
    const std::string uid = "pod-" + std::to_string(*rc::gen::inRange(0, 8));
    if (kind == 0) {
      e.connected();
      in_snapshot = true;
      named.clear();
      continue;
    }
    const std::string netns = "ns-" + std::to_string(*rc::gen::inRange(0, 2));
    ZdsRequest req = kind == 1 ? ZdsRequest(AddPod{uid, {}, netns})
                     : kind == 2 ? ZdsRequest(KeepPod{uid})
                     : kind == 3 ? ZdsRequest(DelPod{uid})
                                 : ZdsRequest(SnapshotSent{});
    auto c = e.apply(req);
    if (kind == 2 && !model.contains(uid)) {
      RC_ASSERT(!c.ok());
      continue;
    }
    RC_ASSERT(c.ok());
    for (const auto& a : c->added) RC_ASSERT(!model.contains(a));
    for (const auto& r : c->removed) RC_ASSERT(model.contains(r));
    for (const auto& r : c->replaced) RC_ASSERT(model.contains(r));
    if (kind == 1) model.insert(uid), named.insert(uid);
    if (kind == 2) named.insert(uid);
    if (kind == 3) model.erase(uid), named.erase(uid);
    if (kind == 4 && in_snapshot) {
      std::set<std::string> kept;
      for (const auto& p : model)
        if (named.contains(p)) kept.insert(p);
      model = kept;
      in_snapshot = false;
      named.clear();
    }
    const std::vector<std::string> got = e.uids();
    RC_ASSERT(std::set<std::string>(got.begin(), got.end()) == model);
  }
}

}  // namespace
}  // namespace zt::core::inpod
