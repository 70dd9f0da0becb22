// The ztunnel binary as a process: a bad setting or a broken local config
// file exits with 2 and names the problem; in local mode it serves config
// dump, metrics and readiness, carries a SOCKS5 client's bytes over HBONE
// (mTLS + HTTP/2, certificates from its own CA) through its inbound side,
// enforces the local policy there, and POST /quitquitquit stops it cleanly.
// These cases bind ztunnel's fixed ports on loopback, so ctest runs them one
// at a time (RESOURCE_LOCK).
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "testing/admin_conformance.h"
#include "core/hbone/pool.h"
#include "tls/ca.h"
#include "tls/cert.h"
#include "io/real/runtime.h"

extern char** environ;

// Only the HTTP client of admin_conformance.h is used here, not its suite.
namespace zt::e2e {

using namespace zt::core::admin;

using namespace zt::testing;
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(AdminConformance);
}  // namespace zt::e2e

namespace zt::e2e {
namespace {

struct Exit {
  int code = -1;
  std::string output;
};

// Starts the binary with `env` (added to ours) and `args`; returns its pid
// and the read end of its stderr.
std::pair<pid_t, int> spawn(const std::vector<std::string>& env, const std::vector<std::string>& args) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);  // the log, as upstream's, is on stdout
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  std::vector<std::string> all_env(env);
  for (char** e = environ; *e; ++e) all_env.emplace_back(*e);
  std::vector<char*> envp, argv{const_cast<char*>(ZT_ZTUNNEL_BIN)};
  for (auto& e : all_env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args_copy(args);
  for (auto& a : args_copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, ZT_ZTUNNEL_BIN, &actions, nullptr, argv.data(), envp.data()), 0);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  return {pid, fds[0]};
}

Exit wait_exit(pid_t pid, int err_fd) {
  Exit out;
  char buf[4096];
  ssize_t n;
  while ((n = read(err_fd, buf, sizeof(buf))) > 0) out.output.append(buf, size_t(n));
  close(err_fd);
  int status = 0;
  waitpid(pid, &status, 0);
  out.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

uint16_t free_port() {
  io::real::Runtime rt;
  auto l = rt.env().net.listen(Endpoint{IpAddr::loopback(IpAddr::Family::v4), 0}, {});
  return (*l)->local().port;
}

const std::string kTestdata = ZT_MESH_TESTDATA;

TEST(ZtunnelBinary, ABadSettingExitsWithTwoAndNamesIt) {
  auto [pid, err] = spawn({"ZTUNNEL_WORKER_THREADS=abc"}, {});
  Exit e = wait_exit(pid, err);
  EXPECT_EQ(e.code, 2);
  // One log line, upstream's shape, the value escaped inside the quoted field.
  EXPECT_NE(e.output.find("\terror\tapp\tinvalid configuration\terror=\"ZTUNNEL_WORKER_THREADS=\\\"abc\\\": "),
            std::string::npos)
      << e.output;
}

TEST(ZtunnelBinary, ABadFlagExitsWithTwo) {
  auto [pid, err] = spawn({}, {"--no-such-flag"});
  EXPECT_EQ(wait_exit(pid, err).code, 2);
}

TEST(ZtunnelBinary, ABrokenLocalConfigExitsWithTwoAndNamesTheLine) {
  auto [pid, err] = spawn({"FAKE_CA=true", "XDS_ADDRESS=", "CA_ADDRESS=",
                           "LOCAL_XDS_PATH=" + kTestdata + "/broken_syntax.yaml"},
                          {});
  Exit e = wait_exit(pid, err);
  EXPECT_EQ(e.code, 2);
  EXPECT_NE(e.output.find("broken_syntax.yaml:"), std::string::npos) << e.output;
}

TEST(ZtunnelBinary, LocalModeServesAdminStatsAndReadinessAndQuits) {
  const uint16_t admin_port = free_port(), stats_port = free_port();
  auto [pid, err] = spawn({"FAKE_CA=true", "XDS_ADDRESS=", "CA_ADDRESS=",
                           "LOCAL_XDS_PATH=" + kTestdata + "/localhost.yaml"},
                          {"--admin-port", std::to_string(admin_port), "--stats-port", std::to_string(stats_port)});
  io::real::Runtime rt;
  const IpAddr lo = IpAddr::loopback(IpAddr::Family::v4);
  auto fetch = [&](uint16_t port, std::string request) {
    testing::ClientResponse r;
    for (int attempt = 0; attempt < 50 && r.status == 0; ++attempt) {  // until it listens
      if (attempt) usleep(100'000);
      r = {};
      bool done = false;
      Scope s;
      s.spawn([](Env& env, Endpoint to, std::string req, testing::ClientResponse& out, bool& done) -> Task<void> {
        co_await testing::http_exchange(env, to, std::move(req), out);
        done = true;
      }(rt.env(), Endpoint{lo, port}, request, r, done));
      rt.run_until([&] { return done; }, std::chrono::seconds(5));
    }
    return r;
  };
  auto ready = fetch(15021, testing::get("/healthz/ready"));
  EXPECT_EQ(ready.status, 200) << ready.body;
  auto metrics = fetch(stats_port, testing::get("/stats/prometheus"));
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("istio_build{component=\"ztunnel\""), std::string::npos);
  auto dump = fetch(admin_port, testing::get("/config_dump"));
  EXPECT_EQ(dump.status, 200);
  auto json = nlohmann::json::parse(dump.body, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(json.is_discarded()) << dump.body.substr(0, 200);
  EXPECT_EQ(json["workloads"].size(), 2u);
  EXPECT_TRUE(json["certificates"].is_array());
  auto set_level = fetch(admin_port, testing::post("/logging?level=warn,access=off"));
  EXPECT_EQ(set_level.status, 200) << set_level.body;
  auto level = fetch(admin_port, testing::post("/logging"));
  EXPECT_NE(level.body.find("warn,access=off"), std::string::npos) << level.body;
  EXPECT_EQ(fetch(admin_port, testing::post("/logging?level=loud")).status, 400);
  auto quit = fetch(admin_port, testing::post("/quitquitquit"));
  EXPECT_EQ(quit.status, 200);
  Exit e = wait_exit(pid, err);
  EXPECT_EQ(e.code, 0) << e.output;
  EXPECT_NE(e.output.find("fips=false"), std::string::npos) << e.output;
}

// A SOCKS5 CONNECT through the running binary to `dst`; returns what came back.
Task<void> socks_exchange(Env& env, Endpoint dst, std::vector<uint8_t> data, testing::ReadAll& out, bool& replied) {
  auto s = co_await io::connect(env, Endpoint{IpAddr::loopback(IpAddr::Family::v4), 15080}, {}, std::chrono::seconds(5));
  if (!s) co_return;
  std::vector<uint8_t> req{5, 1, 0, 5, 1, 0, 1};
  req.insert(req.end(), dst.ip.data(), dst.ip.data() + 4);
  req.push_back(uint8_t(dst.port >> 8));
  req.push_back(uint8_t(dst.port));
  (void)co_await io::write_all(**s, req);
  std::vector<uint8_t> head(12);
  size_t got = 0;
  while (got < head.size()) {
    auto n = co_await io::read(**s, MutableBytes(head).subspan(got));
    if (!n || *n == 0) co_return;
    got += *n;
  }
  replied = head[1] == 0 && head[3] == 0;
  // A reset can reach us while we still write: the write then takes the
  // error and the read after it sees a plain end. Either shows the reset.
  bool write_failed = false;
  if (!data.empty()) write_failed = !(co_await io::write_all(**s, data)).ok();
  write_failed = write_failed || !(*s)->shutdown_write().ok();
  out = co_await testing::read_all(**s);
  if (write_failed && out.end.ok()) out.end = Error(Errc::connection_reset, "reset while writing");
}

Task<void> echo_once(Listener& l, int& accepted) {
  auto s = co_await io::accept(l);
  if (!s) co_return;
  ++accepted;
  std::vector<uint8_t> buf(65536);
  for (;;) {
    auto n = co_await io::read(**s, buf);
    if (!n || *n == 0) break;
    if (!co_await io::write_all(**s, ConstBytes(buf).first(*n))) co_return;
  }
  (void)(*s)->shutdown_write();
}

TEST(ZtunnelBinary, LocalModeCarriesTrafficOverHboneAndEnforcesPolicy) {
  const uint16_t admin_port = free_port(), stats_port = free_port();
  auto [pid, err] = spawn({"FAKE_CA=true", "XDS_ADDRESS=", "CA_ADDRESS=", "UNSTABLE_ENABLE_SOCKS5=true",
                           "LOCAL_XDS_PATH=" + kTestdata + "/localhost.yaml"},
                          {"--admin-port", std::to_string(admin_port), "--stats-port", std::to_string(stats_port)});
  io::real::Runtime rt;
  const IpAddr lo = IpAddr::loopback(IpAddr::Family::v4);
  // Wait until it is ready.
  for (int i = 0; i < 50; ++i) {
    testing::ClientResponse r;
    bool done = false;
    Scope s;
    s.spawn([](Env& env, Endpoint to, testing::ClientResponse& out, bool& done) -> Task<void> {
      co_await testing::http_exchange(env, to, testing::get("/healthz/ready"), out);
      done = true;
    }(rt.env(), Endpoint{lo, 15021}, r, done));
    rt.run_until([&] { return done; }, std::chrono::seconds(5));
    if (r.status == 200) break;
    usleep(100'000);
  }
  // The local workload (127.0.0.1, HBONE) talks to itself: out through
  // SOCKS5, over HBONE to 15008, policy, then our echo server.
  auto echo_l = rt.env().net.listen(Endpoint{lo, 0}, {});
  auto denied_l = rt.env().net.listen(Endpoint{lo, 9999}, {});  // the sample policy forbids port 9999
  ASSERT_TRUE(echo_l && denied_l);
  int echo_accepted = 0, denied_accepted = 0;
  const auto data = testing::pattern(200000, 1);
  testing::ReadAll echoed, refused;
  bool replied = false, replied_denied = false;
  Scope servers, clients;
  servers.spawn(echo_once(**echo_l, echo_accepted));
  servers.spawn(echo_once(**denied_l, denied_accepted));
  bool done = false;
  clients.spawn([](Env& env, Endpoint ok_dst, Endpoint denied_dst, std::vector<uint8_t> data, testing::ReadAll& echoed,
                   testing::ReadAll& refused, bool& replied, bool& replied_denied, bool& done) -> Task<void> {
    co_await socks_exchange(env, ok_dst, data, echoed, replied);
    std::vector<uint8_t> small(100, 7);
    co_await socks_exchange(env, denied_dst, small, refused, replied_denied);
    done = true;
  }(rt.env(), (*echo_l)->local(), Endpoint{lo, 9999}, data, echoed, refused, replied, replied_denied, done));
  rt.run_until([&] { return done; }, std::chrono::seconds(20));
  EXPECT_TRUE(done);
  EXPECT_TRUE(replied);
  EXPECT_TRUE(echoed.end.ok() && *echoed.end == 0);
  EXPECT_TRUE(echoed.bytes == data) << echoed.bytes.size() << " bytes came back";
  EXPECT_EQ(echo_accepted, 1);
  EXPECT_FALSE(refused.end.ok());  // reset: the inbound side refused it (401)
  EXPECT_EQ(denied_accepted, 0);   // and never connected to the server
  // Both ends of the proxy reported the connection. They run on worker
  // threads of their own, so the inbound side's report may land a moment
  // after the client saw its reset: scrape until it is there (at most 5 s).
  testing::ClientResponse metrics;
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (attempt) usleep(100'000);
    metrics = {};
    bool got_metrics = false;
    Scope m;
    m.spawn([](Env& env, Endpoint to, testing::ClientResponse& out, bool& done) -> Task<void> {
      co_await testing::http_exchange(env, to, testing::get("/stats/prometheus"), out);
      done = true;
    }(rt.env(), Endpoint{lo, stats_port}, metrics, got_metrics));
    rt.run_until([&] { return got_metrics; }, std::chrono::seconds(5));
    if (metrics.body.find("response_flags=\"DENY\"") != std::string::npos) break;
  }
  EXPECT_NE(metrics.body.find("istio_tcp_connections_opened_total{"), std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("reporter=\"destination\""), std::string::npos);
  EXPECT_NE(metrics.body.find("response_flags=\"DENY\""), std::string::npos);
  servers.clear();
  clients.clear();
  kill(pid, SIGTERM);
  Exit e = wait_exit(pid, err);
  EXPECT_EQ(e.code, 0) << e.output;
  // One access log line each, from both directions of the proxy.
  EXPECT_NE(e.output.find("\tinfo\taccess\tconnection complete\t"), std::string::npos);
  EXPECT_NE(e.output.find("direction=\"inbound\""), std::string::npos);
  EXPECT_NE(e.output.find("response_flags=\"DENY\""), std::string::npos) << e.output;
}

// SIGTERM drains: no new connections, the open one keeps working until
// CONNECTION_TERMINATION_DEADLINE, then the process exits 0.
// A tunnel through the binary's SOCKS5 port to `dst`, retried until the
// binary listens (null after 5 s).
StreamPtr open_socks_tunnel(io::real::Runtime& rt, Endpoint dst) {
  Env& env = rt.env();
  StreamPtr tunnel;
  for (int i = 0; i < 50 && !tunnel; ++i) {
    bool done = false;
    Scope s;
    s.spawn([](Env& env, Endpoint dst, StreamPtr& out, bool& done) -> Task<void> {
      auto c = co_await io::connect(env, Endpoint{IpAddr::loopback(IpAddr::Family::v4), 15080}, {}, std::chrono::seconds(2));
      if (c) {
        std::vector<uint8_t> req{5, 1, 0, 5, 1, 0, 1};
        req.insert(req.end(), dst.ip.data(), dst.ip.data() + 4);
        req.push_back(uint8_t(dst.port >> 8));
        req.push_back(uint8_t(dst.port));
        std::vector<uint8_t> head(12);
        size_t got = 0;
        if (co_await io::write_all(**c, req)) {
          while (got < head.size()) {
            auto n = co_await io::read(**c, MutableBytes(head).subspan(got));
            if (!n || *n == 0) break;
            got += *n;
          }
        }
        if (got == head.size() && head[3] == 0) out = std::move(*c);
      }
      done = true;
    }(env, dst, tunnel, done));
    // An attempt that hangs (the process still starting) is dropped and retried.
    rt.run_until([&] { return done; }, std::chrono::seconds(2));
    if (!tunnel) usleep(100'000);
  }
  return tunnel;
}

// Dedicated mode (PROXY_MODE=dedicated): the proxy serves the one workload
// PROXY_WORKLOAD_INFO names, whatever address a client comes from. Naming
// the local workload, traffic flows; naming one the state does not have,
// outbound has no source and refuses.
TEST(ZtunnelBinary, DedicatedModeServesTheNamedWorkloadOnly) {
  for (const bool known : {true, false}) {
    SCOPED_TRACE(known ? "the named workload exists" : "the named workload does not exist");
    const uint16_t admin_port = free_port(), stats_port = free_port();
    auto [pid, err] = spawn({"FAKE_CA=true", "XDS_ADDRESS=", "CA_ADDRESS=", "UNSTABLE_ENABLE_SOCKS5=true",
                             "PROXY_MODE=dedicated",
                             std::string("PROXY_WORKLOAD_INFO=") + (known ? "default/local/default" : "default/gone/default"),
                             "LOCAL_XDS_PATH=" + kTestdata + "/localhost.yaml"},
                            {"--admin-port", std::to_string(admin_port), "--stats-port", std::to_string(stats_port)});
    io::real::Runtime rt;
    const IpAddr lo = IpAddr::loopback(IpAddr::Family::v4);
    auto echo_l = rt.env().net.listen(Endpoint{lo, 0}, {});
    ASSERT_TRUE(echo_l);
    int echo_accepted = 0;
    Scope servers;
    servers.spawn(echo_once(**echo_l, echo_accepted));
    StreamPtr tunnel = open_socks_tunnel(rt, (*echo_l)->local());
    if (known) {
      ASSERT_TRUE(tunnel) << "SOCKS5 through the dedicated proxy";
    }
    if (tunnel) {
      const auto data = testing::pattern(1000, 3);
      bool done = false;
      testing::ReadAll echoed;
      Scope c;
      c.spawn([](Stream& s, std::vector<uint8_t> data, testing::ReadAll& out, bool& done) -> Task<void> {
        (void)co_await io::write_all(s, data);
        (void)s.shutdown_write();
        out = co_await testing::read_all(s);
        done = true;
      }(*tunnel, data, echoed, done));
      rt.run_until([&] { return done; }, std::chrono::seconds(10));
      EXPECT_EQ(echoed.bytes == data, known);
    }
    EXPECT_EQ(echo_accepted, known ? 1 : 0) << "without a source workload nothing is carried";
    tunnel.reset();
    servers.clear();
    kill(pid, SIGTERM);
    Exit e = wait_exit(pid, err);
    EXPECT_EQ(e.code, 0) << e.output;
    if (known) {
      EXPECT_NE(e.output.find("src.identity=\"spiffe://cluster.local/ns/default/sa/default\""), std::string::npos)
          << e.output;
    }
  }
}

TEST(ZtunnelBinary, SigtermDrainsOpenConnectionsUntilTheDeadline) {
  const uint16_t admin_port = free_port(), stats_port = free_port();
  auto [pid, err] = spawn({"FAKE_CA=true", "XDS_ADDRESS=", "CA_ADDRESS=", "UNSTABLE_ENABLE_SOCKS5=true",
                           "CONNECTION_TERMINATION_DEADLINE=1s", "LOCAL_XDS_PATH=" + kTestdata + "/localhost.yaml"},
                          {"--admin-port", std::to_string(admin_port), "--stats-port", std::to_string(stats_port)});
  io::real::Runtime rt;
  Env& env = rt.env();
  const IpAddr lo = IpAddr::loopback(IpAddr::Family::v4);
  auto echo_l = env.net.listen(Endpoint{lo, 0}, {});
  ASSERT_TRUE(echo_l);
  int accepted = 0;
  Scope servers;
  servers.spawn(echo_once(**echo_l, accepted));
  // Open a tunnel through SOCKS5 (retrying until the binary listens) and keep it.
  StreamPtr tunnel = open_socks_tunnel(rt, (*echo_l)->local());
  if (!tunnel) {
    kill(pid, SIGKILL);
    FAIL() << "no tunnel through SOCKS5; ztunnel said:\n" << wait_exit(pid, err).output;
  }
  auto echo = [&](uint8_t v) {
    bool ok = false, done = false;
    Scope s;
    s.spawn([](Stream& t, uint8_t v, bool& ok, bool& done) -> Task<void> {
      const uint8_t out[] = {v};
      uint8_t back[1] = {0};
      ok = (co_await io::write_all(t, out)).ok();
      auto n = co_await io::read(t, back);
      ok = ok && n && *n == 1 && back[0] == v;
      done = true;
    }(*tunnel, v, ok, done));
    rt.run_until([&] { return done; }, std::chrono::seconds(5));
    return ok;
  };
  EXPECT_TRUE(echo(1));
  const auto t0 = std::chrono::steady_clock::now();
  kill(pid, SIGTERM);
  usleep(300'000);
  EXPECT_TRUE(echo(2)) << "the open connection works while draining";
  bool refused = false, tried = false;
  Scope s;
  s.spawn([](Env& env, bool& refused, bool& tried) -> Task<void> {
    auto c = co_await io::connect(env, Endpoint{IpAddr::loopback(IpAddr::Family::v4), 15080}, {}, std::chrono::seconds(2));
    refused = !c;
    tried = true;
  }(env, refused, tried));
  rt.run_until([&] { return tried; }, std::chrono::seconds(5));
  EXPECT_TRUE(refused) << "new connections are refused while draining";
  Exit e = wait_exit(pid, err);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(e.code, 0) << e.output;
  EXPECT_GE(took, 0.9);  // held open until the deadline...
  EXPECT_LT(took, 5.0);  // ...and not much longer
  EXPECT_NE(e.output.find("\tinfo\tdrain\tdraining\t"), std::string::npos) << e.output;
  servers.clear();
}

// A second signal while draining exits at once, as upstream's double
// Ctrl+C, instead of waiting for connections until the deadline.
TEST(ZtunnelBinary, ASecondSignalWhileDrainingExitsAtOnce) {
  const uint16_t admin_port = free_port(), stats_port = free_port();
  auto [pid, err] = spawn({"FAKE_CA=true", "XDS_ADDRESS=", "CA_ADDRESS=", "UNSTABLE_ENABLE_SOCKS5=true",
                           "CONNECTION_TERMINATION_DEADLINE=30s", "LOCAL_XDS_PATH=" + kTestdata + "/localhost.yaml"},
                          {"--admin-port", std::to_string(admin_port), "--stats-port", std::to_string(stats_port)});
  io::real::Runtime rt;
  const IpAddr lo = IpAddr::loopback(IpAddr::Family::v4);
  auto echo_l = rt.env().net.listen(Endpoint{lo, 0}, {});
  ASSERT_TRUE(echo_l);
  int accepted = 0;
  Scope servers;
  servers.spawn(echo_once(**echo_l, accepted));
  StreamPtr tunnel = open_socks_tunnel(rt, (*echo_l)->local());
  ASSERT_TRUE(tunnel) << "no tunnel through SOCKS5";
  // One byte there and back: the tunnel is up end to end before the drain.
  bool echoed = false, done = false;
  Scope s;
  s.spawn([](Stream& t, bool& ok, bool& done) -> Task<void> {
    std::array<uint8_t, 1> out{7}, back{};
    ok = (co_await io::write_all(t, out)).ok();
    auto n = co_await io::read(t, back);
    ok = ok && n && *n == 1 && back[0] == 7;
    done = true;
  }(*tunnel, echoed, done));
  rt.run_until([&] { return done; }, std::chrono::seconds(5));
  ASSERT_TRUE(echoed);
  kill(pid, SIGTERM);
  usleep(500'000);
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, WNOHANG), 0) << "still draining: a connection is open";
  const auto t0 = std::chrono::steady_clock::now();
  kill(pid, SIGINT);
  Exit e = wait_exit(pid, err);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(e.code, 0) << e.output;
  EXPECT_LT(took, 3.0) << "did not wait for the 30 s deadline";
  EXPECT_NE(e.output.find("second signal while draining: exiting now"), std::string::npos) << e.output;
  servers.clear();
}

// Upstream's commands, as Istio's chart and operators use them.
TEST(ZtunnelBinary, UpstreamsCommands) {
  auto [vpid, verr] = spawn({"ISTIO_META_ISTIO_VERSION=1.28.0"}, {"version"});
  Exit v = wait_exit(vpid, verr);
  EXPECT_EQ(v.code, 0);
  EXPECT_EQ(v.output.find("version.BuildInfo{Version:\""), 0u) << v.output;
  EXPECT_NE(v.output.find("IstioVersion:\"1.28.0\""), std::string::npos) << v.output;
  auto [hpid, herr] = spawn({}, {"help"});
  Exit h = wait_exit(hpid, herr);
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.output.find("proxy (default) - Start the ztunnel proxy"), std::string::npos) << h.output;
  auto [upid, uerr] = spawn({}, {"bogus"});
  Exit u = wait_exit(upid, uerr);
  EXPECT_EQ(u.code, 2);
  EXPECT_NE(u.output.find("unknown command: bogus"), std::string::npos) << u.output;
  // "proxy ztunnel" (the chart's arguments) runs the proxy: here it gets as
  // far as the broken mesh file.
  auto [ppid, perr] = spawn({"FAKE_CA=true", "XDS_ADDRESS=", "CA_ADDRESS=",
                             "LOCAL_XDS_PATH=" + kTestdata + "/broken_syntax.yaml"},
                            {"proxy", "ztunnel"});
  Exit p = wait_exit(ppid, perr);
  EXPECT_EQ(p.code, 2);
  EXPECT_NE(p.output.find("broken_syntax.yaml:"), std::string::npos) << p.output;
}

// LOG_FORMAT=json: one JSON object per line, upstream's keys.
TEST(ZtunnelBinary, JsonLogsAreOneObjectPerLine) {
  auto [pid, err] = spawn({"LOG_FORMAT=json", "ZTUNNEL_WORKER_THREADS=abc"}, {});
  Exit e = wait_exit(pid, err);
  EXPECT_EQ(e.code, 2);
  std::istringstream lines(e.output);
  int objects = 0;
  for (std::string line; std::getline(lines, line);) {
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(j.is_discarded()) << line;
    EXPECT_EQ(j["level"], "error");
    EXPECT_EQ(j["scope"], "app");
    EXPECT_EQ(j["message"], "invalid configuration");
    EXPECT_EQ(j["error"], "ZTUNNEL_WORKER_THREADS=\"abc\": not a positive integer");
    EXPECT_EQ(std::string(j["time"]).size(), 27u);  // 2026-12-04T15:04:47.123456Z
    ++objects;
  }
  EXPECT_EQ(objects, 1) << e.output;
}

}  // namespace
}  // namespace zt::e2e

namespace zt::e2e {
namespace {

std::string slurp(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return {};
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

// HBONE straight to the binary's 15008, as another node's ztunnel would:
// with a workload certificate from the same fake CA (--fake-ca-dir), the
// inbound side answers 200 for an allowed target, 401 for one the policy
// denies and 503 for a target it does not know.
TEST(ZtunnelBinary, InboundHboneAnswers200And401And503) {
  char dir_template[] = "/tmp/zt-e2e-ca.XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string ca_dir = dir_template;
  const uint16_t admin_port = free_port(), stats_port = free_port();
  auto [pid, err] = spawn({"FAKE_CA=true", "XDS_ADDRESS=", "CA_ADDRESS=", "LOCAL_XDS_PATH=" + kTestdata + "/localhost.yaml"},
                          {"--admin-port", std::to_string(admin_port), "--stats-port", std::to_string(stats_port),
                           "--fake-ca-dir", ca_dir});
  // The binary writes the CA's root on start-up.
  for (int i = 0; i < 100 && slurp(ca_dir + "/ca-cert.pem").empty(); ++i) usleep(50'000);
  auto root_key = tls::KeyPair::from_pem(slurp(ca_dir + "/ca-key.pem"));
  auto root_cert = tls::Certificate::from_pem(slurp(ca_dir + "/ca-cert.pem"));
  if (!root_key || !root_cert) {
    kill(pid, SIGKILL);
    FAIL() << "no CA in " << ca_dir << "; ztunnel said:\n" << wait_exit(pid, err).output;
  }
  io::real::Runtime rt;
  Env& env = rt.env();
  auto ca = tls::Ca::from_root(tls::CaOptions{}, env.rng.stream("ca"), std::move(*root_key), std::move(*root_cert));
  ASSERT_TRUE(ca) << ca.error().message();
  const tls::Identity me("cluster.local", "default", "default");
  auto issued = ca->issue(me, std::chrono::hours(1), env.clock.wall_now());
  ASSERT_TRUE(issued);
  tls::TlsConfig tc;
  tc.role = tls::TlsRole::client;
  tc.credentials = std::make_shared<tls::Credentials>(tls::Credentials{issued->chain, std::move(issued->key)});
  tc.roots = ca->trust_bundle();
  auto ctx = tls::TlsContext::create(tc);
  ASSERT_TRUE(ctx);
  core::hbone::Pool pool(env, {}, [&](const core::hbone::PoolKey&) -> Result<std::shared_ptr<const tls::TlsContext>> {
    return *ctx;
  });

  const IpAddr lo = IpAddr::loopback(IpAddr::Family::v4);
  auto server = env.net.listen(Endpoint{lo, 0}, {});
  ASSERT_TRUE(server);
  int accepted = 0;
  Scope servers;
  servers.spawn(echo_once(**server, accepted));
  auto status_of = [&](std::string authority) {
    int status = -1;
    bool done = false;
    Scope s;
    s.spawn([](core::hbone::Pool& pool, std::string me, std::string authority, int& status, bool& done) -> Task<void> {
      core::hbone::PoolKey key;
      key.source_identity = me;
      key.destination_identities = {"spiffe://cluster.local/ns/default/sa/default"};
      key.destination = Endpoint{IpAddr::loopback(IpAddr::Family::v4), 15008};
      key.source_ip = IpAddr::loopback(IpAddr::Family::v4);
      h2::Request req;
      req.method = "CONNECT";
      req.authority = authority;
      auto opened = co_await pool.open(key, req);
      status = opened ? opened->response.status : 0;
      if (opened && opened->tunnel) opened->tunnel->abort();
      done = true;
    }(pool, me.to_string(), std::move(authority), status, done));
    rt.run_until([&] { return done; }, std::chrono::seconds(5));
    return status;
  };
  // Until the binary listens, the pool's connection fails (status 0).
  int allowed = 0;
  for (int i = 0; i < 50 && allowed <= 0; ++i) {
    if (i) usleep(100'000);
    allowed = status_of("127.0.0.1:" + std::to_string((*server)->local().port));
  }
  EXPECT_EQ(allowed, 200);
  EXPECT_EQ(status_of("127.0.0.1:9999"), 401);  // the sample policy forbids port 9999
  EXPECT_EQ(status_of("127.0.0.77:8080"), 503);  // no such workload
  servers.clear();
  kill(pid, SIGTERM);
  Exit e = wait_exit(pid, err);
  EXPECT_EQ(e.code, 0) << e.output;
  std::remove((ca_dir + "/ca-cert.pem").c_str());
  std::remove((ca_dir + "/ca-key.pem").c_str());
  rmdir(ca_dir.c_str());
}

}  // namespace
}  // namespace zt::e2e
