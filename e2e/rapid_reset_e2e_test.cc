// HTTP/2 rapid reset (CVE-2023-44487) against the real `ztunnel` binary on
// loopback, in local mode. The node has two pods: `echo` (an echo server in
// this process) and `stalled` (a listener whose accept queue is full, so a
// dial to it hangs as one to a slow application does). An attacker with a
// mesh identity keeps 8 mutual-TLS HTTP/2 connections to 15008 (half to each
// pod) and on each opens CONNECT streams and resets them at once (HEADERS on
// the wire, then RST_STREAM(CANCEL)) until the node has read 20,000 of them
// per connection; a connection the node ends (GOAWAY) is replaced. Meanwhile
// a well-behaved client keeps opening tunnels to echo on its own connection,
// and the stats and readiness ports are probed. The node's descriptors and
// RSS come from /proc before, during (peak) and after the attack, and the
// size of the node's log (requests cut short are summarized per connection);
// one line prints them. The node's dial bounds are per connection, per peer
// and per listener (core/proxy/dial_budget.h), so the attacker's dials
// never take the well-behaved client's: it sees no failure.
//
// This process runs only the project's own stack (h2 over tls over io/real,
// BoringSSL; no OpenSSL may share a process with it). The pods are
// 127.44.0.x, which this test owns: the pod ports (15008 and the others)
// bind only there (--listen-on-workload-ips); admin, stats and readiness
// take ephemeral ports. ctest still runs it apart from the other binary
// tests (RESOURCE_LOCK ztunnel_ports). ZT_E2E_KEEP=1 keeps the node's log.
#include <gtest/gtest.h>
#include <dirent.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "h2/connection.h"
#include "io/async.h"
#include "io/real/runtime.h"
#include "testing/harness.h"
#include "tls/ca.h"
#include "tls/cert.h"
#include "tls/context.h"
#include "tls/stream.h"

extern char** environ;

namespace zt::e2e {
namespace {

using namespace std::chrono_literals;

// The attack, as in the hardening issue.
constexpr int kAttackConnections = 8;
constexpr uint64_t kStreamsPerConnection = 20'000;  // read by the node, per connection
constexpr size_t kBurstMax = 100;                   // streams opened, then reset together
constexpr Duration kAttackTimeLimit = 45s;
// What the node may spend on it. The peak: the descriptors the node sets
// aside for dials (workers x InboundConfig::dials.per_listener,
// app/descriptors.h); before the fix the attack took it to its limit
// (20,000).
constexpr int kPeakDescriptorsAboveBaselineMax = 2 * 1024;
constexpr int kDescriptorsAfterAboveBaselineMax = 16;
constexpr long kRssAfterAboveBaselineKbMax = 50 * 1024;
constexpr Duration kSettle = 3s;  // after the attack, before the "after" figures

const IpAddr kEchoIp = IpAddr::v4(127, 44, 0, 10);
const IpAddr kStalledIp = IpAddr::v4(127, 44, 0, 11);
const IpAddr kGoodClientIp = IpAddr::v4(127, 44, 0, 20);
const IpAddr kAttackerIp = IpAddr::v4(127, 44, 0, 21);
constexpr const char* kUnknownTarget = "127.44.0.99:9";  // no workload: answered 503 at once

// The node's pods are echo and stalled; the clients are workloads of another node.
constexpr const char* kMesh = R"(workloads:
- uid: Kubernetes//Pod/rr/echo-0
  name: echo-0
  namespace: rr
  serviceAccount: echo
  workloadIps: ["127.44.0.10"]
  protocol: HBONE
  node: rr-node
- uid: Kubernetes//Pod/rr/stalled-0
  name: stalled-0
  namespace: rr
  serviceAccount: stalled
  workloadIps: ["127.44.0.11"]
  protocol: HBONE
  node: rr-node
- uid: Kubernetes//Pod/rr/client-0
  name: client-0
  namespace: rr
  serviceAccount: client
  workloadIps: ["127.44.0.20"]
  protocol: HBONE
  node: peer-node
- uid: Kubernetes//Pod/rr/attacker-0
  name: attacker-0
  namespace: rr
  serviceAccount: attacker
  workloadIps: ["127.44.0.21"]
  protocol: HBONE
  node: peer-node
)";

// --- the process ------------------------------------------------------------------

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// Starts the binary with `env` (added to ours) and `args`, its output to
// `log_path`. It is killed if this thread ends first (a crashed test leaves
// no node behind: its pod ports use SO_REUSEPORT, so a leftover would share
// them with the next run's node).
pid_t spawn_ztunnel(const std::vector<std::string>& env, const std::vector<std::string>& args,
                    const std::string& log_path) {
  std::vector<std::string> all_env(env);
  for (char** e = environ; *e; ++e) all_env.emplace_back(*e);
  std::vector<char*> envp, argv{const_cast<char*>(ZT_ZTUNNEL_BIN)};
  for (auto& e : all_env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args_copy(args);
  for (auto& a : args_copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid != 0) return pid;
  // The child: only async-signal-safe calls until exec.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);
  const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0) _exit(127);
  execve(ZT_ZTUNNEL_BIN, argv.data(), envp.data());
  _exit(127);
}

// Waits up to `limit` for the process to exit; its exit code, or -1.
int wait_exit(pid_t pid, Duration limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > until) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    usleep(20'000);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string log_tail(const std::string& path, size_t lines_max = 40) {
  std::istringstream in(slurp(path));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::string out;
  for (size_t i = lines.size() > lines_max ? lines.size() - lines_max : 0; i < lines.size(); ++i) out += lines[i] + "\n";
  return out;
}

uint16_t free_port() {
  io::real::Runtime rt;
  auto l = rt.env().net.listen(Endpoint{IpAddr::loopback(IpAddr::Family::v4), 0}, {});
  return l ? (*l)->local().port : 0;
}

// --- what /proc says about the node ----------------------------------------------------

struct Usage {
  int fds = -1;
  long rss_kb = -1;
};

Usage usage_of(pid_t pid) {
  Usage u;
  const std::string proc = "/proc/" + std::to_string(pid);
  if (DIR* d = opendir((proc + "/fd").c_str())) {
    u.fds = 0;
    while (const dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') ++u.fds;
    }
    closedir(d);
  }
  std::istringstream status(slurp(proc + "/status"));
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) u.rss_kb = std::stol(line.substr(6));
  }
  return u;
}

long descriptor_limit(pid_t pid) {
  std::istringstream limits(slurp("/proc/" + std::to_string(pid) + "/limits"));
  for (std::string line; std::getline(limits, line);) {
    if (line.rfind("Max open files", 0) == 0) return std::stol(line.substr(26));
  }
  return -1;
}

// Samples the node every few milliseconds on its own thread, keeping the peak.
class Sampler {
 public:
  explicit Sampler(pid_t pid) : thread_([this, pid] {
      while (!stop_) {
        const Usage u = usage_of(pid);
        peak_fds_ = std::max(peak_fds_.load(), u.fds);
        peak_rss_kb_ = std::max(peak_rss_kb_.load(), u.rss_kb);
        ++samples_;
        std::this_thread::sleep_for(2ms);
      }
    }) {}
  ~Sampler() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  Usage peak() const { return Usage{peak_fds_, peak_rss_kb_}; }
  int samples() const { return samples_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> peak_fds_{-1}, samples_{0};
  std::atomic<long> peak_rss_kb_{-1};
  std::thread thread_;
};

// The sum of a Prometheus family's samples whose labels contain `label` ("" for all).
double metric_sum(const std::string& body, const std::string& family, const std::string& label = "") {
  double sum = 0;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(family, 0) != 0) continue;
    const char next = line.size() > family.size() ? line[family.size()] : '\0';
    if (next != '{' && next != ' ') continue;
    if (!label.empty() && line.find(label) == std::string::npos) continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

// --- HTTP/2 frames on the attacker's connections -----------------------------------------

// What crossed one connection, read from its frames.
struct FrameCounts {
  uint64_t headers_out = 0, resets_out = 0;  // HEADERS and RST_STREAM written
  uint64_t goaways_in = 0;
  uint32_t goaway_last_stream_id = 0;         // of the last GOAWAY
  std::string end;                            // how reading ended: "EOF" or the error
  std::map<uint32_t, uint64_t> goaway_codes;  // error code -> GOAWAYs received
};

// Follows a byte stream of HTTP/2 frames (after `preface` bytes) and reports
// each frame's type, and a GOAWAY's error code.
class FrameReader {
 public:
  explicit FrameReader(size_t preface) : preface_left_(preface) {}
  template <class OnFrame, class OnGoaway>
  void feed(ConstBytes b, OnFrame on_frame, OnGoaway on_goaway) {
    size_t i = 0;
    while (i < b.size()) {
      if (preface_left_ > 0) {
        const size_t k = std::min(preface_left_, b.size() - i);
        preface_left_ -= k;
        i += k;
      } else if (head_got_ < kHeadBytes) {
        head_[head_got_++] = b[i++];
        if (head_got_ == kHeadBytes) {
          length_ = (uint32_t(head_[0]) << 16) | (uint32_t(head_[1]) << 8) | head_[2];
          payload_got_ = 0;
          on_frame(head_[3]);
          if (length_ == 0) head_got_ = 0;
        }
      } else {
        const size_t k = std::min(size_t(length_ - payload_got_), b.size() - i);
        for (size_t j = 0; j < k && payload_got_ + j < sizeof(goaway_); ++j) goaway_[payload_got_ + j] = b[i + j];
        payload_got_ += uint32_t(k);
        i += k;
        if (payload_got_ == length_) {
          if (head_[3] == kGoaway && length_ >= 8) {
            on_goaway(word(goaway_) & 0x7fffffffu, word(goaway_ + 4));  // last stream id, error code
          }
          head_got_ = 0;
        }
      }
    }
  }
  static constexpr uint8_t kHeaders = 0x1, kRstStream = 0x3, kGoaway = 0x7;

 private:
  static uint32_t word(const uint8_t* p) {
    return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
  }
  static constexpr size_t kHeadBytes = 9;
  size_t preface_left_;
  uint8_t head_[kHeadBytes] = {};
  size_t head_got_ = 0;
  uint32_t length_ = 0, payload_got_ = 0;
  uint8_t goaway_[8] = {};
};

// The TLS stream under an h2::Connection, passed through unchanged while the
// frames in both directions are counted (so the attacker knows its HEADERS
// are on the wire before it resets them, and which GOAWAYs it got).
class FrameTap final : public Stream {
 public:
  FrameTap(StreamPtr inner, std::shared_ptr<FrameCounts> counts) : inner_(std::move(inner)), counts_(std::move(counts)) {}
  void read(MutableBytes buf, IoCallback done) override {
    inner_->read(buf, [this, buf, done = std::move(done)](Result<size_t> r) {
      if (!r || *r == 0) counts_->end = r ? "EOF" : r.error().message();
      if (r && *r > 0) {
        in_.feed(ConstBytes(buf).first(*r), [](uint8_t) {}, [this](uint32_t last_stream_id, uint32_t code) {
          ++counts_->goaways_in;
          counts_->goaway_last_stream_id = last_stream_id;
          ++counts_->goaway_codes[code];
        });
      }
      done(std::move(r));
    });
  }
  void write(ConstBytes buf, IoCallback done) override {
    inner_->write(buf, [this, buf, done = std::move(done)](Result<size_t> r) {
      if (r) {
        out_.feed(buf.first(*r), [this](uint8_t type) {
          if (type == FrameReader::kHeaders) ++counts_->headers_out;
          if (type == FrameReader::kRstStream) ++counts_->resets_out;
        }, [](uint32_t, uint32_t) {});
      }
      done(std::move(r));
    });
  }
  Result<void> shutdown_write() override { return inner_->shutdown_write(); }
  void close() override { inner_->close(); }
  void abort() override { inner_->abort(); }
  Endpoint local() const override { return inner_->local(); }
  Endpoint peer() const override { return inner_->peer(); }
  Result<Endpoint> original_dst() const override { return inner_->original_dst(); }

 private:
  StreamPtr inner_;
  std::shared_ptr<FrameCounts> counts_;
  FrameReader in_{0}, out_{24};  // the client's connection preface comes first
};

// --- clients -------------------------------------------------------------------------

struct Pod {
  Endpoint hbone;          // the node's 15008 on the pod's address
  tls::Identity identity;  // what the node presents there
  std::string authority;   // the pod's application, ip:port
};

// An HTTP/2 connection over mutual TLS to a pod's 15008, from `source`.
// Null (and `error` set) if it could not be made.
Task<void> connect_h2(Env& env, std::shared_ptr<const tls::TlsContext> ctx, const Pod& pod, IpAddr source,
                      std::shared_ptr<FrameCounts> counts, std::unique_ptr<h2::Connection>& out, std::string& error) {
  SocketOptions opts;
  opts.source_ip = source;
  auto tcp = co_await io::connect(env, pod.hbone, opts, 5s);
  if (!tcp) {
    error = "connect: " + tcp.error().message();
    co_return;
  }
  auto tls = std::make_unique<tls::TlsStream>(env, std::move(ctx), std::move(*tcp));
  tls->expect_identities({pod.identity});
  if (auto hs = co_await tls::handshake(*tls); !hs) {
    error = std::string("TLS: ") + tls::tls_failure_name(tls->failure()) + ": " + hs.error().message();
    co_return;
  }
  StreamPtr transport = std::move(tls);
  if (counts) transport = std::make_unique<FrameTap>(std::move(transport), counts);
  out = std::make_unique<h2::Connection>(env, std::move(transport), h2::Role::client, h2::Settings::client());
  out->start();
}

struct AttackTally {
  uint64_t sent = 0;     // HEADERS on the wire, each reset right after
  uint64_t resets = 0;   // RST_STREAM on the wire
  uint64_t taken = 0;    // of those, what the node read (see attack())
  uint64_t connections = 0, connect_failures = 0;
  uint64_t goaways = 0, ended_without_goaway = 0;
  std::map<uint32_t, uint64_t> goaway_codes;
  std::map<std::string, uint64_t> ends_without_goaway;  // how those ended
  std::string last_error;
};

// Tallies a connection that ended; `taken`: how many of its streams the node read.
void note_connection_end(const FrameCounts& c, uint64_t taken, bool ended_by_node, AttackTally& t) {
  t.sent += c.headers_out;
  t.resets += c.resets_out;
  t.taken += taken;
  t.goaways += c.goaways_in;
  if (ended_by_node && c.goaways_in == 0) {
    ++t.ended_without_goaway;
    ++t.ends_without_goaway[c.end.empty() ? "still reading" : c.end];
  }
  for (auto [code, n] : c.goaway_codes) t.goaway_codes[code] += n;
}

// The streams of a GOAWAY'd connection the node read: those up to the
// GOAWAY's last stream id (client streams are 1, 3, 5, ...).
uint64_t taken_before_goaway(const FrameCounts& c) {
  return c.goaways_in == 0 ? 0 : std::min<uint64_t>(c.headers_out, (uint64_t(c.goaway_last_stream_id) + 1) / 2);
}

// Ends a connection the attacker is done with: one more request, to an
// address the node does not know, answered 503 once the node has read every
// HEADERS before it. What the node read of the connection's streams.
Task<uint64_t> settle(Env& env, h2::Connection& conn, const FrameCounts& c) {
  const MonoTime give_up = env.clock.now() + 5s;
  while (!conn.accepting_streams() && !conn.dead() && c.goaways_in == 0 && env.clock.now() < give_up) {
    co_await io::sleep(env.loop, 1ms);
  }
  if (!conn.accepting_streams()) co_return taken_before_goaway(c);
  int status = 0;
  conn.open(h2::Request{"CONNECT", kUnknownTarget, {}},
            [&status](Result<h2::Opened> r) { status = r ? r->response.status : -1; });
  while (status == 0 && c.goaways_in == 0 && !conn.dead() && env.clock.now() < give_up) {
    co_await io::sleep(env.loop, 1ms);
  }
  co_return status > 0 ? c.headers_out : taken_before_goaway(c);
}

// Opens `n` streams and resets them as soon as their HEADERS are written (a
// reset submitted before would cancel them inside nghttp2 and nothing would
// reach the node).
Task<void> open_and_reset(Env& env, h2::Connection& conn, const FrameCounts& c, const h2::Request& request,
                          uint64_t n) {
  std::vector<StreamPtr> burst;
  const uint64_t out_before = c.headers_out;
  for (uint64_t i = 0; i < n && conn.accepting_streams(); ++i) {
    conn.open(request, [](Result<h2::Opened>) {}, [&burst](StreamPtr early) { burst.push_back(std::move(early)); });
  }
  const MonoTime give_up = env.clock.now() + 2s;
  while (c.headers_out < out_before + burst.size() && !conn.dead() && c.goaways_in == 0 &&
         env.clock.now() < give_up) {
    co_await io::sleep(env.loop, 20us);
  }
  for (StreamPtr& s : burst) s->abort();
}

// One attacker connection's worth: streams opened and at once reset, in
// bursts, until the node has read `budget` of them. The node ends a
// connection that piles up unanswered requests (GOAWAY): a fresh one
// replaces it. Streams written after the node stopped reading (sitting in
// socket buffers when it closed) do not count: the GOAWAY's last stream id
// says what it read, and a connection that ended without one counts none.
Task<void> attack(Env& env, std::shared_ptr<const tls::TlsContext> ctx, Pod pod, uint64_t budget,
                  const std::atomic<bool>& stop, AttackTally& t) {
  int failures_in_a_row = 0;
  std::unique_ptr<h2::Connection> conn;
  std::shared_ptr<FrameCounts> counts;
  const h2::Request request{"CONNECT", pod.authority, {}};
  while (t.taken < budget && !stop) {
    if (conn && (conn->dead() || counts->goaways_in > 0)) {
      note_connection_end(*counts, taken_before_goaway(*counts), true, t);
      conn.reset();
      continue;
    }
    if (!conn) {
      counts = std::make_shared<FrameCounts>();
      co_await connect_h2(env, ctx, pod, kAttackerIp, counts, conn, t.last_error);
      if (!conn) {
        ++t.connect_failures;
        if (++failures_in_a_row > 100) co_return;
        co_await io::sleep(env.loop, 10ms);
        continue;
      }
      failures_in_a_row = 0;
      ++t.connections;
    }
    const uint64_t left = budget - t.taken;
    if (counts->headers_out >= left) {  // this connection carries all that is left
      const uint64_t taken = co_await settle(env, *conn, *counts);
      note_connection_end(*counts, taken, false, t);
      conn.reset();
      continue;
    }
    const uint32_t streams_max = conn->peer_concurrent_streams_max();
    const uint64_t room = streams_max - std::min<size_t>(conn->active_streams(), streams_max);
    const uint64_t n = std::min<uint64_t>({kBurstMax, left - counts->headers_out, room});
    if (n == 0 || !conn->accepting_streams()) {
      co_await io::sleep(env.loop, 100us);
      continue;
    }
    co_await open_and_reset(env, *conn, *counts, request, n);
  }
  if (conn) note_connection_end(*counts, 0, false, t);  // stopped at the time limit
}

// A GET on plain HTTP/1.1; status 0 when no answer could be read.
Task<void> http_get(Env& env, Endpoint to, std::string path, int& status, std::string& body) {
  status = 0;
  auto s = co_await io::connect(env, to, SocketOptions{}, 5s);
  if (!s) co_return;
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  if (!co_await io::write_all(**s, ConstBytes(reinterpret_cast<const uint8_t*>(req.data()), req.size()))) co_return;
  testing::ReadAll all = co_await testing::read_all(**s);
  const std::string text(all.bytes.begin(), all.bytes.end());
  if (text.rfind("HTTP/1.1 ", 0) != 0 || text.size() < 12) co_return;
  status = std::atoi(text.c_str() + 9);
  const size_t head_end = text.find("\r\n\r\n");
  body = head_end == std::string::npos ? "" : text.substr(head_end + 4);
}

// Runs `task` until it finishes or `limit` passes (it is then destroyed);
// whether it finished.
Task<bool> within(Env& env, Task<void> task, Duration limit) {
  bool finished = false;
  Scope scope;
  scope.spawn([](Task<void> t, bool& finished) -> Task<void> {
    co_await t;
    finished = true;
  }(std::move(task), finished));
  const MonoTime give_up = env.clock.now() + limit;
  while (!finished && env.clock.now() < give_up) co_await io::sleep(env.loop, 2ms);
  co_return finished;
}

struct OpenAwaiter {
  h2::Connection& conn;
  h2::Request request;
  std::optional<Result<h2::Opened>> result;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    conn.open(std::move(request), [this, h](Result<h2::Opened> r) {
      result.emplace(std::move(r));
      h.resume();
    });
  }
  Result<h2::Opened> await_resume() { return std::move(*result); }
};

// One well-behaved tunnel: 200, bytes echoed, a clean end both ways. An
// empty string when it all worked, else what went wrong.
Task<void> good_tunnel(h2::Connection& conn, std::string authority, uint8_t salt, std::string& failure) {
  failure = "no answer";
  // A named awaiter: GCC mishandles a braced temporary with members to destroy in co_await.
  OpenAwaiter open{conn, h2::Request{"CONNECT", authority, {}}, std::nullopt};
  Result<h2::Opened> opened = co_await open;
  if (!opened) {
    failure = "open: " + opened.error().message();
    co_return;
  }
  if (opened->response.status != 200 || !opened->tunnel) {
    failure = "status " + std::to_string(opened->response.status);
    co_return;
  }
  Stream& tunnel = *opened->tunnel;
  const auto data = testing::pattern(4096, salt);
  if (auto w = co_await io::write_all(tunnel, data); !w) {
    failure = "write: " + w.error().message();
    co_return;
  }
  if (auto s = tunnel.shutdown_write(); !s) {
    failure = "shutdown: " + s.error().message();
    co_return;
  }
  testing::ReadAll back = co_await testing::read_all(tunnel);
  if (!back.end.ok()) {
    failure = "read: " + back.end.error().message() + " after " + std::to_string(back.bytes.size()) + " bytes";
  } else if (back.bytes != data) {
    failure = "echoed " + std::to_string(back.bytes.size()) + " bytes, not the " + std::to_string(data.size()) + " sent";
  } else {
    failure.clear();
  }
}

// --- the well-behaved side -------------------------------------------------------------

struct Ports {
  uint16_t stats = 0, readiness = 0;
};

struct Observed {
  std::string setup_error;
  Usage before, after;
  int good_ok = 0, good_failed = 0, good_connections = 0;
  std::vector<std::string> good_failures;
  double good_latency_ms_max = 0;
  int probes = 0, ready_failed = 0, metrics_failed = 0;
  std::string metrics_after;
};

struct Phases {
  std::atomic<bool> warm{false};         // the observer took the baseline: attack
  std::atomic<bool> attack_done{false};  // the attacker has spent its budget
  std::atomic<bool> finished{false};
};

class Observer {
 public:
  Observer(Env& env, pid_t pid, Ports ports, std::shared_ptr<const tls::TlsContext> ctx, Pod echo, Phases& phases,
           Observed& out)
      : env_(env), pid_(pid), ports_(ports), ctx_(std::move(ctx)), echo_(std::move(echo)), phases_(phases), out_(out) {}

  Task<void> run() {
    if (!co_await wait_ready()) {
      out_.setup_error = "the node never answered 200 on /healthz/ready";
      co_return;
    }
    for (int i = 0; i < 3; ++i) {
      if (!co_await good_request()) {
        out_.setup_error = "no tunnel to echo before the attack: " + out_.good_failures.back();
        co_return;
      }
    }
    co_await io::sleep(env_.loop, 500ms);
    out_.before = usage_of(pid_);
    phases_.warm = true;
    MonoTime last_probe = env_.clock.now();
    while (!phases_.attack_done) {
      (void)co_await good_request();
      if (env_.clock.now() - last_probe >= 200ms) {
        co_await probe();
        last_probe = env_.clock.now();
      }
      co_await io::sleep(env_.loop, 5ms);
    }
    // Served after it too; then the counters, and the figures once it settled.
    for (int i = 0; i < 3; ++i) (void)co_await good_request();
    co_await probe();
    int status = 0;
    if (!co_await within(env_, http_get(env_, stats(), "/metrics", status, out_.metrics_after), 5s) || status != 200) {
      out_.metrics_after.clear();
    }
    co_await io::sleep(env_.loop, kSettle);
    out_.after = usage_of(pid_);
  }

  void drop_connection() { conn_.reset(); }

 private:
  Endpoint stats() const { return Endpoint{IpAddr::loopback(IpAddr::Family::v4), ports_.stats}; }
  Endpoint readiness() const { return Endpoint{IpAddr::loopback(IpAddr::Family::v4), ports_.readiness}; }

  Task<bool> wait_ready() {
    for (int i = 0; i < 200; ++i) {
      int status = 0;
      std::string body;
      (void)co_await within(env_, http_get(env_, readiness(), "/healthz/ready", status, body), 2s);
      if (status == 200) co_return true;
      co_await io::sleep(env_.loop, 100ms);
    }
    co_return false;
  }

  // Readiness and metrics answer, each within 5 s.
  Task<void> probe() {
    ++out_.probes;
    int status = 0;
    std::string body;
    if (!co_await within(env_, http_get(env_, readiness(), "/healthz/ready", status, body), 5s) || status != 200) {
      ++out_.ready_failed;
    }
    if (!co_await within(env_, http_get(env_, stats(), "/metrics", status, body), 5s) || status != 200 ||
        body.find("istio_build") == std::string::npos) {
      ++out_.metrics_failed;
    }
  }

  // A tunnel on the client's connection (a new one if the last died), 10 s at most.
  Task<bool> good_request() {
    const MonoTime start = env_.clock.now();
    std::string failure;
    if (!conn_ || !conn_->accepting_streams()) {
      conn_.reset();
      std::string error;
      (void)co_await within(env_, connect_h2(env_, ctx_, echo_, kGoodClientIp, nullptr, conn_, error), 10s);
      if (conn_) ++out_.good_connections;
      if (!conn_) failure = "no connection: " + (error.empty() ? std::string("timed out") : error);
    }
    if (conn_) {
      const uint8_t salt = uint8_t(out_.good_ok + out_.good_failed);
      if (!co_await within(env_, good_tunnel(*conn_, echo_.authority, salt, failure), 10s)) {
        failure = "no echo within 10 s (" + failure + ")";
        conn_.reset();
      }
    }
    out_.good_latency_ms_max = std::max(out_.good_latency_ms_max, to_ms(env_.clock.now() - start) * 1.0);
    if (failure.empty()) {
      ++out_.good_ok;
      co_return true;
    }
    ++out_.good_failed;
    if (out_.good_failures.size() < 10) out_.good_failures.push_back(failure);
    co_return false;
  }

  Env& env_;
  pid_t pid_;
  Ports ports_;
  std::shared_ptr<const tls::TlsContext> ctx_;
  Pod echo_;
  Phases& phases_;
  Observed& out_;
  std::unique_ptr<h2::Connection> conn_;
};

// A pod whose dials hang: a listener with a backlog of one, filled by a
// connection nobody accepts, so the kernel drops every later SYN.
struct StalledPod {
  int listener = -1, filler = -1;
  uint16_t port = 0;
  ~StalledPod() {
    if (filler >= 0) ::close(filler);
    if (listener >= 0) ::close(listener);
  }
  bool open(IpAddr ip) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    std::memcpy(&a.sin_addr, ip.data(), 4);
    listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t len = sizeof(a);
    if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(listener, 0) != 0 ||
        getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      return false;
    }
    port = ntohs(a.sin_port);
    filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    return filler >= 0 && connect(filler, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
};

// Whether something already accepts connections on ip:port (a node left
// over from another run would share the pod ports through SO_REUSEPORT).
bool listening(IpAddr ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  std::memcpy(&a.sin_addr, ip.data(), 4);
  a.sin_port = htons(port);
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const bool connected = fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  if (fd >= 0) ::close(fd);
  return connected;
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/zt-rapid-reset.XXXXXX";
    if (mkdtemp(tmpl)) path = tmpl;
  }
  ~TempDir() {
    if (!path.empty() && !keep) std::system(("rm -rf '" + path + "'").c_str());
  }
  bool keep = std::getenv("ZT_E2E_KEEP") != nullptr;  // the node's log, to read after a passing run too
};

std::string goaway_codes(const std::map<uint32_t, uint64_t>& codes) {
  static const std::map<uint32_t, std::string> names{{0x0, "NO_ERROR"}, {0x1, "PROTOCOL_ERROR"},
                                                     {0x2, "INTERNAL_ERROR"}, {0xb, "ENHANCE_YOUR_CALM"}};
  std::string out;
  for (auto [code, n] : codes) {
    auto it = names.find(code);
    out += (out.empty() ? "" : ",") + (it != names.end() ? it->second : "0x" + std::to_string(code)) + "=" +
           std::to_string(n);
  }
  return out.empty() ? "none" : out;
}

TEST(RapidReset, TheNodeStaysUpAndServesOthersWhileAPeerResetsStreams) {
  if (access(ZT_ZTUNNEL_BIN, X_OK) != 0) GTEST_SKIP() << "no ztunnel binary at " << ZT_ZTUNNEL_BIN;
  const auto t0 = std::chrono::steady_clock::now();
  TempDir dir;
  ASSERT_FALSE(dir.path.empty());
  const std::string mesh_path = dir.path + "/mesh.yaml", ca_dir = dir.path + "/ca", log_path = dir.path + "/ztunnel.log";
  { std::ofstream(mesh_path) << kMesh; }
  for (IpAddr ip : {kEchoIp, kStalledIp}) {
    ASSERT_FALSE(listening(ip, 15008)) << "something already listens on " << ip.to_string() << ":15008";
  }
  StalledPod stalled;
  ASSERT_TRUE(stalled.open(kStalledIp)) << "cannot listen on " << kStalledIp.to_string();

  Ports ports{free_port(), free_port()};
  const uint16_t admin_port = free_port();
  const pid_t pid = spawn_ztunnel({"FAKE_CA=true", "XDS_ADDRESS=", "CA_ADDRESS=", "NODE_NAME=rr-node",
                                   "ZTUNNEL_WORKER_THREADS=2",
                                   "CONNECTION_TERMINATION_DEADLINE=2s", "LOCAL_XDS_PATH=" + mesh_path},
                                  {"--listen-on-workload-ips", "--admin-port", std::to_string(admin_port),
                                   "--stats-port", std::to_string(ports.stats), "--readiness-port",
                                   std::to_string(ports.readiness), "--fake-ca-dir", ca_dir},
                                  log_path);
  ASSERT_GT(pid, 0);
  auto give_up = [&](const std::string& why) {
    kill(pid, SIGKILL);
    wait_exit(pid, 5s);
    dir.keep = true;
    return why + "\nztunnel's log (" + log_path + "), last lines:\n" + log_tail(log_path);
  };

  // The attacker and the good client are workloads of the mesh, with
  // certificates from the node's own CA (--fake-ca-dir).
  for (int i = 0; i < 200 && slurp(ca_dir + "/ca-cert.pem").empty(); ++i) usleep(50'000);
  auto root_key = tls::KeyPair::from_pem(slurp(ca_dir + "/ca-key.pem"));
  auto root_cert = tls::Certificate::from_pem(slurp(ca_dir + "/ca-cert.pem"));
  if (!root_key || !root_cert) FAIL() << give_up("no CA in " + ca_dir);
  io::real::Runtime setup_rt;
  auto ca = tls::Ca::from_root(tls::CaOptions{}, setup_rt.env().rng.stream("ca"), std::move(*root_key),
                               std::move(*root_cert));
  ASSERT_TRUE(ca) << ca.error().message();
  auto client_context = [&](const char* service_account) -> std::shared_ptr<const tls::TlsContext> {
    auto issued = ca->issue(tls::Identity("cluster.local", "rr", service_account), 1h, setup_rt.env().clock.wall_now());
    if (!issued) return nullptr;
    tls::TlsConfig tc;
    tc.role = tls::TlsRole::client;
    tc.credentials = std::make_shared<tls::Credentials>(tls::Credentials{issued->chain, std::move(issued->key)});
    tc.roots = ca->trust_bundle();
    auto ctx = tls::TlsContext::create(tc);
    return ctx ? *ctx : nullptr;
  };
  // One context per thread (a context caches verified chains, unlocked).
  auto good_ctx = client_context("client"), attack_ctx = client_context("attacker");
  ASSERT_TRUE(good_ctx && attack_ctx);

  // The observer's thread: the echo pod, the good client, the probes.
  Phases phases;
  Observed observed;
  std::atomic<uint16_t> echo_port{0};
  std::atomic<bool> echo_failed{false};
  std::thread observer_thread([&] {
    io::real::Runtime rt;
    Env& env = rt.env();
    auto echo_l = env.net.listen(Endpoint{kEchoIp, 0}, {});
    if (!echo_l) {
      echo_failed = true;
      phases.finished = true;
      return;
    }
    Scope echo_scope, run_scope;
    echo_scope.spawn(testing::echo_server(**echo_l, echo_scope));
    echo_port = (*echo_l)->local().port;
    Pod echo{{kEchoIp, 15008}, tls::Identity("cluster.local", "rr", "echo"),
             kEchoIp.to_string() + ":" + std::to_string((*echo_l)->local().port)};
    Observer observer(env, pid, ports, good_ctx, echo, phases, observed);
    bool done = false;
    run_scope.spawn([](Observer& o, bool& done) -> Task<void> {
      co_await o.run();
      done = true;
    }(observer, done));
    rt.run_until([&] { return done; }, kAttackTimeLimit + 60s);
    observer.drop_connection();
    run_scope.clear();
    echo_scope.clear();
    phases.finished = true;
  });
  while (!phases.warm && !phases.finished) usleep(10'000);
  if (!phases.warm) {
    observer_thread.join();
    FAIL() << give_up(echo_failed ? "cannot listen on " + kEchoIp.to_string() : observed.setup_error);
  }

  // The attack, on its own thread, with the node sampled meanwhile.
  Sampler sampler(pid);
  std::vector<AttackTally> tallies(kAttackConnections);
  std::atomic<bool> stop_attack{false};
  bool attack_finished = false;
  const auto attack_t0 = std::chrono::steady_clock::now();
  std::thread attacker_thread([&] {
    io::real::Runtime rt;
    Env& env = rt.env();
    Scope scope;
    int running = kAttackConnections;
    for (int i = 0; i < kAttackConnections; ++i) {
      // Half at echo (dials that succeed at once), half at stalled (dials that hang).
      const bool at_echo = i % 2 == 0;
      const IpAddr ip = at_echo ? kEchoIp : kStalledIp;
      Pod pod{{ip, 15008}, tls::Identity("cluster.local", "rr", at_echo ? "echo" : "stalled"),
              ip.to_string() + ":" + std::to_string(at_echo ? echo_port.load() : stalled.port)};
      scope.spawn([](Env& env, std::shared_ptr<const tls::TlsContext> ctx, Pod pod, const std::atomic<bool>& stop,
                     AttackTally& t, int& running) -> Task<void> {
        co_await attack(env, std::move(ctx), std::move(pod), kStreamsPerConnection, stop, t);
        --running;
      }(env, attack_ctx, pod, stop_attack, tallies[size_t(i)], running));
    }
    attack_finished = rt.run_until([&] { return running == 0; }, kAttackTimeLimit);
    stop_attack = true;
    scope.clear();
  });
  attacker_thread.join();
  const double attack_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - attack_t0).count();
  phases.attack_done = true;
  observer_thread.join();
  sampler.stop();

  AttackTally total;
  for (const AttackTally& t : tallies) {
    total.sent += t.sent;
    total.resets += t.resets;
    total.taken += t.taken;
    total.connections += t.connections;
    total.connect_failures += t.connect_failures;
    total.goaways += t.goaways;
    total.ended_without_goaway += t.ended_without_goaway;
    for (auto [code, n] : t.goaway_codes) total.goaway_codes[code] += n;
    for (const auto& [end, n] : t.ends_without_goaway) total.ends_without_goaway[end] += n;
    if (!t.last_error.empty()) total.last_error = t.last_error;
  }
  const Usage peak = sampler.peak();
  const long fd_limit = descriptor_limit(pid);
  const std::string& m = observed.metrics_after;
  const double cancelled = metric_sum(m, "ztunnel_hbone_requests_cancelled_total");
  const double refused_listener = metric_sum(m, "ztunnel_hbone_requests_refused_total", "reason=\"dials_in_flight\"");
  const double refused_peer = metric_sum(m, "ztunnel_hbone_requests_refused_total", "reason=\"peer_dials_in_flight\"");
  const double refused_connection =
      metric_sum(m, "ztunnel_hbone_requests_refused_total", "reason=\"connection_dials_in_flight\"");
  const double refused_dials = refused_listener + refused_peer + refused_connection;
  const double calmed = metric_sum(m, "ztunnel_hbone_requests_refused_total", "reason=\"unanswered_requests\"");
  const double refused_fds = metric_sum(m, "ztunnel_connections_refused_total");
  int status = 0;
  const bool alive = waitpid(pid, &status, WNOHANG) == 0;
  int exit_code = -1;
  if (alive) {
    kill(pid, SIGTERM);
    exit_code = wait_exit(pid, 10s);
  }
  const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string node_log = slurp(log_path);
  // Requests cut short (reset before the answer, refused) are summarized
  // per connection; only tunnels that opened (200) have a record each.
  auto count = [&node_log](std::string_view what) {
    size_t n = 0;
    for (size_t at = node_log.find(what); at != std::string::npos; at = node_log.find(what, at + 1)) ++n;
    return n;
  };
  const size_t summary_lines = count("requests ended before their answer");
  const size_t records = count("\taccess\tconnection complete");
  const double opened = metric_sum(m, "istio_tcp_connections_opened_total");
  std::ostringstream line;
  line.setf(std::ios::fixed);
  line.precision(1);
  line << "rapid reset e2e: descriptors before=" << observed.before.fds << " peak=" << peak.fds
       << " after=" << observed.after.fds << " (limit " << fd_limit << "); RSS kB before=" << observed.before.rss_kb
       << " peak=" << peak.rss_kb << " after=" << observed.after.rss_kb << "; well-behaved tunnels ok="
       << observed.good_ok << " failed=" << observed.good_failed << " (slowest " << observed.good_latency_ms_max
       << " ms, " << observed.good_connections << " connection(s)); probes=" << observed.probes
       << " (readiness failed " << observed.ready_failed << ", metrics failed " << observed.metrics_failed
       << "); attack: streams read by the node=" << total.taken << " (written " << total.sent << ", reset "
       << total.resets << ") in " << attack_s << " s over " << total.connections << " connections ("
       << total.connect_failures << " connect failures), GOAWAYs=" << total.goaways << " ["
       << goaway_codes(total.goaway_codes) << "], ended without GOAWAY=" << total.ended_without_goaway;
  for (const auto& [end, n] : total.ends_without_goaway) line << " [" << end << "]=" << n;
  line.precision(0);
  line << "; node counters: cancelled=" << cancelled << " refused{connection_dials_in_flight}=" << refused_connection
       << " refused{peer_dials_in_flight}=" << refused_peer << " refused{dials_in_flight}=" << refused_listener
       << " refused{unanswered_requests}=" << calmed << " connections_refused=" << refused_fds << "; "
       << sampler.samples() << " samples; node log " << node_log.size() << " bytes (" << records
       << " access records of " << opened << " tunnels opened, " << summary_lines
       << " summaries of requests cut short); test took " << total_s << " s\n";
  std::fputs(line.str().c_str(), stdout);
  std::fflush(stdout);

  EXPECT_TRUE(alive) << "the node died under the attack";
  EXPECT_EQ(exit_code, 0) << "the node did not drain and exit 0 on SIGTERM";
  EXPECT_TRUE(attack_finished) << "the attack did not spend its budget in " << to_ms(kAttackTimeLimit) / 1000
                               << " s; last error: " << total.last_error;
  EXPECT_GE(total.taken, uint64_t(kAttackConnections) * kStreamsPerConnection);
  EXPECT_GE(total.resets * 10, total.sent * 9) << "streams were opened but not reset";
  EXPECT_EQ(observed.good_failed, 0) << [&] {
    std::string all;
    for (const std::string& f : observed.good_failures) all += "\n  " + f;
    return "well-behaved tunnels failed:" + all;
  }();
  EXPECT_GE(observed.good_ok, 10);
  EXPECT_EQ(observed.ready_failed, 0) << "readiness stopped answering during the attack";
  EXPECT_EQ(observed.metrics_failed, 0) << "the stats port stopped answering during the attack";
  EXPECT_GE(observed.probes, 1);
  ASSERT_GT(observed.before.fds, 0);
  EXPECT_LE(observed.after.fds, observed.before.fds + kDescriptorsAfterAboveBaselineMax)
      << "descriptors did not come back after the attack";
  EXPECT_LT(peak.fds, observed.before.fds + kPeakDescriptorsAboveBaselineMax) << "descriptors piled up";
  if (fd_limit > 0) {
    EXPECT_LT(peak.fds, fd_limit / 2);
  }
#if !defined(__SANITIZE_ADDRESS__)
  // Under ASan freed memory sits in its quarantine, so RSS after the attack
  // says nothing about the proxy; the bound holds in plain builds.
  EXPECT_LE(observed.after.rss_kb, observed.before.rss_kb + kRssAfterAboveBaselineKbMax) << "RSS stayed up";
#endif
  EXPECT_FALSE(m.empty()) << "no /metrics after the attack";
  EXPECT_LE(double(records), opened) << "requests that never opened a tunnel were logged one by one";
  EXPECT_GE(summary_lines, 1u);
  // The well-behaved client's peer never reached the listener's bound.
  EXPECT_EQ(refused_listener, 0) << "the listener's dial bound was reached";
  EXPECT_GT(cancelled + refused_dials + calmed, 0) << "neither cancelled nor refused requests were counted";
  // Nearly every stream the node read was reset before its answer: its dial
  // stopped (cancelled) or never started (refused).
  EXPECT_GE(cancelled + refused_dials, 0.5 * double(total.taken)) << "the node did not see the resets";
  if (HasFailure()) {
    dir.keep = true;
    std::printf("ztunnel's log: %s; last lines:\n%s", log_path.c_str(), log_tail(log_path, 20).c_str());
  }
}

}  // namespace
}  // namespace zt::e2e
