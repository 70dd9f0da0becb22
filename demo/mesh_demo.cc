// ztunnel-demo: a two-node mesh on loopback, without root. It starts two
// ztunnel processes (node-a and node-b, sharing one fake CA), an echo
// server as node-b's workload, then drives traffic from node-a's workloads
// through SOCKS5 and shows what happened: the reply, the identities each
// side verified (from their access logs), a connection the policy refused,
// and a few metric lines. Then it drains both ztunnels (SIGTERM) and checks
// they exit 0. Along the way it edits the policy while a connection is
// open and shows node-b closing it. Exit status 0 means every step did what
// it says.
//
//   ztunnel-demo                      # the whole story, then shut down
//   ztunnel-demo --keep-running       # leave the mesh up to explore; Ctrl-C ends it
//   ztunnel-demo --ztunnel PATH --config demo/mesh.yaml --workdir DIR
//
// The mesh is demo/mesh.yaml: sleep (127.0.1.10) and untrusted (127.0.1.11)
// on node-a, echo (127.0.2.10:8080) on node-b behind the service
// echo.demo.svc.cluster.local (VIP 127.10.0.10:80); only the sleep service
// account may connect.
//
// This is a plain program around ztunnel, not proxy code: blocking sockets
// and threads keep it short.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

struct Node {
  std::string name;
  uint16_t admin_port, stats_port, readiness_port;
  pid_t pid = -1;
  std::string log_path;
};

struct Options {
  std::string ztunnel = ZT_DEMO_ZTUNNEL;
  std::string config = ZT_DEMO_CONFIG;
  std::string workdir;
  bool keep_running = false;
};

constexpr const char* kSleepIp = "127.0.1.10";
constexpr const char* kUntrustedIp = "127.0.1.11";
constexpr const char* kEchoIp = "127.0.2.10";
constexpr uint16_t kEchoPort = 8080;
constexpr const char* kService = "echo.demo.svc.cluster.local";
constexpr uint16_t kServicePort = 80;
constexpr uint16_t kSocksPort = 15080;

int failures = 0;

void say(const std::string& line) { std::printf("%s\n", line.c_str()), std::fflush(stdout); }
void check(bool ok, const std::string& what) {
  say(std::string(ok ? "   ok: " : "   FAILED: ") + what);
  if (!ok) ++failures;
}

sockaddr_in v4(const char* ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

void set_timeout(int fd, int seconds) {
  timeval tv{seconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// A TCP connection from `src_ip` (any port) to ip:port, or -1.
int connect_from(const char* src_ip, const char* ip, uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  set_timeout(fd, 5);
  if (src_ip) {
    sockaddr_in src = v4(src_ip, 0);
    if (bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0) return close(fd), -1;
  }
  sockaddr_in dst = v4(ip, port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof(dst)) != 0) return close(fd), -1;
  return fd;
}

bool send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += size_t(n);
  }
  return true;
}

bool recv_exact(int fd, uint8_t* out, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = recv(fd, out + got, n - got, 0);
    if (r <= 0) return false;
    got += size_t(r);
  }
  return true;
}

// Reads until EOF; `reset` says whether the connection ended with an error
// (a reset) rather than a clean FIN.
std::string recv_all(int fd, bool& reset) {
  std::string out;
  char buf[4096];
  reset = false;
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0) return out;
    if (n < 0) {
      reset = true;
      return out;
    }
    out.append(buf, size_t(n));
  }
}

std::string http_get(uint16_t port, const std::string& path, int* status = nullptr) {
  int fd = connect_from(nullptr, "127.0.0.1", port);
  if (fd < 0) return {};
  send_all(fd, "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  bool reset = false;
  std::string resp = recv_all(fd, reset);
  close(fd);
  if (status) *status = resp.size() > 12 ? std::atoi(resp.substr(9, 3).c_str()) : 0;
  size_t body = resp.find("\r\n\r\n");
  return body == std::string::npos ? std::string() : resp.substr(body + 4);
}

// --- the echo workload on node-b ---

// Answers each connection with one line naming what it heard. When node-b's
// ztunnel speaks PROXY protocol v2 first (a workload with an application
// tunnel), the SPIFFE identity TLV (0xD0) is read and echoed too.
class EchoServer {
 public:
  bool start() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a = v4(kEchoIp, kEchoPort);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd_, 64) != 0) return false;
    thread_ = std::thread([this] { serve(); });
    return true;
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (auto& t : connections_) t.join();
    close(fd_);
  }
  int served() const { return served_; }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      ++served_;
      connections_.emplace_back([c] { answer(c); });
    }
  }

  static void answer(int c) {
    set_timeout(c, 10);
    {
      bool reset = false;
      std::string in = recv_all(c, reset);
      std::string peer_identity;
      static const std::string kSig("\r\n\r\n\0\r\nQUIT\n", 12);
      if (in.size() >= 16 && in.compare(0, 12, kSig) == 0) {
        const size_t len = (uint8_t(in[14]) << 8) | uint8_t(in[15]);
        const size_t addr_len = (in[13] & 0xf0) == 0x10 ? 12 : (in[13] & 0xf0) == 0x20 ? 36 : 0;
        for (size_t at = 16 + addr_len; at + 3 <= 16 + len && at + 3 <= in.size();) {
          const uint8_t type = uint8_t(in[at]);
          const size_t tlv_len = (uint8_t(in[at + 1]) << 8) | uint8_t(in[at + 2]);
          if (type == 0xD0) peer_identity = in.substr(at + 3, tlv_len);
          at += 3 + tlv_len;
        }
        in.erase(0, std::min(in.size(), 16 + len));
      }
      while (!in.empty() && (in.back() == '\n' || in.back() == '\r')) in.pop_back();
      std::string reply = "echo-0 on node-b heard \"" + in + "\"";
      if (!peer_identity.empty()) reply += " from " + peer_identity + " (PROXY protocol)";
      send_all(c, reply + "\n");
      close(c);
    }
  }

  int fd_ = -1;
  std::atomic<bool> stop_ = false;
  std::atomic<int> served_ = 0;
  std::thread thread_;
  std::vector<std::thread> connections_;  // the accept thread's only
};

// --- ztunnel processes ---

bool start_node(const Options& opt, Node& node) {
  node.log_path = opt.workdir + "/" + node.name + ".log";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, node.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);  // the log is on stdout, as upstream's
  std::vector<std::string> env = {"FAKE_CA=true", "XDS_ADDRESS=", "CA_ADDRESS=", "UNSTABLE_ENABLE_SOCKS5=true",
                                  "LOCAL_XDS_PATH=" + opt.config, "NODE_NAME=" + node.name,
                                  "ZTUNNEL_WORKER_THREADS=2", "CONNECTION_TERMINATION_DEADLINE=2s"};
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    if (kv.rfind("LOCAL_XDS", 0) != 0 && kv.rfind("NODE_NAME=", 0) != 0) env.push_back(kv);
  }
  std::vector<std::string> args = {opt.ztunnel,
                                   "--listen-on-workload-ips",
                                   "--fake-ca-dir=" + opt.workdir + "/ca",
                                   "--admin-port=" + std::to_string(node.admin_port),
                                   "--stats-port=" + std::to_string(node.stats_port),
                                   "--readiness-port=" + std::to_string(node.readiness_port)};
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  // Our blocked SIGINT/SIGTERM are not the child's business.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  const int rc = posix_spawn(&node.pid, opt.ztunnel.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0;
}

bool wait_ready(const Node& node) {
  for (int i = 0; i < 100; ++i) {
    int status = 0;
    http_get(node.readiness_port, "/healthz/ready", &status);
    if (status == 200) return true;
    if (waitpid(node.pid, nullptr, WNOHANG) == node.pid) return false;  // it exited
    usleep(100'000);
  }
  return false;
}

// SIGTERM, then the exit status (or -1 if it had to be killed).
int stop_node(Node& node) {
  if (node.pid <= 0) return -1;
  kill(node.pid, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    int status = 0;
    if (waitpid(node.pid, &status, WNOHANG) == node.pid) {
      node.pid = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    usleep(100'000);
  }
  kill(node.pid, SIGKILL);
  waitpid(node.pid, nullptr, 0);
  node.pid = -1;
  return -1;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// --- SOCKS5 from a workload's address ---

struct Exchange {
  bool socks_ok = false;
  std::string reply;
  bool reset = false;
};

// Connects from `src_ip` to that workload's SOCKS5 port on its node's
// ztunnel, asks for host:port by name, sends one line and reads the answer.
// A connection through that workload's SOCKS5 port on its node's ztunnel,
// from the workload's address, to host:port by name; -1 if SOCKS5 failed.
int socks_open(const char* src_ip, const std::string& host, uint16_t port) {
  int fd = connect_from(src_ip, src_ip, kSocksPort);
  if (fd < 0) return -1;
  uint8_t greeting_reply[2];
  std::string req("\x05\x01\x00", 3);
  req += std::string("\x05\x01\x00\x03", 4) + char(host.size()) + host + char(port >> 8) + char(port & 0xff);
  uint8_t reply[10];
  if (send_all(fd, req) && recv_exact(fd, greeting_reply, 2) && recv_exact(fd, reply, sizeof(reply)) &&
      reply[1] == 0) {
    return fd;
  }
  close(fd);
  return -1;
}

// Sends one line through SOCKS5 and reads the answer to EOF.
Exchange socks_exchange(const char* src_ip, const std::string& host, uint16_t port, const std::string& line) {
  Exchange ex;
  int fd = socks_open(src_ip, host, port);
  if (fd < 0) return ex;
  ex.socks_ok = true;
  // A reset can arrive while we still write: the write takes the error and
  // the read after it sees a plain end. Either shows the reset.
  const bool written = send_all(fd, line + "\n") && shutdown(fd, SHUT_WR) == 0;
  ex.reply = recv_all(fd, ex.reset);
  ex.reset = ex.reset || !written;
  close(fd);
  return ex;
}

// "name{a="x",b="y",...} v" -> "name{<only the labels we show>} v".
std::string short_metric(const std::string& line) {
  size_t open = line.find('{'), close_brace = line.rfind('}');
  if (open == std::string::npos || close_brace == std::string::npos) return line;
  std::string labels;
  for (const char* keep : {"reporter", "source_principal", "destination_workload", "response_flags"}) {
    std::string key = std::string(keep) + "=\"";
    size_t at = line.find(key, open);
    if (at == std::string::npos) continue;
    size_t end = line.find('"', at + key.size());
    labels += (labels.empty() ? "" : ",") + line.substr(at, end - at + 1);
  }
  return line.substr(0, open) + "{" + labels + ",...}" + line.substr(close_brace + 1);
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

int run(const Options& opt) {
  Node a{"node-a", 15100, 15120, 15121}, b{"node-b", 15200, 15220, 15221};
  say("logs, CA and mesh copy: " + opt.workdir);
  EchoServer echo;
  if (!echo.start()) {
    say(std::string("cannot listen on ") + kEchoIp + ":" + std::to_string(kEchoPort) + ": " + std::strerror(errno));
    return 1;
  }
  for (Node* n : {&a, &b}) {
    if (!start_node(opt, *n) || !wait_ready(*n)) {
      say(n->name + "'s ztunnel did not become ready; its log (" + n->log_path + "):");
      for (const auto& l : read_lines(n->log_path)) say("  " + l);
      stop_node(a), stop_node(b), echo.stop();
      return 1;
    }
    say(n->name + ": ztunnel pid " + std::to_string(n->pid) + " ready (admin localhost:" +
        std::to_string(n->admin_port) + ", metrics :" + std::to_string(n->stats_port) + ")");
  }
  say(std::string("node-b: echo workload listening on ") + kEchoIp + ":" + std::to_string(kEchoPort));

  say("");
  say(std::string("1. sleep (") + kSleepIp + ") -> " + kService + ":" + std::to_string(kServicePort) +
      ", through node-a's SOCKS5, HBONE to node-b");
  Exchange ok = socks_exchange(kSleepIp, kService, kServicePort, "hello from sleep");
  say("   reply: " + trim(ok.reply));
  check(ok.socks_ok && !ok.reset && ok.reply.find("hello from sleep") != std::string::npos,
        std::string("the echo came back over the mesh (socks ") + (ok.socks_ok ? "ok" : "failed") + ", " +
            (ok.reset ? "reset" : "clean end") + ")");
  check(ok.reply.find("from spiffe://cluster.local/ns/demo/sa/sleep") != std::string::npos,
        "echo learned the caller's verified identity from node-b (PROXY protocol v2, TLV 0xD0)");

  say("");
  say(std::string("2. untrusted (") + kUntrustedIp + ") -> the same service: the policy admits only sleep");
  Exchange denied = socks_exchange(kUntrustedIp, kService, kServicePort, "hello from untrusted");
  say(denied.reset ? "   the connection was reset" : "   reply: " + trim(denied.reply));
  check(denied.socks_ok && denied.reset && denied.reply.empty(),
        std::string("refused, nothing reached the echo server (socks ") + (denied.socks_ok ? "ok" : "failed") +
            ", " + (denied.reset ? "reset" : "no reset") + ", " + std::to_string(denied.reply.size()) + " bytes back)");
  check(echo.served() == 1, "the echo server saw exactly one connection (" + std::to_string(echo.served()) + ")");

  usleep(300'000);  // connection records land as connections close
  say("");
  say("3. what each side verified (access logs):");
  for (Node* n : {&a, &b}) {
    for (const auto& l : read_lines(n->log_path)) {
      if (l.find("identity") != std::string::npos && l.find("connection") != std::string::npos) {
        say("   " + n->name + ": " + l);
      }
    }
  }

  say("");
  say("4. node-b's metrics (reporter=destination; labels shortened):");
  // Each side reports as its connection ends, on its own worker thread:
  // scrape until both reports are in (at most 3 s).
  bool rbac_seen = false, opened_seen = false;
  std::vector<std::string> shown;
  for (int attempt = 0; attempt < 30 && !(rbac_seen && opened_seen); ++attempt) {
    if (attempt) usleep(100'000);
    shown.clear();
    std::istringstream lines(http_get(b.stats_port, "/metrics"));
    for (std::string l; std::getline(lines, l);) {
      if (l.rfind("istio_tcp_connections_", 0) != 0 && l.rfind("istio_tcp_received_bytes_total", 0) != 0) continue;
      if (l.find("reporter=\"destination\"") == std::string::npos) continue;
      shown.push_back("   " + short_metric(l));
      opened_seen |= l.rfind("istio_tcp_connections_opened_total", 0) == 0 && l.find("sa/sleep") != std::string::npos;
      rbac_seen |= l.find("response_flags=\"DENY\"") != std::string::npos && l.find("sa/untrusted") != std::string::npos;
    }
  }
  for (const auto& l : shown) say(l);
  check(opened_seen, "node-b counted sleep's connection");
  check(rbac_seen, "node-b counted untrusted's connection as denied by policy (DENY)");

  if (opt.keep_running) {
    say("");
    say("The mesh keeps running. Try:");
    say("   curl -s localhost:15100/config_dump | head -40      # node-a's state and certificates");
    say("   curl -s localhost:15220/metrics | grep istio_tcp    # node-b's metrics");
    say("   curl -s localhost:15121/healthz/ready");
    say(std::string("Press Ctrl-C to drain and stop both ztunnels."));
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    sigwait(&set, &sig);
  }

  say("");
  say("5. a policy change while sleep holds a connection open: the policy now admits only 'nobody'");
  int held = socks_open(kSleepIp, kService, kServicePort);
  send_all(held, "still there?");  // no newline, no FIN: the connection stays open
  usleep(300'000);
  std::ifstream in(opt.config);
  std::stringstream text;
  text << in.rdbuf();
  std::string mesh = text.str();
  const std::string allowed = "serviceAccount: sleep}]";
  const size_t at = mesh.find(allowed);
  if (at != std::string::npos) mesh.replace(at, allowed.size(), "serviceAccount: nobody}]");
  {
    std::ofstream out(opt.config + ".new");
    out << mesh;
  }
  std::rename((opt.config + ".new").c_str(), opt.config.c_str());  // both ztunnels re-read it within a second
  bool held_reset = false;
  pollfd p{held, POLLIN, 0};
  if (held >= 0 && poll(&p, 1, 10'000) == 1) {
    char c;
    held_reset = recv(held, &c, 1, 0) < 0;
  }
  if (held >= 0) close(held);
  check(at != std::string::npos && held_reset,
        std::string("node-b re-checked the open connection and reset it (") +
            (held < 0 ? "no connection" : held_reset ? "reset" : "not reset within 10 s") + ")");
  for (const auto& l : read_lines(b.log_path)) {
    if (l.find("policy change") != std::string::npos) say("   node-b: " + l);
  }

  say("");
  say("6. drain and stop (SIGTERM)");
  const int code_a = stop_node(a), code_b = stop_node(b);
  echo.stop();
  check(code_a == 0 && code_b == 0,
        "both ztunnels drained and exited 0 (node-a " + std::to_string(code_a) + ", node-b " + std::to_string(code_b) + ")");
  say("");
  say(failures == 0 ? "demo finished: every step did what it says"
                    : "demo finished with " + std::to_string(failures) + " failed step(s); logs in " + opt.workdir);
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* flag) -> std::optional<std::string> {
      std::string f(flag);
      if (arg.rfind(f + "=", 0) == 0) return arg.substr(f.size() + 1);
      if (arg == f && i + 1 < argc) return std::string(argv[++i]);
      return std::nullopt;
    };
    if (arg == "--keep-running") opt.keep_running = true;
    else if (auto v = value("--ztunnel")) opt.ztunnel = *v;
    else if (auto v = value("--config")) opt.config = *v;
    else if (auto v = value("--workdir")) opt.workdir = *v;
    else {
      std::fprintf(stderr,
                   "usage: %s [--keep-running] [--ztunnel PATH] [--config MESH.yaml] [--workdir DIR]\n"
                   "unknown argument: %s\n",
                   argv[0], arg.c_str());
      return 2;
    }
  }
  // SIGINT/SIGTERM are taken with sigwait (--keep-running), never by default.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  if (opt.workdir.empty()) {
    char tmpl[] = "/tmp/ztunnel-demo.XXXXXX";
    if (!mkdtemp(tmpl)) return std::perror("mkdtemp"), 1;
    opt.workdir = tmpl;
  }
  mkdir((opt.workdir + "/ca").c_str(), 0700);
  // The ztunnels read a copy, which step 5 edits.
  {
    std::ifstream src(opt.config);
    if (!src) return std::fprintf(stderr, "cannot read %s\n", opt.config.c_str()), 1;
    std::ofstream dst(opt.workdir + "/mesh.yaml");
    dst << src.rdbuf();
  }
  say("== ztunnel local mesh demo ==");
  say("mesh: " + opt.config + " (the ztunnels read a copy)");
  opt.config = opt.workdir + "/mesh.yaml";
  return run(opt);
}
