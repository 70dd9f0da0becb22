#include "e2e/inpod_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

extern char** environ;

namespace zt::e2e::inpod {

namespace fs = std::filesystem;

std::string cannot_run() {
  if (::geteuid() != 0) return "needs root (network namespaces, veth, iptables): run the netns tests as root";
  if (std::system("ip netns list >/dev/null 2>&1") != 0) return "no `ip netns` here (install iproute2)";
  if (std::system("command -v iptables-restore >/dev/null 2>&1") != 0) return "no iptables-restore here (install iptables)";
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(::unshare(CLONE_NEWNET) == 0 ? 0 : 1);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "cannot create network namespaces here";
  return "";
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string netns_path(const std::string& name) { return "/var/run/netns/" + name; }

// The calling thread is inside the pod's network namespace while this lives.
class InNetns {
 public:
  explicit InNetns(const std::string& name) {
    own_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    const int target = ::open(netns_path(name).c_str(), O_RDONLY | O_CLOEXEC);
    ok_ = own_ >= 0 && target >= 0 && ::setns(target, CLONE_NEWNET) == 0;
    if (target >= 0) ::close(target);
  }
  ~InNetns() {
    if (ok_ && ::setns(own_, CLONE_NEWNET) != 0) std::abort();  // this thread would stay in the pod
    if (own_ >= 0) ::close(own_);
  }
  bool ok() const { return ok_; }

 private:
  int own_ = -1;
  bool ok_ = false;
};

sockaddr_in v4(const std::string& ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

std::string ip_text(const sockaddr_in& a) {
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a.sin_addr, buf, sizeof buf);
  return buf;
}

// Reads up to and including '\n' (or until EOF / the deadline).
bool read_line(int fd, std::string& line, Clock::time_point deadline, std::string& error) {
  line.clear();
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      error = "timed out";
      return false;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, int(left)) != 1) continue;
    char c;
    const ssize_t n = ::recv(fd, &c, 1, 0);
    if (n == 0) {
      error = line.empty() ? "closed" : "closed mid-line";
      return false;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      error = std::strerror(errno);
      return false;
    }
    if (c == '\n') return true;
    line += c;
  }
}

bool send_all(int fd, const std::string& s) {
  size_t sent = 0;
  while (sent < s.size()) {
    const ssize_t n = ::send(fd, s.data() + sent, s.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 1000);
      continue;
    }
    if (n <= 0) return false;
    sent += size_t(n);
  }
  return true;
}

std::string field_of(const std::string& line, const std::string& key) {
  const std::string k = key + "=";
  size_t at = 0;
  for (;;) {
    at = line.find(k, at);
    if (at == std::string::npos) return "";
    if (at == 0 || line[at - 1] == ' ') break;
    at += k.size();
  }
  size_t end = line.find(' ', at);
  return line.substr(at + k.size(), end == std::string::npos ? std::string::npos : end - at - k.size());
}

uint16_t ephemeral_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = v4("127.0.0.1", 0);
  socklen_t len = sizeof a;
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(s);
    return 0;
  }
  ::close(s);
  return ntohs(a.sin_port);
}

}  // namespace

// --- processes ---------------------------------------------------------------------

int Child::wait(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (pid > 0) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      pid = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (Clock::now() > deadline) return -1;
    std::this_thread::sleep_for(5ms);
  }
  return -1;
}

int Child::stop(int sig, std::chrono::milliseconds grace) {
  if (pid <= 0) return -1;
  ::kill(pid, sig);
  const int code = wait(grace);
  if (code >= 0) return code;
  ::kill(pid, SIGKILL);
  return wait();
}

std::string Child::output() const { return slurp(log_path); }

Child spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, const std::string& log_path) {
  // Everything the child needs is made before fork (the test has threads).
  std::vector<std::string> all_env(env);
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    const std::string key = kv.substr(0, kv.find('='));
    const bool overridden = std::any_of(env.begin(), env.end(), [&](const std::string& o) {
      return o.compare(0, key.size() + 1, key + "=") == 0;
    });
    if (!overridden) all_env.push_back(kv);
  }
  // The program's path is found here too: after fork only async-signal-safe
  // calls (execve), as the test's other threads may hold locks.
  std::string program = argv.at(0);
  if (program.find('/') == std::string::npos) {
    const char* path = std::getenv("PATH");
    std::istringstream dirs(path ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
    for (std::string d; std::getline(dirs, d, ':');) {
      if (::access((d + "/" + program).c_str(), X_OK) == 0) {
        program = d + "/" + program;
        break;
      }
    }
  }
  std::vector<char*> args, envp;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (auto& e : all_env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const int out = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  Child c{-1, log_path};
  c.pid = ::fork();
  if (c.pid == 0) {
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    ::execve(program.c_str(), args.data(), envp.data());
    ::_exit(127);
  }
  ::close(out);
  return c;
}

Ran run(const std::vector<std::string>& argv, const std::string& log_path) {
  ::unlink(log_path.c_str());
  Child c = spawn(argv, {}, log_path);
  const int code = c.wait(60s);
  return {code, c.output()};
}

// --- pods and their applications -----------------------------------------------

PodApp::PodApp(const Pod& pod, uint16_t port) : name_(pod.name) {
  {
    InNetns in(pod.name);
    if (!in.ok()) {
      error_ = "cannot enter " + netns_path(pod.name);
      return;
    }
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  }
  const int one = 1;
  ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const sockaddr_in any = v4("0.0.0.0", port);
  if (::bind(listener_, reinterpret_cast<const sockaddr*>(&any), sizeof any) != 0 || ::listen(listener_, 128) != 0) {
    error_ = std::string("listen in ") + pod.name + ": " + std::strerror(errno);
    return;
  }
  if (::pipe2(stop_, O_CLOEXEC | O_NONBLOCK) != 0) {
    error_ = "pipe";
    return;
  }
  thread_ = std::thread([this] { serve(); });
}

PodApp::~PodApp() {
  if (thread_.joinable()) {
    (void)!::write(stop_[1], "x", 1);
    thread_.join();
  }
  for (int fd : {listener_, stop_[0], stop_[1]}) {
    if (fd >= 0) ::close(fd);
  }
}

void PodApp::serve() {
  std::vector<int> conns;
  for (;;) {
    std::vector<pollfd> fds{{stop_[0], POLLIN, 0}, {listener_, POLLIN, 0}};
    for (int c : conns) fds.push_back({c, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) break;
    if (fds[0].revents) break;
    if (fds[1].revents & POLLIN) {
      sockaddr_in peer{};
      socklen_t len = sizeof peer;
      const int c = ::accept4(listener_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c >= 0) {
        ++accepted_;
        if (send_all(c, "pod=" + name_ + " peer=" + ip_text(peer) + "\n")) {
          conns.push_back(c);
        } else {
          ::close(c);
        }
      }
    }
    std::vector<int> closed;
    for (size_t i = 2; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      char buf[4096];
      const ssize_t n = ::recv(fds[i].fd, buf, sizeof buf, 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0 || !send_all(fds[i].fd, std::string(buf, size_t(n)))) closed.push_back(fds[i].fd);
    }
    for (int c : closed) {
      ::close(c);
      conns.erase(std::find(conns.begin(), conns.end(), c));
    }
  }
  for (int c : conns) ::close(c);
}

PodConn::PodConn(const Pod& from, const std::string& ip, uint16_t port, std::chrono::milliseconds timeout,
                 uint16_t local_port) {
  const auto t0 = Clock::now();
  const auto deadline = t0 + timeout;
  Reply& r = greeting_;
  {
    InNetns in(from.name);
    if (!in.ok()) {
      r.error = "cannot enter " + netns_path(from.name);
      return;
    }
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  }
  if (local_port != 0) {
    const int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const sockaddr_in src = v4(from.ip, local_port);
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&src), sizeof src) != 0) {
      r.error = std::string("bind: ") + std::strerror(errno);
      return;
    }
  }
  const sockaddr_in dst = v4(ip, port);
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&dst), sizeof dst) != 0 && errno != EINPROGRESS) {
    r.error = std::string("connect: ") + std::strerror(errno);
    return;
  }
  pollfd p{fd_, POLLOUT, 0};
  if (::poll(&p, 1, int(timeout.count())) != 1) {
    r.error = "connect timed out";
    return;
  }
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    r.error = std::string("connect: ") + std::strerror(err);
    return;
  }
  sockaddr_in local{};
  len = sizeof local;
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &len);
  r.local_port = ntohs(local.sin_port);
  std::string line;
  if (!read_line(fd_, line, deadline, r.error)) return;
  r.pod = field_of(line, "pod");
  r.peer = field_of(line, "peer");
  r.ok = !r.pod.empty();
  if (!r.ok) r.error = "not a greeting: " + line;
  r.seconds = seconds_since(t0);
}

PodConn::~PodConn() {
  if (fd_ >= 0) ::close(fd_);
}

bool PodConn::echo(const std::string& text, std::chrono::milliseconds timeout) {
  if (!greeting_.ok || !send_all(fd_, text + "\n")) return false;
  std::string line, error;
  return read_line(fd_, line, Clock::now() + timeout, error) && line == text;
}

Reply exchange(const Pod& from, const std::string& ip, uint16_t port, std::chrono::milliseconds timeout,
               uint16_t local_port) {
  PodConn c(from, ip, port, timeout, local_port);
  return c.greeting();
}

// --- the access log -----------------------------------------------------------------

std::vector<AccessRecord> access_records(const std::string& log) {
  std::vector<AccessRecord> out;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    const size_t at = line.find("\taccess\tconnection complete\t");
    if (at == std::string::npos) continue;
    AccessRecord r;
    r["level"] = line.substr(line.rfind('\t', at - 1) + 1, at - line.rfind('\t', at - 1) - 1);
    std::string_view rest = std::string_view(line).substr(at + std::strlen("\taccess\tconnection complete\t"));
    while (!rest.empty()) {
      const size_t eq = rest.find('=');
      if (eq == std::string_view::npos) break;
      const std::string key(rest.substr(0, eq));
      rest.remove_prefix(eq + 1);
      std::string value;
      if (!rest.empty() && rest.front() == '"') {
        size_t i = 1;
        for (; i < rest.size() && rest[i] != '"'; ++i) {
          if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
          value += rest[i];
        }
        rest.remove_prefix(std::min(rest.size(), i + 1));
      } else {
        const size_t sp = rest.find(' ');
        value = std::string(rest.substr(0, sp));
        rest.remove_prefix(sp == std::string_view::npos ? rest.size() : sp);
      }
      while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
      r[key] = value;
    }
    out.push_back(std::move(r));
  }
  return out;
}

// --- HTTP to the admin ports -------------------------------------------------------

Http http_get(uint16_t port, const std::string& path, std::chrono::milliseconds timeout) {
  Http out;
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{long(timeout.count() / 1000), long(timeout.count() % 1000) * 1000};
  ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const sockaddr_in to = v4("127.0.0.1", port);
  if (::connect(s, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
    ::close(s);
    return out;
  }
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  std::string resp;
  if (send_all(s, req)) {
    char buf[16384];
    for (;;) {
      const ssize_t n = ::recv(s, buf, sizeof buf, 0);
      if (n <= 0) break;
      resp.append(buf, size_t(n));
    }
  }
  ::close(s);
  if (resp.rfind("HTTP/1.", 0) != 0 || resp.size() < 12) return out;
  out.status = std::atoi(resp.c_str() + 9);
  const size_t body = resp.find("\r\n\r\n");
  if (body != std::string::npos) out.body = resp.substr(body + 4);
  // Chunked bodies are not expected from the admin server; keep it simple.
  return out;
}

// --- the mesh ------------------------------------------------------------------------

InpodMesh::InpodMesh() {
  char tmpl[] = "/tmp/zt-inpod-e2e.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) std::abort();
  dir_ = tmpl;
  third_octet_ = int(::getpid() % 254) + 1;
  const std::string ca = dir_ + "/ca";
  for (int i = 0; i < 2; ++i) {
    Node& n = nodes_[i];
    n.name = "node" + std::to_string(i + 1);
    n.state = dir_ + "/" + n.name + "/state";
    n.uds = dir_ + "/" + n.name + "/ztunnel.sock";
    n.mesh = dir_ + "/" + n.name + "/mesh.yaml";
    fs::create_directories(dir_ + "/" + n.name);
  }
}

InpodMesh::~InpodMesh() {
  for (Node& n : nodes_) {
    n.ztunnel.stop(SIGKILL, 5s);
    n.agent.stop(SIGTERM, 5s);
  }
  const std::string out = dir_ + "/teardown.out";
  for (const Pod& p : pods_) {
    if (std::find(created_.begin(), created_.end(), p.name) == created_.end()) continue;
    (void)run({"ip", "netns", "del", p.name}, out);
  }
  // Host veth ends go with their peers; routes with the veths.
  if (std::getenv("ZT_INPOD_E2E_KEEP") == nullptr) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

std::string InpodMesh::ip(int index) const {
  return "10.252." + std::to_string(third_octet_) + "." + std::to_string(10 + index);
}

Pod& InpodMesh::define(char key, int node, const std::string& ns, const std::string& sa, int ip_index) {
  Pod p;
  p.key = key;
  p.name = "zte" + std::to_string(::getpid()) + key;
  p.ns = ns;
  p.sa = sa;
  p.ip = ip(ip_index ? ip_index : key - 'a' + 1);
  p.node = node;
  pods_.push_back(p);
  in_mesh_[key] = true;
  return pods_.back();
}

Pod& InpodMesh::pod(char key) {
  for (Pod& p : pods_) {
    if (p.key == key) return p;
  }
  std::abort();
}

void InpodMesh::set_in_mesh(char key, bool in) { in_mesh_[key] = in; }

void InpodMesh::write_mesh_file(int node) {
  std::ostringstream y;
  y << "# " << nodes_[node].name << "'s view of the mesh (written by the in-pod e2e harness)\nworkloads:\n";
  for (const Pod& p : pods_) {
    if (!in_mesh_[p.key]) continue;
    y << "- uid: cluster1//v1/Pod/" << p.ns << "/" << p.name << "\n"
      << "  name: " << p.name << "\n  namespace: " << p.ns << "\n  serviceAccount: " << p.sa << "\n"
      << "  workloadIps: [\"" << p.ip << "\"]\n  protocol: HBONE\n  node: " << nodes_[p.node].name << "\n";
  }
  if (!policies_.empty()) y << "policies:\n" << policies_;
  const std::string tmp = nodes_[node].mesh + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << y.str();
  }
  fs::rename(tmp, nodes_[node].mesh);
}

Ran InpodMesh::add_pod(const Pod& p) {
  if (std::find(created_.begin(), created_.end(), p.name) == created_.end()) created_.push_back(p.name);
  return run({ZT_CNI_BIN, "add-pod", "--name", p.name, "--namespace", p.ns, "--service-account", p.sa, "--ip",
              p.ip + "/16", "--uid", "uid-" + p.name, "--state", nodes_[p.node].state, "--script", ZT_CNI_SCRIPT},
             dir_ + "/add-" + p.name + ".out");
}

Ran InpodMesh::del_pod(const Pod& p) {
  return run({ZT_CNI_BIN, "del-pod", "--name", p.name, "--state", nodes_[p.node].state},
             dir_ + "/del-" + p.name + ".out");
}

void InpodMesh::start_agent(int i) {
  Node& n = nodes_[i];
  n.agent = spawn({ZT_CNI_BIN, "agent", "--uds", n.uds, "--state", n.state}, {}, dir_ + "/" + n.name + "/agent.log");
  // Until it serves: the control socket exists once it runs.
  const auto deadline = Clock::now() + 5s;
  struct stat st{};
  while (::stat(n.uds.c_str(), &st) != 0 && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
}

int InpodMesh::stop_agent(int i) { return nodes_[i].agent.stop(SIGTERM, 5s); }

void InpodMesh::start_ztunnel(int i) {
  Node& n = nodes_[i];
  n.admin = ephemeral_port();
  n.stats = ephemeral_port();
  n.ready = ephemeral_port();
  ++n.ztunnel_runs;
  n.ztunnel = spawn({ZT_ZTUNNEL_BIN, "--admin-port", std::to_string(n.admin), "--stats-port", std::to_string(n.stats),
                     "--readiness-port", std::to_string(n.ready), "--fake-ca-dir", dir_ + "/ca"},
                    {"INPOD_ENABLED=true", "INPOD_UDS=" + n.uds, "NODE_NAME=" + n.name, "FAKE_CA=true",
                     "XDS_ADDRESS=", "CA_ADDRESS=", "LOCAL_XDS_PATH=" + n.mesh, "ISTIO_META_DNS_CAPTURE=false",
                     "ZTUNNEL_WORKER_THREADS=2", "CONNECTION_TERMINATION_DEADLINE=1s", "RUST_LOG=info"},
                    dir_ + "/" + n.name + "/ztunnel.log");
}

int InpodMesh::stop_ztunnel(int i, int sig) { return nodes_[i].ztunnel.stop(sig, 10s); }

bool InpodMesh::wait_ready(int i, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (http_get(nodes_[i].ready, "/healthz/ready", 500ms).status == 200) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

std::optional<nlohmann::json> InpodMesh::config_dump(int i) {
  Http r = http_get(nodes_[i].admin, "/config_dump");
  if (r.status != 200) return std::nullopt;
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

std::string InpodMesh::ztunnel_log(int i) const { return slurp(nodes_[i].ztunnel.log_path); }

std::vector<std::string> InpodMesh::pod_listeners(const Pod& p) {
  Ran r = run({"ip", "netns", "exec", p.name, "ss", "-Htlne"}, dir_ + "/ss.out");
  std::vector<std::string> out;
  std::istringstream in(r.output);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string state, recvq, sendq, local, peer, word, ino;
    words >> state >> recvq >> sendq >> local >> peer;
    if (state != "LISTEN") continue;  // `ip netns exec` may warn on stderr (e.g. about cgroup2)
    while (words >> word) {
      if (word.rfind("ino:", 0) == 0) ino = word.substr(4);
    }
    out.push_back(local + " ino=" + ino);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace zt::e2e::inpod
