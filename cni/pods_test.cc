// zt-cni's pure parts: the address plan, names, pod files in a state
// directory, control messages. No root, no namespaces.
#include "cni/pods.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "cni/control.h"

namespace zt::cni {
namespace {

TEST(AddressPlan, TheGatewayIsTheNetworksFirstAddressUnlessTheNodeNetSays) {
  auto p = plan_addresses("10.251.3.7/16", "");
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->pod_ip, "10.251.3.7");
  EXPECT_EQ(p->gateway, "10.251.0.1");
  EXPECT_EQ(p->prefix_len, 16);
  auto q = plan_addresses("10.251.3.7/16", "10.251.255.254/16");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->gateway, "10.251.255.254");
  auto r = plan_addresses("10.251.3.7/24", "10.251.0.0/16");  // a network: its first address
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->gateway, "10.251.0.1");
  EXPECT_EQ(r->prefix_len, 16);
}

TEST(AddressPlan, BadAddressesAreRefusedSayingWhy) {
  EXPECT_EQ(plan_addresses("10.251.0.7", "").error().detail, "--ip: '10.251.0.7' needs a /len");
  EXPECT_EQ(plan_addresses("10.251.0.300/16", "").error().detail, "--ip: '10.251.0.300' is not an IPv4 address");
  EXPECT_EQ(plan_addresses("10.251.0.7/31", "").error().detail, "--ip: prefix length '31' is not between 1 and 30");
  EXPECT_EQ(plan_addresses("10.251.0.7/x", "").error().detail, "--ip: prefix length 'x' is not between 1 and 30");
  EXPECT_EQ(plan_addresses("10.251.0.1/16", "").error().detail,
            "--ip 10.251.0.1 is the node's gateway address on 10.251.0.0/16 (the host end of every veth); pick "
            "another");
  EXPECT_EQ(plan_addresses("10.251.0.0/16", "").error().detail,
            "--ip 10.251.0.0 is the network or broadcast address of 10.251.0.0/16");
  EXPECT_FALSE(plan_addresses("10.251.255.255/16", "").ok());
  EXPECT_EQ(plan_addresses("10.252.0.7/16", "10.251.0.1/16").error().detail,
            "--ip 10.252.0.7 is outside the node's pod network 10.251.0.0/16");
  EXPECT_FALSE(plan_addresses("10.251.0.7/16", "10.251.255.255/16").ok());
}

TEST(PodNames, SafeForFilesNamespacesAndInterfaces) {
  EXPECT_TRUE(check_pod_name("sleep-7d9f.v1_a", "--name").ok());
  EXPECT_EQ(check_pod_name("", "--name").error().detail, "--name is empty");
  EXPECT_EQ(check_pod_name("a/b", "--name").error().detail,
            "--name 'a/b' may hold only letters, digits, '.', '_' and '-'");
  EXPECT_FALSE(check_pod_name("..", "--name").ok());
  EXPECT_FALSE(check_pod_name("-x", "--name").ok());
  EXPECT_FALSE(check_pod_name("a b", "--name").ok());
  EXPECT_FALSE(check_pod_name(std::string(kPodNameBytesMax + 1, 'a'), "--name").ok());
  EXPECT_TRUE(check_pod_name(std::string(kPodNameBytesMax, 'a'), "--name").ok());

  const std::string veth = host_veth_name("a-rather-long-pod-name-for-an-interface");
  EXPECT_EQ(veth.size(), 11u);  // interface names hold at most 15 bytes
  EXPECT_EQ(veth.substr(0, 3), "ztv");
  EXPECT_EQ(veth, host_veth_name("a-rather-long-pod-name-for-an-interface"));
  EXPECT_NE(host_veth_name("pod-a"), host_veth_name("pod-b"));
  EXPECT_EQ(netns_path("sleep"), "/var/run/netns/sleep");
}

TEST(PodNames, UidsAreVersion4Uuids) {
  const std::string a = random_uid(), b = random_uid();
  ASSERT_EQ(a.size(), 36u);
  EXPECT_EQ(a[8], '-');
  EXPECT_EQ(a[14], '4');
  EXPECT_TRUE(std::string("89ab").find(a[19]) != std::string::npos);
  EXPECT_NE(a, b);
}

PodRecord sample(const std::string& name, const std::string& ip) {
  return {name, "default", "sleep", "uid-" + name, ip, 16, "10.251.0.1", host_veth_name(name), name == "b"};
}

TEST(PodFiles, RoundTripAndListSortedSkippingBadFiles) {
  char tmpl[] = "/tmp/zt-cni-unit.XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  EXPECT_TRUE(list_pods(dir)->pods.empty());  // no pods folder yet: no pods

  ASSERT_TRUE(write_pod(dir, sample("b", "10.251.0.3")).ok());
  ASSERT_TRUE(write_pod(dir, sample("a", "10.251.0.2")).ok());
  auto a = read_pod(dir, "a");
  ASSERT_TRUE(a.ok()) << a.error().message();
  EXPECT_EQ(*a, sample("a", "10.251.0.2"));
  std::ofstream(pods_dir(dir) + "/broken") << "this is not a pod\n";
  std::ofstream(pods_dir(dir) + "/.a.tmp.1") << "name=x\n";  // a write in progress: hidden

  auto list = list_pods(dir);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->pods.size(), 2u);
  EXPECT_EQ(list->pods[0], sample("a", "10.251.0.2"));
  EXPECT_EQ(list->pods[1], sample("b", "10.251.0.3"));
  ASSERT_EQ(list->problems.size(), 1u);
  EXPECT_NE(list->problems[0].find("broken"), std::string::npos);

  ASSERT_TRUE(remove_pod(dir, "a").ok());
  EXPECT_EQ(remove_pod(dir, "a").code(), Errc::name_not_found);
  EXPECT_EQ(read_pod(dir, "a").code(), Errc::name_not_found);
  EXPECT_FALSE(read_pod(dir, "../etc").ok());
  std::filesystem::remove_all(dir);
}

TEST(PodFiles, ParseNeedsNameAndUidAndSkipsUnknownKeys) {
  auto p = parse_pod("name=x\nuid=u\nfuture=1\n\ndns=true\n");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->name, "x");
  EXPECT_TRUE(p->dns);
  EXPECT_EQ(parse_pod("uid=u\n").error().detail, "no name");
  EXPECT_EQ(parse_pod("name=x\n").error().detail, "no uid");
  EXPECT_FALSE(parse_pod("name=x\nuid=u\ngarbage\n").ok());
  EXPECT_EQ(*parse_pod(format_pod(sample("q", "10.251.9.9"))), sample("q", "10.251.9.9"));
}

TEST(Control, RequestsAndRepliesRoundTrip) {
  auto add = parse_control(format_control({ControlRequest::add, "sleep", ""}));
  ASSERT_TRUE(add.ok());
  EXPECT_EQ(add->kind, ControlRequest::add);
  EXPECT_EQ(add->name, "sleep");
  EXPECT_EQ(format_control({ControlRequest::del, "sleep", "u-1"}), "del u-1 sleep");
  auto del = parse_control("del u-1 sleep");
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(del->kind, ControlRequest::del);
  EXPECT_EQ(del->uid, "u-1");
  EXPECT_EQ(del->name, "sleep");
  EXPECT_FALSE(parse_control("add").ok());
  EXPECT_FALSE(parse_control("add ../x").ok());
  EXPECT_FALSE(parse_control("del  sleep").ok());
  EXPECT_EQ(parse_control("reboot now").error().detail, "control: not a request: 'reboot now'");

  auto ok = parse_reply(format_reply({true, true, "ztunnel took pod a"}));
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok->ok);
  EXPECT_EQ(ok->text, "ztunnel took pod a");
  auto bad = parse_reply("error ztunnel refused pod a: full");
  ASSERT_TRUE(bad.ok());
  EXPECT_FALSE(bad->ok);
  EXPECT_EQ(bad->text, "ztunnel refused pod a: full");
  EXPECT_FALSE(parse_reply("maybe").ok());
}

}  // namespace
}  // namespace zt::cni
