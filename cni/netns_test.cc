// zt-cni for real (root only; skips elsewhere): the agent process against a
// small ZDS client of the test's own (connect, hello, recvmsg with
// SCM_RIGHTS, ack), add-pod and del-pod creating and removing network
// namespaces, and redirect-inpod.sh redirecting real connections.
//
// Everything the test creates carries its pid (namespaces ztc<pid><letter>,
// addresses 10.251.K.x with K and x from the pid, a temporary state
// directory), so parallel runs do not collide; TearDown removes it all, also
// after a failure.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "cni/pods.h"
#include "core/inpod/zds.h"
#include "xds/proto/zds.pb.h"

namespace zt::cni {
namespace {

namespace inpod = zt::core::inpod;
using namespace std::chrono_literals;

// --- processes ---------------------------------------------------------------

// A child process whose stdout and stderr go to a file.
struct Child {
  pid_t pid = -1;
  std::string output_path;

  // The exit code (128+signal when killed), or -1 on timeout.
  int wait(std::chrono::milliseconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (pid > 0) {
      int status = 0;
      const pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (std::chrono::steady_clock::now() > deadline) return -1;
      std::this_thread::sleep_for(10ms);
    }
    return -1;
  }
  std::string output() const {
    std::ifstream in(output_path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
};

Child spawn(const std::vector<std::string>& argv, const std::string& output_path) {
  Child c{-1, output_path};
  c.pid = ::fork();
  if (c.pid == 0) {
    const int out = ::open(output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  return c;
}

struct Ran {
  int code;
  std::string output;
};

Ran run(const std::vector<std::string>& argv, const std::string& output_path) {
  ::unlink(output_path.c_str());
  Child c = spawn(argv, output_path);
  const int code = c.wait(60s);
  return {code, c.output()};
}

bool exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

// --- a small ZDS client (what ztunnel does), independent of cni/seqpacket ---

struct Received {
  bool eof = false;
  bool timed_out = false;
  inpod::ZdsRequest request;
  std::vector<int> fds;
  ~Received() {
    for (int fd : fds) ::close(fd);
  }
};

class ZdsClient {
 public:
  ~ZdsClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  // Connects (retrying while the agent starts) and says hello.
  bool connect(const std::string& path, const std::string& hello = inpod::encode_hello()) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
      fd_ = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
      if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) break;
      ::close(fd_);
      fd_ = -1;
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(20ms);
    }
    return ::send(fd_, hello.data(), hello.size(), MSG_NOSIGNAL) == ssize_t(hello.size());
  }
  void next(Received& out, std::chrono::milliseconds timeout = 10s) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, int(timeout.count())) <= 0) {
      out.timed_out = true;
      return;
    }
    char buf[4096];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    iovec iov{buf, sizeof buf};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC);
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        out.fds.push_back(fd);
      }
    }
    if (n <= 0 && out.fds.empty()) {
      out.eof = true;
      return;
    }
    auto decoded = inpod::decode_request({reinterpret_cast<const uint8_t*>(buf), size_t(n)}, out.fds.size());
    EXPECT_TRUE(decoded.ok()) << decoded.error().message();
    if (decoded) out.request = *decoded;
  }
  void ack(const std::string& error = "") {
    const std::string bytes = inpod::encode_ack(error);
    ASSERT_EQ(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL), ssize_t(bytes.size()));
  }

 private:
  int fd_ = -1;
};

// The descriptor is the pod's network namespace: same nsfs inode as the
// namespace `ip netns` mounted for it, and not ours.
void expect_is_netns_of(int fd, const std::string& pod) {
  struct stat got{}, want{}, own{};
  ASSERT_EQ(::fstat(fd, &got), 0);
  ASSERT_EQ(::stat(netns_path(pod).c_str(), &want), 0) << netns_path(pod);
  ASSERT_EQ(::stat("/proc/self/ns/net", &own), 0);
  EXPECT_EQ(got.st_dev, want.st_dev);
  EXPECT_EQ(got.st_ino, want.st_ino) << "the fd of the add is not " << netns_path(pod);
  EXPECT_NE(got.st_ino, own.st_ino);
}

// --- sockets inside a namespace ----------------------------------------------

// This thread is in the pod's network namespace while it lives; sockets
// created meanwhile stay there.
class InNetns {
 public:
  explicit InNetns(const std::string& pod) {
    own_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    const int target = ::open(netns_path(pod).c_str(), O_RDONLY | O_CLOEXEC);
    ZT_ASSERT(own_ >= 0 && target >= 0);
    ZT_ASSERT(::setns(target, CLONE_NEWNET) == 0);
    ::close(target);
  }
  ~InNetns() {
    ZT_ASSERT(::setns(own_, CLONE_NEWNET) == 0);
    ::close(own_);
  }

 private:
  int own_ = -1;
};

struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd, o.fd);
    return *this;
  }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

sockaddr_in v4(const std::string& ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

std::string text(const sockaddr_in& a) {
  char buf[INET_ADDRSTRLEN];
  ::inet_ntop(AF_INET, &a.sin_addr, buf, sizeof buf);
  return std::string(buf) + ":" + std::to_string(ntohs(a.sin_port));
}

Fd listen_in(const std::string& pod, int type, uint16_t port) {
  InNetns in(pod);
  Fd s(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
  const int one = 1;
  ::setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const sockaddr_in any = v4("0.0.0.0", port);
  ZT_ASSERT(::bind(s.fd, reinterpret_cast<const sockaddr*>(&any), sizeof any) == 0);
  if (type == SOCK_STREAM) ZT_ASSERT(::listen(s.fd, 16) == 0);
  return s;
}

// A TCP connection from inside `pod` to ip:port, with SO_MARK when mark != 0;
// "" when it is established, else why not.
std::string connect_from(const std::string& pod, const std::string& ip, uint16_t port, uint32_t mark, Fd& out) {
  {
    InNetns in(pod);
    out = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  }
  if (mark != 0 && ::setsockopt(out.fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) return "SO_MARK failed";
  const sockaddr_in dst = v4(ip, port);
  if (::connect(out.fd, reinterpret_cast<const sockaddr*>(&dst), sizeof dst) != 0 && errno != EINPROGRESS) {
    return std::string("connect: ") + std::strerror(errno);
  }
  pollfd p{out.fd, POLLOUT, 0};
  if (::poll(&p, 1, 5000) != 1) return "connect timed out";
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(out.fd, SOL_SOCKET, SO_ERROR, &err, &len);
  return err == 0 ? "" : std::string("connect: ") + std::strerror(err);
}

// The connection waiting on a listener, if one comes within timeout.
Fd accept_within(const Fd& listener, std::chrono::milliseconds timeout) {
  pollfd p{listener.fd, POLLIN, 0};
  if (::poll(&p, 1, int(timeout.count())) != 1) return Fd();
  return Fd(::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC));
}

std::string original_dst(const Fd& s) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getsockopt(s.fd, SOL_IP, SO_ORIGINAL_DST, &a, &len) != 0) return std::string("none: ") + std::strerror(errno);
  return text(a);
}

std::string peer_of(const Fd& s) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getpeername(s.fd, reinterpret_cast<sockaddr*>(&a), &len);
  return text(a);
}

// A datagram from inside `pod` to ip:port.
void send_udp_from(const std::string& pod, const std::string& ip, uint16_t port) {
  Fd s;
  {
    InNetns in(pod);
    s = Fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  }
  const sockaddr_in dst = v4(ip, port);
  ASSERT_EQ(::sendto(s.fd, "q", 1, 0, reinterpret_cast<const sockaddr*>(&dst), sizeof dst), 1) << std::strerror(errno);
}

bool received_within(const Fd& s, std::chrono::milliseconds timeout) {
  pollfd p{s.fd, POLLIN, 0};
  if (::poll(&p, 1, int(timeout.count())) != 1) return false;
  char b[16];
  return ::recv(s.fd, b, sizeof b, 0) > 0;
}

// --- the fixture ---------------------------------------------------------------

// Why this machine cannot run the test, or "".
std::string cannot_run() {
  if (::geteuid() != 0) return "needs root (network namespaces, veth, iptables): run the netns tests as root";
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(::unshare(CLONE_NEWNET) == 0 ? 0 : 1);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "cannot create network namespaces here";
  return "";
}

class ZtCni : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = cannot_run(); !why.empty()) GTEST_SKIP() << why;
    char tmpl[] = "/tmp/zt-cni-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
    state_ = tmp_ + "/state";
    uds_ = tmp_ + "/ztunnel.sock";
    const long pid = ::getpid();
    third_octet_ = int(pid % 254) + 1;
    host_base_ = int((pid / 254) % 11) * 20 + 10;
  }

  void TearDown() override {
    if (tmp_.empty()) return;
    stop_agent();
    for (const auto& name : pods_) {
      run({ZT_CNI_BIN, "del-pod", "--name", name, "--state", state_}, tmp_ + "/teardown.out");
      run({"ip", "link", "del", host_veth_name(name)}, tmp_ + "/teardown.out");  // if del-pod could not
      run({"ip", "netns", "del", name}, tmp_ + "/teardown.out");
    }
    if (HasFailure()) {
      std::ifstream log(tmp_ + "/agent.log");
      std::stringstream ss;
      ss << log.rdbuf();
      std::cerr << "--- agent log ---\n" << ss.str() << "---\n";
    }
    std::error_code ec;
    std::filesystem::remove_all(tmp_, ec);
  }

  std::string pod(char letter) {
    const std::string name = "ztc" + std::to_string(::getpid()) + letter;
    if (std::find(pods_.begin(), pods_.end(), name) == pods_.end()) pods_.push_back(name);
    return name;
  }
  std::string ip_of(int i) const {
    return "10.251." + std::to_string(third_octet_) + "." + std::to_string(host_base_ + i);
  }
  std::vector<std::string> add_pod_args(const std::string& name, int i, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{ZT_CNI_BIN,  "add-pod", "--name",  name, "--namespace", "ns-" + name,
                                  "--service-account", "sa-" + name, "--ip", ip_of(i) + "/16", "--state", state_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }
  Ran add_pod(const std::string& name, int i, std::vector<std::string> extra = {}) {
    return run(add_pod_args(name, i, std::move(extra)), tmp_ + "/cli.out");
  }
  Child add_pod_async(const std::string& name, int i) {
    return spawn(add_pod_args(name, i), tmp_ + "/add-" + name + ".out");
  }
  Child del_pod_async(const std::string& name) {
    return spawn({ZT_CNI_BIN, "del-pod", "--name", name, "--state", state_}, tmp_ + "/del-" + name + ".out");
  }
  std::string uid_of(const std::string& name) {
    auto p = read_pod(state_, name);
    return p ? p->uid : "";
  }

  void start_agent() {
    agent_ = spawn({ZT_CNI_BIN, "agent", "--uds", uds_, "--state", state_}, tmp_ + "/agent.log");
  }
  void stop_agent() {
    if (agent_.pid <= 0) return;
    ::kill(agent_.pid, SIGTERM);
    if (agent_.wait(5s) < 0) {
      ::kill(agent_.pid, SIGKILL);
      agent_.wait();
    }
  }

  // Reads one request from the client and checks it is an add of `name`
  // with its namespace; acks it with `error`.
  void expect_add(ZdsClient& c, const std::string& name, const std::string& error = "") {
    Received r;
    c.next(r);
    ASSERT_FALSE(r.timed_out) << "no add for " << name;
    ASSERT_FALSE(r.eof) << "the agent closed instead of adding " << name;
    const auto* add = std::get_if<inpod::AddPod>(&r.request);
    ASSERT_NE(add, nullptr) << "expected the add of " << name << ", got request #" << r.request.index();
    EXPECT_EQ(add->uid, uid_of(name));
    EXPECT_EQ(add->info, (inpod::PodInfo{name, "ns-" + name, "sa-" + name}));
    ASSERT_EQ(r.fds.size(), 1u);
    expect_is_netns_of(r.fds[0], name);
    c.ack(error);
  }
  void expect_snapshot_sent(ZdsClient& c) {
    Received r;
    c.next(r);
    ASSERT_FALSE(r.timed_out || r.eof) << "no snapshot_sent";
    EXPECT_TRUE(std::holds_alternative<inpod::SnapshotSent>(r.request)) << "got request #" << r.request.index();
    EXPECT_TRUE(r.fds.empty());
    c.ack();
  }

  std::string tmp_, state_, uds_;
  int third_octet_ = 1, host_base_ = 10;
  std::vector<std::string> pods_;
  Child agent_;
};

// --- the agent -----------------------------------------------------------------

TEST_F(ZtCni, SnapshotOnConnectHasEveryPodThenSnapshotSent) {
  const std::string a = pod('a'), b = pod('b');
  for (auto [name, i] : {std::pair{a, 1}, std::pair{b, 2}}) {
    Ran r = add_pod(name, i);
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("agent: not running"), std::string::npos) << r.output;
  }
  start_agent();
  ZdsClient c;
  ASSERT_TRUE(c.connect(uds_));
  expect_add(c, a);  // in name order
  expect_add(c, b);
  expect_snapshot_sent(c);
}

TEST_F(ZtCni, AddPodAndDelPodReachZtunnel) {
  start_agent();
  ZdsClient c;
  ASSERT_TRUE(c.connect(uds_));
  expect_snapshot_sent(c);  // no pods yet

  const std::string a = pod('a');
  Child add = add_pod_async(a, 1);
  expect_add(c, a);
  ASSERT_EQ(add.wait(), 0) << add.output();
  EXPECT_NE(add.output().find("agent: ztunnel took pod " + a), std::string::npos) << add.output();
  const std::string uid = uid_of(a);

  Child del = del_pod_async(a);
  Received r;
  c.next(r);
  ASSERT_FALSE(r.timed_out || r.eof) << "no del";
  const auto* d = std::get_if<inpod::DelPod>(&r.request);
  ASSERT_NE(d, nullptr) << "got request #" << r.request.index();
  EXPECT_EQ(d->uid, uid);
  c.ack();
  ASSERT_EQ(del.wait(), 0) << del.output();
  EXPECT_FALSE(exists(netns_path(a)));
  EXPECT_FALSE(exists("/sys/class/net/" + host_veth_name(a)));
  EXPECT_FALSE(exists(pods_dir(state_) + "/" + a));
}

TEST_F(ZtCni, AgentRestartSendsTheSamePodsAgain) {
  start_agent();
  const std::string a = pod('a'), b = pod('b');
  {
    ZdsClient c;
    ASSERT_TRUE(c.connect(uds_));
    expect_snapshot_sent(c);
    for (auto [name, i] : {std::pair{a, 1}, std::pair{b, 2}}) {
      Child add = add_pod_async(name, i);
      expect_add(c, name);
      ASSERT_EQ(add.wait(), 0) << add.output();
    }
    stop_agent();
    Received r;
    c.next(r);
    EXPECT_TRUE(r.eof) << "the agent's connection outlived it";
  }
  start_agent();
  ZdsClient c;
  ASSERT_TRUE(c.connect(uds_));
  expect_add(c, a);  // the same uids: expect_add compares with the state files
  expect_add(c, b);
  expect_snapshot_sent(c);
}

TEST_F(ZtCni, ANackReachesAddPodAndNoDelFollowsIt) {
  start_agent();
  ZdsClient c;
  ASSERT_TRUE(c.connect(uds_));
  expect_snapshot_sent(c);
  const std::string a = pod('a');
  Child add = add_pod_async(a, 1);
  expect_add(c, a, "no room for this pod");
  EXPECT_EQ(add.wait(), 1);
  EXPECT_NE(add.output().find("ztunnel refused pod " + a + ": no room for this pod"), std::string::npos)
      << add.output();
  // ztunnel never took it, so removing it sends nothing.
  Child del = del_pod_async(a);
  ASSERT_EQ(del.wait(), 0) << del.output();
  Received r;
  c.next(r, 300ms);
  EXPECT_TRUE(r.timed_out);
  EXPECT_FALSE(exists(netns_path(a)));
}

TEST_F(ZtCni, AGoodHelloReplacesTheConnectionABadOneDoesNot) {
  const std::string a = pod('a');
  ASSERT_EQ(add_pod(a, 1).code, 0);
  start_agent();
  ZdsClient first;
  ASSERT_TRUE(first.connect(uds_));
  expect_add(first, a);
  expect_snapshot_sent(first);

  istio::workload::zds::ZdsHello v2;
  v2.set_version(istio::workload::zds::Version(2));
  ZdsClient wrong;
  ASSERT_TRUE(wrong.connect(uds_, v2.SerializeAsString()));
  Received refused;
  wrong.next(refused);
  EXPECT_TRUE(refused.eof) << "a hello of version 2 was accepted";
  Received still;
  first.next(still, 300ms);
  EXPECT_TRUE(still.timed_out) << "the bad hello cost the good connection";

  ZdsClient second;
  ASSERT_TRUE(second.connect(uds_));
  expect_add(second, a);
  expect_snapshot_sent(second);
  Received gone;
  first.next(gone);
  EXPECT_TRUE(gone.eof) << "the old connection stays open";
}

TEST_F(ZtCni, TheCommandsRefuseBadInputClearly) {
  const std::string a = pod('a'), b = pod('b');
  ASSERT_EQ(add_pod(a, 1).code, 0);
  Ran again = add_pod(a, 2);
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.output.find("pod " + a + " already exists"), std::string::npos) << again.output;
  Ran same_ip = add_pod(b, 1);
  EXPECT_EQ(same_ip.code, 1);
  EXPECT_NE(same_ip.output.find("pod " + a + " already has " + ip_of(1)), std::string::npos) << same_ip.output;
  EXPECT_FALSE(exists(netns_path(b)));
  Ran bad_ip = run({ZT_CNI_BIN, "add-pod", "--name", b, "--ip", "10.251.0.1/16", "--state", state_}, tmp_ + "/o");
  EXPECT_EQ(bad_ip.code, 1);
  EXPECT_NE(bad_ip.output.find("is the node's gateway address"), std::string::npos) << bad_ip.output;
  Ran unknown = run({ZT_CNI_BIN, "del-pod", "--name", b, "--state", state_}, tmp_ + "/o");
  EXPECT_EQ(unknown.code, 1);
  EXPECT_NE(unknown.output.find("no pod " + b), std::string::npos) << unknown.output;
  Ran missing = run({ZT_CNI_BIN, "add-pod", "--name", b}, tmp_ + "/o");
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.output.find("--ip is required"), std::string::npos) << missing.output;
  Ran help = run({ZT_CNI_BIN, "--help"}, tmp_ + "/o");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.output.find("add-pod"), std::string::npos);

  start_agent();
  ZdsClient c;
  ASSERT_TRUE(c.connect(uds_));
  expect_add(c, a);
  expect_snapshot_sent(c);
  Ran second_agent = run({ZT_CNI_BIN, "agent", "--uds", tmp_ + "/other.sock", "--state", state_}, tmp_ + "/o");
  EXPECT_EQ(second_agent.code, 1);
  EXPECT_NE(second_agent.output.find("another agent already serves"), std::string::npos) << second_agent.output;
}

// --- the redirection script ------------------------------------------------------

TEST_F(ZtCni, OutboundGoesTo15001UnlessMarkedInboundTo15006ExceptHbone) {
  const std::string a = pod('a'), b = pod('b');
  ASSERT_EQ(add_pod(a, 1).code, 0);
  ASSERT_EQ(add_pod(b, 2).code, 0);
  const std::string a_ip = ip_of(1), b_ip = ip_of(2);
  Fd a_outbound = listen_in(a, SOCK_STREAM, 15001), a_app = listen_in(a, SOCK_STREAM, 8080);
  Fd b_inbound = listen_in(b, SOCK_STREAM, 15006), b_hbone = listen_in(b, SOCK_STREAM, 15008);
  Fd b_app = listen_in(b, SOCK_STREAM, 8080);

  // The app's connection to another pod lands on its own 15001.
  Fd app;
  ASSERT_EQ(connect_from(a, b_ip, 8080, 0, app), "");
  Fd captured = accept_within(a_outbound, 2s);
  ASSERT_GE(captured.fd, 0) << "not redirected to 15001";
  EXPECT_EQ(original_dst(captured), b_ip + ":8080");

  // ztunnel's own (mark 1337) leaves the pod, and lands on B's 15006.
  Fd ztunnel;
  ASSERT_EQ(connect_from(a, b_ip, 8080, 1337, ztunnel), "");
  Fd inbound = accept_within(b_inbound, 2s);
  ASSERT_GE(inbound.fd, 0) << "a marked connection did not reach the other pod's 15006";
  EXPECT_EQ(original_dst(inbound), b_ip + ":8080");
  EXPECT_EQ(peer_of(inbound).substr(0, a_ip.size() + 1), a_ip + ":");
  EXPECT_LT(accept_within(a_outbound, 0ms).fd, 0) << "a marked connection was redirected";

  // HBONE (15008) is not redirected on the way in.
  Fd hbone;
  ASSERT_EQ(connect_from(a, b_ip, 15008, 1337, hbone), "");
  EXPECT_GE(accept_within(b_hbone, 2s).fd, 0) << "15008 did not reach its own listener";
  EXPECT_LT(accept_within(b_inbound, 0ms).fd, 0);
  EXPECT_LT(accept_within(b_app, 0ms).fd, 0);

  // Neither is 127.0.0.1.
  Fd local;
  ASSERT_EQ(connect_from(a, "127.0.0.1", 8080, 0, local), "");
  EXPECT_GE(accept_within(a_app, 2s).fd, 0);
  EXPECT_LT(accept_within(a_outbound, 0ms).fd, 0);
}

TEST_F(ZtCni, DnsIsCapturedOnlyWithDns) {
  const std::string a = pod('a'), b = pod('b');
  ASSERT_EQ(add_pod(a, 1, {"--dns"}).code, 0);
  ASSERT_EQ(add_pod(b, 2).code, 0);
  Fd a_dns_udp = listen_in(a, SOCK_DGRAM, 15053), a_dns_tcp = listen_in(a, SOCK_STREAM, 15053);
  Fd a_53 = listen_in(a, SOCK_DGRAM, 53);
  Fd b_dns_udp = listen_in(b, SOCK_DGRAM, 15053), b_53 = listen_in(b, SOCK_DGRAM, 53);

  send_udp_from(a, ip_of(2), 53);
  EXPECT_TRUE(received_within(a_dns_udp, 2s)) << "A's UDP DNS did not reach its 15053";
  EXPECT_FALSE(received_within(b_53, 200ms));
  Fd tcp;
  ASSERT_EQ(connect_from(a, ip_of(2), 53, 0, tcp), "");
  Fd captured = accept_within(a_dns_tcp, 2s);
  ASSERT_GE(captured.fd, 0) << "A's TCP DNS did not reach its 15053";
  EXPECT_EQ(original_dst(captured), ip_of(2) + ":53");

  send_udp_from(b, ip_of(1), 53);  // B has no --dns: it goes to A's port 53
  EXPECT_TRUE(received_within(a_53, 2s)) << "B's DNS did not reach the other pod";
  EXPECT_FALSE(received_within(b_dns_udp, 200ms)) << "B's DNS was captured without --dns";
}

std::string netns_state(const std::string& ns, const std::string& out) {
  const std::string rules = run({"ip", "netns", "exec", ns, "iptables-save"}, out).output;
  std::string kept;
  std::istringstream in(rules);
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("#")) kept += line + "\n";
  }
  return kept + run({"ip", "-n", ns, "rule"}, out).output + run({"ip", "-n", ns, "route", "show", "table", "100"}, out).output;
}

TEST_F(ZtCni, TheScriptIsIdempotentAndRemovesItself) {
  const std::string ns = pod('s');
  const std::string out = tmp_ + "/script.out";
  ASSERT_EQ(run({"ip", "netns", "add", ns}, out).code, 0);
  auto script = [&](std::vector<std::string> args) {
    std::vector<std::string> argv{"ip", "netns", "exec", ns, ZT_CNI_SCRIPT};
    argv.insert(argv.end(), args.begin(), args.end());
    Ran r = run(argv, out);
    EXPECT_EQ(r.code, 0) << r.output;
  };
  script({});
  const std::string once = netns_state(ns, out);
  EXPECT_NE(once.find("-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001"),
            std::string::npos) << once;
  EXPECT_NE(once.find("fwmark 0x111/0xfff lookup 100"), std::string::npos) << once;
  EXPECT_NE(once.find("local default dev lo"), std::string::npos) << once;
  EXPECT_EQ(once.find("15053"), std::string::npos);
  script({});
  EXPECT_EQ(netns_state(ns, out), once) << "a second run changed something";
  script({"--dns"});
  const std::string dns = netns_state(ns, out);
  EXPECT_NE(dns.find("--dport 53"), std::string::npos) << dns;
  script({});
  EXPECT_EQ(netns_state(ns, out), once) << "running without --dns did not take the DNS rules out";
  script({"--remove"});
  const std::string removed = netns_state(ns, out);
  for (const char* trace : {"ISTIO", "0x539", "0x111", "lookup 100", "local default"}) {
    EXPECT_EQ(removed.find(trace), std::string::npos) << "--remove left " << trace << ":\n" << removed;
  }
  script({"--remove"});
  Ran bad = run({"ip", "netns", "exec", ns, ZT_CNI_SCRIPT, "--bogus"}, out);
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.output.find("unknown argument: --bogus"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace zt::cni
