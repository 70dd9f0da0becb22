// The ztunnel binary's entry: upstream's commands (`proxy`, the default, as
// Istio's chart passes it: `ztunnel proxy ztunnel`; `version`; `help`), then
// the configuration (environment and flags, exit 2 on any bad value), the
// log, and the app (app.h) until it has drained.
//
//   FAKE_CA=true XDS_ADDRESS= LOCAL_XDS_PATH=examples/localhost.yaml ./ztunnel proxy ztunnel
#include <algorithm>
#include <cstdio>
#include <thread>

#include "app/app.h"
#include "app/config.h"
#include "app/logging.h"
#include "app/signals.h"
#include "app/version.h"
#include "tls/context.h"
#include "io/real/process_log.h"

extern char** environ;

#ifdef ZT_JEMALLOC
// Read by jemalloc at start-up:
// - a background thread returns freed pages to the OS within about a
//   second, so RSS falls back after a burst of connections instead of
//   staying at its peak;
// - objects up to 1 KiB live in one-page slabs instead of up to seven
//   pages. A slab goes back only once all its objects are freed, and after
//   a thousand concurrent connections a few long-lived objects made during
//   the peak (a pooled HBONE connection's, Asio's socket records, which it
//   keeps for reuse) are scattered over the slabs of each size: with big
//   slabs every survivor pinned up to 28 KiB. Measured after 1,000 held
//   connections then a 10,000-connection burst: 14.2 -> 13.1 MiB RSS per
//   ztunnel (idle 10.5);
// - one arena for all threads instead of four per core: the workers'
//   survivors share slabs instead of pinning slabs in an arena each. After
//   the same burst, both ztunnels: 1.26 -> 1.24 x idle RSS, and 0.4 KiB
//   less per idle connection; it cost about 2% of warm connections/s with
//   16 concurrent (within this machine's noise, e2e-bench --figures cps).
extern "C" {
const char* malloc_conf =
    "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,slab_sizes:1-1024:1,narenas:1";
}
#endif

namespace zt::app {
namespace {

EnvMap read_environment() {
  EnvMap env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    const size_t eq = kv.find('=');
    if (eq != std::string_view::npos) env.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  return env;
}

std::string commands_help(const EnvMap& env) {
  return "\nIstio Ztunnel (" + build_info(env) +
         ")\n\n"
         "Commands:\n"
         "proxy (default) - Start the ztunnel proxy\n"
         "version         - Print the version of ztunnel\n"
         "help            - Print commands and version of ztunnel\n\n";
}

int run(int argc, char** argv) {
  // Before any thread exists, so every thread inherits the mask and only
  // the signal watcher takes SIGTERM/SIGINT.
  block_termination_signals();
  std::vector<std::string> args(argv + 1, argv + argc);
  const EnvMap environment = read_environment();
  // Upstream's first argument is a command; flags (ours) may follow.
  if (!args.empty() && !args.front().starts_with("-")) {
    const std::string command = args.front();
    args.erase(args.begin());
    if (command == "version") {
      std::printf("%s\n", build_info(environment).c_str());
      return 0;
    }
    if (command == "help") {
      std::printf("%s%s", commands_help(environment).c_str(), help_text(argv[0]).c_str());
      return 0;
    }
    if (command != "proxy") {
      std::fprintf(stderr, "unknown command: %s\n%s", command.c_str(), commands_help(environment).c_str());
      return kExitBadConfig;
    }
    // The chart's "proxy ztunnel": the second word names the proxy type.
    if (!args.empty() && args.front() == "ztunnel") args.erase(args.begin());
  }
  if (help_requested(args)) {
    std::printf("%s%s", commands_help(environment).c_str(), help_text(argv[0]).c_str());
    return 0;
  }
  io::real::ProcessLog log;  // standard output, as upstream
  auto logging = Logging::from_environment(environment);
  if (!logging) {
    ZT_LOG(log, error, "app", "invalid configuration", {"error", logging.error().detail});
    return kExitBadConfig;
  }
  log.set_format(logging->format());
  logging->apply(log);
  const uint32_t cores = std::max(1u, std::thread::hardware_concurrency());
  auto cfg = parse_config(environment, args, cores);
  if (!cfg) {
    ZT_LOG(log, error, "app", "invalid configuration", {"error", cfg.error().detail});
    return kExitBadConfig;
  }
  ZT_LOG(log, info, "app", "ztunnel starting", {"version", build_info(environment)},
         {"fips", tls::fips_mode()}, {"config", cfg->summary()});
  auto app = App::build(*cfg, environment, log, *logging);
  if (!app) {
    ZT_LOG(log, error, "app", "cannot start", {"error", app.error().message()});
    return exit_code_for(app.error());
  }
  return (*app)->run();
}

}  // namespace
}  // namespace zt::app

int main(int argc, char** argv) { return zt::app::run(argc, argv); }
