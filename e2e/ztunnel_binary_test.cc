// The ztunnel binary as a process: a bad setting or a broken local config
// file exits with 2 and names the problem; in local mode it serves config
// dump, metrics and readiness, and POST /quitquitquit stops it cleanly.
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "core/admin/admin_conformance.h"
#include "io/real/runtime.h"

extern char** environ;

// Only the HTTP client of admin_conformance.h is used here, not its suite.
namespace zt::admin {
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(AdminConformance);
}  // namespace zt::admin

namespace zt {
namespace {

struct Exit {
  int code = -1;
  std::string stderr_text;
};

// Starts the binary with `env` (added to ours) and `args`; returns its pid
// and the read end of its stderr.
std::pair<pid_t, int> spawn(const std::vector<std::string>& env, const std::vector<std::string>& args) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
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
  while ((n = read(err_fd, buf, sizeof(buf))) > 0) out.stderr_text.append(buf, size_t(n));
  close(err_fd);
  int status = 0;
  waitpid(pid, &status, 0);
  out.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

uint16_t free_port() {
  real::Runtime rt;
  auto l = rt.env().net.listen(Endpoint{IpAddr::loopback(IpAddr::Family::v4), 0}, {});
  return (*l)->local().port;
}

const std::string kTestdata = ZT_MESH_TESTDATA;

TEST(ZtunnelBinary, ABadSettingExitsWithTwoAndNamesIt) {
  auto [pid, err] = spawn({"ZTUNNEL_WORKER_THREADS=abc"}, {});
  Exit e = wait_exit(pid, err);
  EXPECT_EQ(e.code, 2);
  EXPECT_NE(e.stderr_text.find("ZTUNNEL_WORKER_THREADS=\"abc\""), std::string::npos) << e.stderr_text;
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
  EXPECT_NE(e.stderr_text.find("broken_syntax.yaml:"), std::string::npos) << e.stderr_text;
}

TEST(ZtunnelBinary, LocalModeServesAdminStatsAndReadinessAndQuits) {
  const uint16_t admin_port = free_port(), stats_port = free_port();
  auto [pid, err] = spawn({"FAKE_CA=true", "XDS_ADDRESS=", "CA_ADDRESS=",
                           "LOCAL_XDS_PATH=" + kTestdata + "/localhost.yaml"},
                          {"--admin-port", std::to_string(admin_port), "--stats-port", std::to_string(stats_port)});
  real::Runtime rt;
  const IpAddr lo = IpAddr::loopback(IpAddr::Family::v4);
  auto fetch = [&](uint16_t port, std::string request) {
    admin::ClientResponse r;
    for (int attempt = 0; attempt < 50 && r.status == 0; ++attempt) {  // until it listens
      if (attempt) usleep(100'000);
      r = {};
      bool done = false;
      Scope s;
      s.spawn([](Env& env, Endpoint to, std::string req, admin::ClientResponse& out, bool& done) -> Task<void> {
        co_await admin::http_exchange(env, to, std::move(req), out);
        done = true;
      }(rt.env(), Endpoint{lo, port}, request, r, done));
      rt.run_until([&] { return done; }, std::chrono::seconds(5));
    }
    return r;
  };
  auto ready = fetch(15021, admin::get("/healthz/ready"));
  EXPECT_EQ(ready.status, 500);  // the proxy listeners are not there yet, and it says so
  EXPECT_NE(ready.body.find("proxy listeners"), std::string::npos) << ready.body;
  auto metrics = fetch(stats_port, admin::get("/stats/prometheus"));
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("istio_build{component=\"ztunnel\""), std::string::npos);
  auto dump = fetch(admin_port, admin::get("/config_dump"));
  EXPECT_EQ(dump.status, 200);
  EXPECT_NE(dump.body.find("\"workloads\""), std::string::npos) << dump.body.substr(0, 200);
  auto quit = fetch(admin_port, admin::post("/quitquitquit"));
  EXPECT_EQ(quit.status, 200);
  Exit e = wait_exit(pid, err);
  EXPECT_EQ(e.code, 0) << e.stderr_text;
  EXPECT_NE(e.stderr_text.find("fips=false"), std::string::npos) << e.stderr_text;
}

}  // namespace
}  // namespace zt
