// io/real's in-pod pieces on the real kernel: network namespaces held by
// descriptor, sockets made inside one (and marked), and SOCK_SEQPACKET
// sockets whose messages carry namespace descriptors (SCM_RIGHTS).
//
// Needs root (ip netns, setns, SO_MARK): skipped with the reason otherwise.
// Creates and removes its own namespace, named after the process id.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "io/real/netns.h"
#include "io/real/runtime.h"

namespace zt::io::real {
namespace {

using namespace std::chrono_literals;

std::string skip_reason() {
  if (geteuid() != 0) return "needs root (network namespaces, setns, SO_MARK)";
  if (std::system("ip netns list >/dev/null 2>&1") != 0) return "no `ip netns` here (install iproute2)";
  return "";
}

// A namespace of this test's own, removed at the end.
struct TestNamespace {
  std::string name = "zt-io-test-" + std::to_string(getpid());
  TestNamespace() {
    (void)std::system(("ip netns del " + name + " 2>/dev/null").c_str());
    ok = std::system(("ip netns add " + name + " && ip netns exec " + name + " ip link set lo up").c_str()) == 0;
  }
  ~TestNamespace() { (void)std::system(("ip netns del " + name + " 2>/dev/null").c_str()); }
  std::string path() const { return "/var/run/netns/" + name; }
  bool ok = false;
};

class NetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = skip_reason(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_TRUE(ns.ok) << "ip netns add " << ns.name;
  }
  bool spin(const std::function<bool()>& pred, Duration timeout = 5s) { return rt.run_until(pred, timeout); }

  TestNamespace ns;
  Runtime rt;
};

TEST_F(NetnsTest, ANamespaceIsKnownByItsInodeAndOtherDescriptorsAreRefused) {
  auto a = NetNs::open(ns.path());
  ASSERT_TRUE(a.ok()) << a.error().message();
  auto again = NetNs::open(ns.path());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*a)->id(), (*again)->id()) << "the same namespace, opened twice";
  auto own = NetNs::open("/proc/self/ns/net");
  ASSERT_TRUE(own.ok());
  EXPECT_NE((*a)->id(), (*own)->id());

  auto file = NetNs::adopt(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.error().message().find("not a network namespace"), std::string::npos) << file.error().message();
  auto mnt = NetNs::open("/proc/self/ns/mnt");
  ASSERT_FALSE(mnt.ok());
  EXPECT_NE(mnt.error().message().find("not a network namespace"), std::string::npos) << mnt.error().message();
}

TEST_F(NetnsTest, SocketsMadeInsideListenThereAndCarryTheMark) {
  auto pod = NetNs::open(ns.path());
  ASSERT_TRUE(pod.ok());
  auto inside = rt.net().inside(*pod, 1337);
  ASSERT_TRUE(inside.ok()) << inside.error().message();
  // A listener on the pod's loopback: the node's loopback has no such port.
  auto l = (*inside)->listen(Endpoint{IpAddr::loopback(IpAddr::Family::v4), 0}, {});
  ASSERT_TRUE(l.ok()) << l.error().message();
  const Endpoint at = (*l)->local();

  std::optional<Result<StreamPtr>> from_node, from_pod, accepted;
  (*l)->accept([&](Result<StreamPtr> r) { accepted.emplace(std::move(r)); });
  auto c1 = rt.net().connect(at, {}, [&](Result<StreamPtr> r) { from_node.emplace(std::move(r)); });
  auto c2 = (*inside)->connect(at, {}, [&](Result<StreamPtr> r) { from_pod.emplace(std::move(r)); });
  ASSERT_TRUE(spin([&] { return from_node && from_pod && accepted; }));
  EXPECT_FALSE(from_node->ok()) << "the node's own loopback is another network";
  ASSERT_TRUE(from_pod->ok()) << from_pod->error().message();
  ASSERT_TRUE(accepted->ok());

  // The listener is in the pod's namespace and marked (the pod's rules
  // let ztunnel's own sockets through): as the kernel reports it.
  const std::string cmd = "ip netns exec " + ns.name + " ss -Htlne 'sport = :" + std::to_string(at.port) + "'";
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char line[512];
    while (std::fgets(line, sizeof(line), p)) out += line;
    ::pclose(p);
  }
  EXPECT_NE(out.find("fwmark:0x539"), std::string::npos) << out;
  auto udp = (*inside)->udp_bind(Endpoint{IpAddr::loopback(IpAddr::Family::v4), 0});
  ASSERT_TRUE(udp.ok()) << udp.error().message();
}

TEST_F(NetnsTest, SetnsFromAWorkerThreadLeavesItInItsOwnNamespace) {
  auto pod = NetNs::open(ns.path());
  ASSERT_TRUE(pod.ok());
  auto own = NetNs::open("/proc/thread-self/ns/net");
  ASSERT_TRUE(own.ok());
  std::string after;
  std::thread t([&] {
    for (int i = 0; i < 100; ++i) {
      auto fd = (*pod)->socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC);
      if (fd.ok()) ::close(*fd);
    }
    auto now = NetNs::open("/proc/thread-self/ns/net");
    after = now.ok() ? (*now)->id() : "";
  });
  t.join();
  EXPECT_EQ(after, (*own)->id());
}

// An agent's side in plain sockets: listen, accept, send with descriptors.
struct Agent {
  std::string path = "/tmp/zt-io-test-" + std::to_string(getpid()) + ".sock";
  int listen_fd = -1, conn = -1;
  Agent() {
    ::unlink(path.c_str());
    listen_fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    EXPECT_EQ(::bind(listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    EXPECT_EQ(::listen(listen_fd, 4), 0);
  }
  ~Agent() {
    if (conn >= 0) ::close(conn);
    ::close(listen_fd);
    ::unlink(path.c_str());
  }
  void send(const std::string& bytes, std::vector<int> fds) {
    iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    std::vector<char> control(CMSG_SPACE(sizeof(int) * std::max<size_t>(fds.size(), 1)));
    if (!fds.empty()) {
      m.msg_control = control.data();
      m.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&m);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    EXPECT_EQ(::sendmsg(conn, &m, 0), ssize_t(bytes.size()));
  }
};

TEST_F(NetnsTest, PacketsKeepTheirBoundariesAndBringNamespaces) {
  Agent agent;
  std::optional<Result<PacketSocketPtr>> connected;
  auto op = rt.net().connect_packets(agent.path, [&](Result<PacketSocketPtr> r) { connected.emplace(std::move(r)); });
  ASSERT_TRUE(spin([&] { return connected.has_value(); }));
  ASSERT_TRUE(connected->ok()) << connected->error().message();
  PacketSocket& sock = ***connected;
  agent.conn = ::accept4(agent.listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(agent.conn, 0);

  // ztunnel's hello arrives as one message.
  std::optional<Result<void>> sent;
  const std::string hello = "hello";
  sock.send(ConstBytes(reinterpret_cast<const uint8_t*>(hello.data()), hello.size()),
            [&](Result<void> r) { sent.emplace(std::move(r)); });
  ASSERT_TRUE(spin([&] { return sent.has_value(); }));
  char buf[64];
  EXPECT_EQ(::recv(agent.conn, buf, sizeof(buf), 0), ssize_t(hello.size()));

  // Two messages, the first with a namespace and a file, stay two.
  const int netns_fd = ::open(ns.path().c_str(), O_RDONLY | O_CLOEXEC);
  const int file_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  agent.send("first", {netns_fd, file_fd});
  agent.send("second", {});
  ::close(netns_fd);
  ::close(file_fd);
  std::vector<uint8_t> in(64);
  std::optional<Result<Packet>> got;
  sock.receive(in, [&](Result<Packet> r) { got.emplace(std::move(r)); });
  ASSERT_TRUE(spin([&] { return got.has_value(); }));
  ASSERT_TRUE(got->ok()) << got->error().message();
  EXPECT_EQ(std::string(in.begin(), in.begin() + (*got)->size), "first");
  ASSERT_EQ((*got)->namespaces.size(), 2u);
  ASSERT_NE((*got)->namespaces[0], nullptr);
  EXPECT_EQ((*got)->namespaces[0]->id(), (*NetNs::open(ns.path()))->id());
  EXPECT_EQ((*got)->namespaces[1], nullptr) << "a file is not a namespace";
  got.reset();
  sock.receive(in, [&](Result<Packet> r) { got.emplace(std::move(r)); });
  ASSERT_TRUE(spin([&] { return got.has_value(); }));
  ASSERT_TRUE(got->ok());
  EXPECT_EQ(std::string(in.begin(), in.begin() + (*got)->size), "second");
  EXPECT_TRUE((*got)->namespaces.empty());

  // Too long for the buffer: an error, and the next message still comes.
  agent.send(std::string(100, 'x'), {});
  agent.send("after", {});
  got.reset();
  sock.receive(in, [&](Result<Packet> r) { got.emplace(std::move(r)); });
  ASSERT_TRUE(spin([&] { return got.has_value(); }));
  ASSERT_FALSE(got->ok());
  EXPECT_EQ(got->error().code, Errc::invalid_argument);
  got.reset();
  sock.receive(in, [&](Result<Packet> r) { got.emplace(std::move(r)); });
  ASSERT_TRUE(spin([&] { return got.has_value(); }));
  ASSERT_TRUE(got->ok());
  EXPECT_EQ(std::string(in.begin(), in.begin() + (*got)->size), "after");

  // The agent goes: end-of-file.
  ::close(agent.conn);
  agent.conn = -1;
  got.reset();
  sock.receive(in, [&](Result<Packet> r) { got.emplace(std::move(r)); });
  ASSERT_TRUE(spin([&] { return got.has_value(); }));
  ASSERT_TRUE(got->ok());
  EXPECT_EQ((*got)->size, 0u);
}

TEST_F(NetnsTest, NoAgentIsAnErrorOnTheLoop) {
  std::optional<Result<PacketSocketPtr>> connected;
  auto op = rt.net().connect_packets("/tmp/zt-no-such-agent.sock", [&](Result<PacketSocketPtr> r) {
    connected.emplace(std::move(r));
  });
  EXPECT_FALSE(connected.has_value()) << "never inline";
  ASSERT_TRUE(spin([&] { return connected.has_value(); }));
  EXPECT_FALSE(connected->ok());
}

}  // namespace
}  // namespace zt::io::real
