// ZDS messages: each kind decodes, every malformed or ill-equipped message
// is an error naming what is wrong, and encode/decode round-trip.
#include "core/inpod/zds.h"

#include <gtest/gtest.h>

#include "xds/proto/zds.pb.h"

namespace zt::core::inpod {
namespace {

std::span<const uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(Zds, EachRequestDecodes) {
  const std::string add = encode_request(AddPod{"uid-1", {"pod-1", "ns-1", "sa-1"}});
  auto a = decode_request(bytes_of(add), 1);
  ASSERT_TRUE(a.ok()) << a.error().message();
  const auto& got = std::get<AddPod>(*a);
  EXPECT_EQ(got.uid, "uid-1");
  EXPECT_EQ(got.info, (PodInfo{"pod-1", "ns-1", "sa-1"}));
  auto k = decode_request(bytes_of(encode_request(KeepPod{"uid-2"})), 0);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(std::get<KeepPod>(*k).uid, "uid-2");
  auto d = decode_request(bytes_of(encode_request(DelPod{"uid-3"})), 0);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(std::get<DelPod>(*d).uid, "uid-3");
  auto s = decode_request(bytes_of(encode_request(SnapshotSent{})), 0);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(std::holds_alternative<SnapshotSent>(*s));
}

TEST(Zds, AnAddWithoutWorkloadInfoIsAccepted) {
  auto a = decode_request(bytes_of(encode_request(AddPod{"uid-1", {}})), 1);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(std::get<AddPod>(*a).info, PodInfo{});
}

TEST(Zds, DescriptorsMustMatchTheMessage) {
  const std::string add = encode_request(AddPod{"uid-1", {}});
  EXPECT_EQ(decode_request(bytes_of(add), 0).error().message(),
            "invalid_argument: ZDS: an add must carry exactly one descriptor (the pod's network namespace), got 0");
  EXPECT_FALSE(decode_request(bytes_of(add), 2).ok());
  EXPECT_EQ(decode_request(bytes_of(encode_request(DelPod{"u"})), 1).error().message(),
            "invalid_argument: ZDS: only an add carries a descriptor, this message carried 1");
  EXPECT_FALSE(decode_request(bytes_of(encode_request(SnapshotSent{})), 1).ok());
}

TEST(Zds, MalformedMessagesAreErrorsNamingWhy) {
  const std::string garbage = "\xff\xff\xff";
  EXPECT_EQ(decode_request(bytes_of(garbage), 0).error().message(),
            "invalid_argument: ZDS: a WorkloadRequest that does not parse");
  EXPECT_EQ(decode_request({}, 0).error().message(), "invalid_argument: ZDS: a WorkloadRequest without a payload");
  EXPECT_EQ(decode_request(bytes_of(encode_request(AddPod{"", {}})), 1).error().message(),
            "invalid_argument: ZDS: an add without a uid");
  EXPECT_FALSE(decode_request(bytes_of(encode_request(KeepPod{""})), 0).ok());
  EXPECT_FALSE(decode_request(bytes_of(encode_request(DelPod{""})), 0).ok());
}

TEST(Zds, HelloAndAckAreWhatTheAgentExpects) {
  istio::workload::zds::ZdsHello h;
  ASSERT_TRUE(h.ParseFromString(encode_hello()));
  EXPECT_EQ(h.version(), istio::workload::zds::V1);
  istio::workload::zds::WorkloadResponse r;
  ASSERT_TRUE(r.ParseFromString(encode_ack("")));
  ASSERT_TRUE(r.has_ack());
  EXPECT_EQ(r.ack().error(), "");
  ASSERT_TRUE(r.ParseFromString(encode_ack("no such pod")));
  EXPECT_EQ(r.ack().error(), "no such pod");
}

TEST(Zds, TheAgentDecodesHelloAndAcks) {
  EXPECT_TRUE(decode_hello(bytes_of(encode_hello())).ok());
  istio::workload::zds::ZdsHello h;  // version NOT_USED: an empty message
  EXPECT_EQ(decode_hello(bytes_of(h.SerializeAsString())).error().message(),
            "invalid_argument: ZDS: hello with version 0, only V1 (1) is spoken");
  h.set_version(istio::workload::zds::Version(7));
  EXPECT_FALSE(decode_hello(bytes_of(h.SerializeAsString())).ok());
  EXPECT_EQ(decode_hello(bytes_of(std::string("\xff\xff\xff"))).error().message(),
            "invalid_argument: ZDS: a hello that does not parse");

  auto a = decode_ack(bytes_of(encode_ack("")));
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->ok());
  auto n = decode_ack(bytes_of(encode_ack("netns gone")));
  ASSERT_TRUE(n.ok());
  EXPECT_FALSE(n->ok());
  EXPECT_EQ(n->error, "netns gone");
  EXPECT_EQ(decode_ack({}).error().message(), "invalid_argument: ZDS: a WorkloadResponse without an ack");
  EXPECT_EQ(decode_ack(bytes_of(std::string("\xff\xff\xff"))).error().message(),
            "invalid_argument: ZDS: a WorkloadResponse that does not parse");
}

}  // namespace
}  // namespace zt::core::inpod
