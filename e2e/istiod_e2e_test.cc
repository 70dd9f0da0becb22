// The ztunnel binary against an istiod on the real gRPC C++ library
// (e2e/fake_istiod), over TLS on loopback: two nodes become ready from
// istiod's xDS and CA, carry a pod's bytes over HBONE with CA-issued
// certificates, close a connection when istiod pushes a policy that denies
// it, NACK a resource they cannot use (istiod records it), survive a CA
// outage past half-life, wait (not ready) for an istiod that is down at
// start, and refuse to start without their token file.
//
// The pods are addresses on loopback: sleep 127.0.1.10 (node-a), echo
// 127.0.2.10:8080 (node-b, behind echo.demo VIP 127.10.0.10:80). The
// pod-facing ports (15001, 15006, 15008, 15080) are bound on those addresses,
// so these cases run one at a time with the demo's (RESOURCE_LOCK).
// This process links no TLS library: it speaks plain sockets and HTTP/1.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

extern char** environ;

namespace zt::e2e {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kSleepIp = "127.0.1.10";
constexpr const char* kEchoIp = "127.0.2.10";
constexpr const char* kVip = "127.10.0.10";

std::string mesh_yaml(const std::string& allowed_account) {
  return R"(workloads:
- uid: Kubernetes//Pod/demo/sleep-0
  name: sleep-0
  namespace: demo
  serviceAccount: sleep
  workloadIps: ["127.0.1.10"]
  protocol: HBONE
  node: node-a
- uid: Kubernetes//Pod/demo/echo-0
  name: echo-0
  namespace: demo
  serviceAccount: echo
  workloadIps: ["127.0.2.10"]
  protocol: HBONE
  node: node-b
  services:
    "demo/echo.demo.svc.cluster.local":
      80: 8080
services:
- name: echo
  namespace: demo
  hostname: echo.demo.svc.cluster.local
  vips: ["/127.10.0.10"]
  ports:
    80: 8080
policies:
- name: allow-one
  namespace: demo
  scope: Namespace
  action: Allow
  rules:
  - - - serviceAccounts: [{namespace: demo, serviceAccount: )" +
         allowed_account + "}]\n";
}

void write_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp, std::ios::trunc) << text;
  ASSERT_EQ(::rename(tmp.c_str(), path.c_str()), 0);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool wait_for(const std::function<bool()>& done, Clock::duration limit) {
  const auto until = Clock::now() + limit;
  while (Clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return done();
}

uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// A TCP connection from `from` (empty: any) to ip:port, or -1.
int dial(const char* from, const char* ip, uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (from) {
    ::inet_pton(AF_INET, from, &a.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return ::close(fd), -1;
  }
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip, &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return ::close(fd), -1;
  return fd;
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(size_t(n));
  }
  return true;
}

std::optional<std::string> recv_exact(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, out.data() + got, n - got, 0);
    if (r <= 0) return std::nullopt;
    got += size_t(r);
  }
  return out;
}

// HTTP/1.0 to 127.0.0.1:port; {status, body}, status 0 when nothing answered.
std::pair<int, std::string> http(uint16_t port, const std::string& method, const std::string& path) {
  int fd = dial(nullptr, "127.0.0.1", port);
  if (fd < 0) return {0, ""};
  send_all(fd, method + " " + path + " HTTP/1.0\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n");
  std::string resp;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) resp.append(buf, size_t(n));
  ::close(fd);
  if (resp.size() < 12) return {0, resp};
  const size_t body = resp.find("\r\n\r\n");
  return {std::atoi(resp.c_str() + 9), body == std::string::npos ? "" : resp.substr(body + 4)};
}

// A process of ours (fake-istiod or ztunnel), its output in a file, ended
// with SIGTERM when it goes out of scope.
class Process {
 public:
  Process(const char* binary, const std::vector<std::string>& env, const std::vector<std::string>& args,
          std::string log_path)
      : log_(std::move(log_path)) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    std::vector<std::string> all_env(env);
    for (char** e = environ; *e; ++e) all_env.emplace_back(*e);
    std::vector<char*> envp, argv{const_cast<char*>(binary)};
    for (auto& e : all_env) envp.push_back(e.data());
    envp.push_back(nullptr);
    args_ = args;
    for (auto& a : args_) argv.push_back(a.data());
    argv.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pid_, binary, &actions, nullptr, argv.data(), envp.data()), 0);
    posix_spawn_file_actions_destroy(&actions);
  }
  ~Process() { stop(); }
  Process(const Process&) = delete;

  // SIGTERM, then the exit status (or -1).
  int stop() {
    if (pid_ <= 0) return exit_;
    ::kill(pid_, SIGTERM);
    exit_ = wait();
    return exit_;
  }
  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::string output() const { return read_file(log_); }

 private:
  std::string log_;
  std::vector<std::string> args_;
  pid_t pid_ = -1;
  int exit_ = -1;
};

// The echo pod: echo-0's app on 127.0.2.10:8080, echoing each connection.
class EchoPod {
 public:
  EchoPod() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(8080);
    ::inet_pton(AF_INET, kEchoIp, &a.sin_addr);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << std::strerror(errno);
    ::listen(fd_, 64);
    thread_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        std::thread([c] {
          char buf[16384];
          ssize_t n;
          while ((n = ::recv(c, buf, sizeof(buf), 0)) > 0) {
            if (!send_all(c, std::string_view(buf, size_t(n)))) break;
          }
          ::close(c);
        }).detach();
      }
    });
  }
  ~EchoPod() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }

 private:
  int fd_ = -1;
  std::thread thread_;
};

// sleep-0 opens a connection to echo's VIP through node-a's SOCKS5 port.
int connect_from_sleep() {
  int fd = dial(kSleepIp, kSleepIp, 15080);
  if (fd < 0) return -1;
  unsigned char req[10] = {5, 1, 0, 1, 0, 0, 0, 0, 0, 80};
  ::inet_pton(AF_INET, kVip, req + 4);
  if (!send_all(fd, std::string_view("\x05\x01\x00", 3)) || recv_exact(fd, 2) != std::string("\x05\x00", 2) ||
      !send_all(fd, std::string_view(reinterpret_cast<char*>(req), sizeof(req)))) {
    ::close(fd);
    return -1;
  }
  auto reply = recv_exact(fd, 10);
  if (!reply || (*reply)[1] != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// One round trip of `bytes` bytes sleep -> echo; true when all came back.
bool round_trip(size_t bytes) {
  int fd = connect_from_sleep();
  if (fd < 0) return false;
  std::string data(bytes, '\0');
  for (size_t i = 0; i < bytes; ++i) data[i] = char('a' + i % 26);
  bool ok = send_all(fd, data) && recv_exact(fd, bytes) == data;
  ::close(fd);
  return ok;
}

struct Node {
  std::string name;
  uint16_t admin = free_port(), stats = free_port(), readiness = free_port();
  std::unique_ptr<Process> process;
  bool ready() const { return http(readiness, "GET", "/healthz/ready").first == 200; }
  nlohmann::json config_dump() const {
    auto [status, body] = http(admin, "GET", "/config_dump");
    return status == 200 ? nlohmann::json::parse(body, nullptr, false) : nlohmann::json();
  }
};

class IstiodMesh : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zt-istiod-e2e-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    write_file(dir_ + "/mesh.yaml", mesh_yaml("sleep"));
    write_file(dir_ + "/token", "e2e-token\n");
  }
  void TearDown() override {
    for (auto& n : nodes_) n.process.reset();
    istiod_.reset();
    if (HasFailure()) {
      std::fprintf(stderr, "--- fake-istiod ---\n%s\n", read_file(dir_ + "/istiod.log").c_str());
      for (auto& n : nodes_) {
        std::fprintf(stderr, "--- %s ---\n%s\n", n.name.c_str(), read_file(dir_ + "/" + n.name + ".log").c_str());
      }
    }
    std::system(("rm -rf " + dir_).c_str());
  }

  void start_istiod(std::vector<std::string> extra = {}, uint16_t port = 0) {
    ::unlink((dir_ + "/port").c_str());
    ::unlink((dir_ + "/admin-port").c_str());
    std::vector<std::string> args = {"--listen", "127.0.0.1:" + std::to_string(port), "--port-file", dir_ + "/port",
                                     "--state-dir", dir_, "--mesh", dir_ + "/mesh.yaml", "--admin-listen",
                                     "127.0.0.1:0", "--admin-port-file", dir_ + "/admin-port", "--token", "e2e-token"};
    args.insert(args.end(), extra.begin(), extra.end());
    istiod_ = std::make_unique<Process>(ZT_FAKE_ISTIOD_BIN, std::vector<std::string>{}, args, dir_ + "/istiod.log");
    ASSERT_TRUE(wait_for([&] { return !read_file(dir_ + "/admin-port").empty(); }, 20s)) << "fake-istiod did not start";
    istiod_port_ = uint16_t(std::stoi(read_file(dir_ + "/port")));
    istiod_admin_ = uint16_t(std::stoi(read_file(dir_ + "/admin-port")));
  }

  std::vector<std::string> ztunnel_env(const std::string& node) const {
    const std::string istiod = "https://127.0.0.1:" + std::to_string(istiod_port_);
    return {"XDS_ADDRESS=" + istiod, "CA_ADDRESS=" + istiod, "ALT_XDS_HOSTNAME=istiod.istio-system.svc",
            "ALT_CA_HOSTNAME=istiod.istio-system.svc", "XDS_ROOT_CA=" + dir_ + "/root-cert.pem",
            "CA_ROOT_CA=" + dir_ + "/root-cert.pem", "AUTH_TOKEN=" + dir_ + "/token", "NODE_NAME=" + node,
            "POD_NAME=ztunnel-" + node, "POD_NAMESPACE=istio-system", "INSTANCE_IP=127.0.0.1",
            "ISTIO_META_E2E=yes", "UNSTABLE_ENABLE_SOCKS5=true", "RUST_LOG=info", "ZTUNNEL_WORKER_THREADS=2"};
  }

  Node& start_node(const std::string& name, std::vector<std::string> extra_env = {}) {
    nodes_.push_back(Node{name});
    Node& n = nodes_.back();
    // `extra_env` replaces what it names.
    std::vector<std::string> env = extra_env;
    for (const std::string& kv : ztunnel_env(name)) {
      const std::string key = kv.substr(0, kv.find('=') + 1);
      if (std::none_of(extra_env.begin(), extra_env.end(), [&](const std::string& e) { return e.rfind(key, 0) == 0; }))
        env.push_back(kv);
    }
    n.process = std::make_unique<Process>(
        ZT_ZTUNNEL_BIN, env,
        std::vector<std::string>{"--listen-on-workload-ips", "--admin-port", std::to_string(n.admin), "--stats-port",
                                 std::to_string(n.stats), "--readiness-port", std::to_string(n.readiness)},
        dir_ + "/" + name + ".log");
    return n;
  }

  nlohmann::json istiod_status() const {
    auto [status, body] = http(istiod_admin_, "GET", "/status");
    return status == 200 ? nlohmann::json::parse(body, nullptr, false) : nlohmann::json();
  }

  std::string dir_;
  std::unique_ptr<Process> istiod_;
  uint16_t istiod_port_ = 0, istiod_admin_ = 0;
  std::deque<Node> nodes_;
};

TEST_F(IstiodMesh, NodesBecomeReadyAndCarryTrafficWithCaCertificates) {
  start_istiod();
  Node& a = start_node("node-a");
  Node& b = start_node("node-b");
  ASSERT_TRUE(wait_for([&] { return a.ready() && b.ready(); }, 30s));
  EchoPod echo;
  ASSERT_TRUE(wait_for([] { return round_trip(100); }, 10s));
  EXPECT_TRUE(round_trip(1 << 20));

  // node-a holds sleep's certificate, from istiod's root; istiod saw who asked.
  nlohmann::json dump = a.config_dump();
  ASSERT_TRUE(dump.is_object());
  EXPECT_TRUE(dump["xds"]["connected"].get<bool>()) << dump["xds"];
  bool found = false;
  for (const auto& c : dump["certificates"]) {
    if (c["identity"] != "spiffe://cluster.local/ns/demo/sa/sleep") continue;
    found = true;
    EXPECT_EQ(c["state"], "Available");
    ASSERT_EQ(c["certChain"].size(), 2u);
    EXPECT_NE(read_file(dir_ + "/root-cert.pem").find(c["certChain"][1]["pem"].get<std::string>()), std::string::npos)
        << "the chain ends at fake-istiod's root";
  }
  EXPECT_TRUE(found) << dump["certificates"];
  nlohmann::json st = istiod_status();
  EXPECT_GE(st["certificates_signed"].get<int>(), 2);
  EXPECT_EQ(st["last_clusterid"], "Kubernetes");
  EXPECT_EQ(st["last_node_metadata"]["E2E"], "yes");
  EXPECT_TRUE(st["nacks"].empty()) << st;
}

TEST_F(IstiodMesh, APushedPolicyClosesAnOpenConnection) {
  start_istiod();
  Node& a = start_node("node-a");
  Node& b = start_node("node-b");
  ASSERT_TRUE(wait_for([&] { return a.ready() && b.ready(); }, 30s));
  EchoPod echo;
  ASSERT_TRUE(wait_for([] { return round_trip(10); }, 10s));
  int fd = connect_from_sleep();
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "before"));
  ASSERT_EQ(recv_exact(fd, 6), std::string("before"));
  // istiod pushes: only `nobody` may connect now.
  write_file(dir_ + "/mesh.yaml", mesh_yaml("nobody"));
  const auto pushed = Clock::now();
  char c;
  timeval tv{15, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  const ssize_t n = ::recv(fd, &c, 1, 0);
  EXPECT_LE(n, 0) << "the connection was closed";
  EXPECT_LT(Clock::now() - pushed, 10s);
  ::close(fd);
  EXPECT_FALSE(round_trip(10)) << "new connections are denied";
}

TEST_F(IstiodMesh, AResourceTheNodeCannotUseIsNackedAndRecordedByIstiod) {
  start_istiod();
  Node& a = start_node("node-a");
  ASSERT_TRUE(wait_for([&] { return a.ready(); }, 30s));
  ASSERT_EQ(http(istiod_admin_, "POST", "/xds/add-invalid").first, 200);
  ASSERT_TRUE(wait_for([&] { return !istiod_status()["nacks"].empty(); }, 10s)) << istiod_status();
  const nlohmann::json nack = istiod_status()["nacks"][0];
  EXPECT_EQ(nack["type_url"], "type.googleapis.com/istio.workload.Address");
  EXPECT_NE(nack["detail"].get<std::string>().find("invalid-resource: "), std::string::npos) << nack;
  // The node shows it too, and still serves the rest.
  nlohmann::json xds = a.config_dump()["xds"];
  ASSERT_TRUE(xds.contains("lastNack")) << xds;
  EXPECT_NE(xds["lastNack"]["detail"].get<std::string>().find("invalid-resource"), std::string::npos);
  EXPECT_EQ(a.config_dump()["workloads"].size(), 2u);
  EXPECT_TRUE(a.ready());
}

// Certificates of 40 s (renewal due at ~20 s); the CA is down from 2 s to
// 28 s. The renewal fails and is retried while the certificate in hand
// keeps serving; once the CA is back a new one comes, before the old expires.
TEST_F(IstiodMesh, ACaOutagePastHalfLifeCostsNoConnection) {
  start_istiod({"--max-cert-lifetime", "40s"});
  Node& a = start_node("node-a", {"SECRET_TTL=40s"});
  Node& b = start_node("node-b", {"SECRET_TTL=40s"});
  ASSERT_TRUE(wait_for([&] { return a.ready() && b.ready(); }, 30s));
  EchoPod echo;
  ASSERT_TRUE(wait_for([] { return round_trip(10); }, 10s));
  auto sleep_cert = [&]() -> nlohmann::json {
    const nlohmann::json dump = a.config_dump();
    for (const auto& c : dump["certificates"])
      if (c["identity"] == "spiffe://cluster.local/ns/demo/sa/sleep") return c;
    return {};
  };
  ASSERT_TRUE(wait_for([&] { return sleep_cert().contains("certChain"); }, 10s)) << a.config_dump();
  const auto start = Clock::now();
  std::this_thread::sleep_for(2s);
  ASSERT_EQ(http(istiod_admin_, "POST", "/ca/stop").first, 200);
  const std::string first_expiry = sleep_cert()["certChain"][0]["expirationTime"];
  int failed = 0, made = 0;
  while (Clock::now() - start < 28s) {
    ++made;
    if (!round_trip(1000)) ++failed;
    std::this_thread::sleep_for(1s);
  }
  nlohmann::json during = sleep_cert();
  EXPECT_EQ(during["certChain"][0]["expirationTime"], first_expiry) << "kept while the CA is down";
  EXPECT_GE(during["failures"].get<int>(), 1) << during;
  ASSERT_EQ(http(istiod_admin_, "POST", "/ca/start").first, 200);
  EXPECT_TRUE(wait_for([&] { return sleep_cert()["certChain"][0]["expirationTime"] != first_expiry; }, 12s))
      << sleep_cert();
  for (int i = 0; i < 5; ++i) {
    ++made;
    if (!round_trip(1000)) ++failed;
  }
  EXPECT_EQ(failed, 0) << "of " << made;
}

TEST_F(IstiodMesh, AnIstiodDownAtStartIsWaitedFor) {
  start_istiod();
  const uint16_t port = istiod_port_;
  ASSERT_EQ(istiod_->stop(), 0);
  Node& a = start_node("node-a");
  ASSERT_TRUE(wait_for([&] { return http(a.readiness, "GET", "/healthz/ready").first != 0; }, 20s));
  auto [status, body] = http(a.readiness, "GET", "/healthz/ready");
  EXPECT_EQ(status, 500);
  EXPECT_NE(body.find("xds Address"), std::string::npos) << body;
  start_istiod({}, port);
  EXPECT_TRUE(wait_for([&] { return a.ready(); }, 30s)) << http(a.readiness, "GET", "/healthz/ready").second;
}

TEST_F(IstiodMesh, AMissingTokenFileIsAClearErrorAtStart) {
  start_istiod();
  Node& a = start_node("node-a", {"AUTH_TOKEN=" + dir_ + "/no-such-token"});
  EXPECT_EQ(a.process->wait(), 2);
  const std::string out = read_file(dir_ + "/node-a.log");
  EXPECT_NE(out.find("AUTH_TOKEN"), std::string::npos) << out;
  EXPECT_NE(out.find("no-such-token"), std::string::npos) << out;
}

}  // namespace
}  // namespace zt::e2e
