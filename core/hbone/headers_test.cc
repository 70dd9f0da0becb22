#include "core/hbone/headers.h"

#include <gtest/gtest.h>

namespace zt::core::hbone {
namespace {

SourceInfo source() {
  SourceInfo s;
  s.address = *Endpoint::parse("10.0.0.1:51234");
  s.cluster = "Kubernetes";
  s.ns = "default";
  s.workload_name = "productpage-v1";
  s.canonical_name = "productpage";
  s.canonical_revision = "v1";
  return s;
}

TEST(Headers, ForwardedNamesTheSourceAndTheHostWhenKnown) {
  SourceInfo s = source();
  EXPECT_EQ(forwarded(s), "for=\"10.0.0.1:51234\"");
  s.host = "reviews.default.svc.cluster.local";
  EXPECT_EQ(forwarded(s), "for=\"10.0.0.1:51234\";host=reviews.default.svc.cluster.local");
  s.address = *Endpoint::parse("[fd00::1]:80");
  EXPECT_EQ(*forwarded_for(forwarded(s)), s.address);
}

TEST(Headers, BaggageListsWhatIsKnownAndParsesBack) {
  const std::string b = baggage(source());
  EXPECT_EQ(b,
            "k8s.cluster.name=Kubernetes,k8s.namespace.name=default,k8s.deployment.name=productpage-v1,"
            "service.name=productpage,service.version=v1");
  auto m = parse_baggage(b);
  EXPECT_EQ(m["k8s.deployment.name"], "productpage-v1");
  EXPECT_EQ(parse_baggage("a=1, =x, junk, b = 2;prop").size(), 2u);
}

TEST(Headers, TraceparentIsW3CShaped) {
  Rng r(1);
  const std::string t = traceparent(r);
  ASSERT_EQ(t.size(), 55u);
  EXPECT_EQ(t.substr(0, 3), "00-");
  EXPECT_EQ(t[35], '-');
  EXPECT_EQ(t.substr(52), "-00");
  EXPECT_NE(traceparent(r), t);  // fresh ids each time
}

// The ids are the Rng's draws in a fixed order and spelling (simulated runs
// replay them): two draws for the trace id, one for the span id, each
// written low byte first.
TEST(Headers, TraceparentSpellsTheRngsDrawsInOrder) {
  auto hex_of = [](uint64_t v, int bytes) {
    std::string out;
    for (int i = 0; i < bytes; ++i) {
      const uint8_t b = uint8_t(v >> (8 * i));
      out += "0123456789abcdef"[b >> 4];
      out += "0123456789abcdef"[b & 15];
    }
    return out;
  };
  for (uint64_t seed : {1u, 2u, 77u}) {
    Rng a(seed), b(seed);
    const uint64_t t1 = b.next(), t2 = b.next(), span = b.next();
    EXPECT_EQ(traceparent(a), "00-" + hex_of(t1, 8) + hex_of(t2, 8) + "-" + hex_of(span, 8) + "-00");
    EXPECT_EQ(a.next(), b.next());  // no other draws
  }
}

TEST(Headers, ForwardedForRejectsGarbage) {
  EXPECT_FALSE(forwarded_for(""));
  EXPECT_FALSE(forwarded_for("for=unknown"));
  EXPECT_FALSE(forwarded_for("by=1.2.3.4:5"));
  EXPECT_EQ(forwarded_for("proto=https;for=\"1.2.3.4:5\"")->port, 5);
}

}  // namespace
}  // namespace zt::core::hbone
