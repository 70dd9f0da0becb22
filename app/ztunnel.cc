// The ztunnel binary in local mode: it reads and validates its configuration
// (environment and flags, exit 2 on any bad value), checks FIPS when built
// for it, loads the local mesh state (LOCAL_XDS_PATH / LOCAL_XDS), issues
// workload certificates from its built-in CA (FAKE_CA), and runs outbound
// (15001), inbound plaintext (15006), inbound HBONE (15008) and SOCKS5
// (15080, when enabled) on ZTUNNEL_WORKER_THREADS workers, with admin
// (15000), stats (15020) and readiness (15021) on the control thread, until
// SIGTERM, SIGINT or POST /quitquitquit drain it. No xDS or CA client yet.
//
//   FAKE_CA=true XDS_ADDRESS= LOCAL_XDS_PATH=examples/localhost.yaml ./ztunnel
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "app/config.h"
#include "app/local_ca.h"
#include "app/log.h"
#include "app/worker.h"
#include "core/admin/admin.h"
#include "core/state/config_dump.h"
#include "core/state/local_config.h"
#include "core/state/store.h"
#include "io/real/runtime.h"
#include "tls/ca.h"
#include "tls/context.h"

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

namespace proxy = zt::core::proxy;

constexpr const char* kVersion = "0.1.0";
constexpr int kExitBadConfig = 2;

void log_line(std::string_view level, std::string_view msg, std::string_view fields = "") {
  const log::Level l = level == "error" ? log::Level::error : level == "warn" ? log::Level::warn : log::Level::info;
  log::line(l, msg, fields);
}

EnvMap read_environment() {
  EnvMap env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    const size_t eq = kv.find('=');
    if (eq != std::string_view::npos) env.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  return env;
}

// The local mesh state, or an error naming the file and line.
Result<std::shared_ptr<const mesh::StateSnapshot>> load_mesh(const Config& cfg, mesh::MeshStore& store) {
  std::string text, source;
  if (cfg.local_xds_path) {
    std::ifstream in(*cfg.local_xds_path);
    if (!in) return Error(Errc::invalid_argument, "LOCAL_XDS_PATH=\"" + *cfg.local_xds_path + "\": cannot be read");
    std::stringstream buf;
    buf << in.rdbuf();
    text = buf.str();
    source = *cfg.local_xds_path;
  } else if (cfg.local_xds_yaml) {
    text = *cfg.local_xds_yaml;
    source = "LOCAL_XDS";
  }
  auto parsed = mesh::parse_local_config(text, source);
  if (!parsed) return parsed.error();
  mesh::load_local_config(store, *parsed);
  return store.publish();
}

// The mesh file's identity for change detection: modification time and size.
std::optional<std::pair<int64_t, int64_t>> file_version(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return std::nullopt;
  return std::pair<int64_t, int64_t>{int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec, st.st_size};
}

// /config_dump: the mesh state plus the certificates issued so far (each
// identity's chain with its validity), in upstream's "certificates" shape.
std::string config_dump(const mesh::StateSnapshot& state, const LocalCertificates& certs) {
  nlohmann::json doc = nlohmann::json::parse(mesh::config_dump_json(state));
  nlohmann::json list = nlohmann::json::array();
  auto rfc3339 = [](WallTime t) {
    std::time_t secs = std::chrono::system_clock::to_time_t(std::chrono::time_point_cast<std::chrono::seconds>(t));
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return std::string(buf);
  };
  for (const auto& [identity, chain] : certs.issued()) {
    nlohmann::json entries = nlohmann::json::array();
    for (const tls::Certificate& c : chain) {
      entries.push_back({{"pem", c.to_pem()}, {"validFrom", rfc3339(c.not_before())},
                         {"expirationTime", rfc3339(c.not_after())}});
    }
    list.push_back({{"identity", identity}, {"state", "Available"}, {"certChain", entries}});
  }
  doc["certificates"] = list;
  return doc.dump(2) + "\n";
}

Result<std::vector<std::unique_ptr<Listener>>> listen_all(Env& env, const ListenAddr& addr, bool ipv6) {
  std::vector<std::unique_ptr<Listener>> out;
  for (const Endpoint& ep : endpoints_of(addr, ipv6)) {
    auto l = env.net.listen(ep, {});
    if (!l) return Error(l.code(), "listening on " + ep.to_string() + ": " + l.error().message());
    out.push_back(std::move(*l));
  }
  return out;
}

int run(int argc, char** argv) {
  // Blocked before any thread starts, so every thread inherits the mask and
  // only the waiter below ever takes SIGTERM/SIGINT.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (help_requested(args)) {
    std::printf("%s", help_text(argv[0]).c_str());
    return 0;
  }
  const uint32_t cores = std::max(1u, std::thread::hardware_concurrency());
  const EnvMap environment = read_environment();
  // Upstream's initial log filter; /logging?level= changes it later.
  if (auto it = environment.find("RUST_LOG"); it != environment.end() && !it->second.empty()) {
    if (auto r = log::set_spec(it->second); !r) {
      log_line("error", "invalid configuration", "error=\"RUST_LOG=\\\"" + it->second + "\\\": " + r.error().detail + "\"");
      return kExitBadConfig;
    }
  }
  auto cfg = parse_config(environment, args, cores);
  if (!cfg) {
    log_line("error", "invalid configuration", "error=\"" + cfg.error().detail + "\"");
    return kExitBadConfig;
  }
  if (auto fips = tls::check_fips_build(); !fips) {
    log_line("error", "refusing to start", "error=\"" + fips.error().detail + "\"");
    return 1;
  }
  log_line("info", "ztunnel starting",
           std::string("version=") + kVersion + " tls=BoringSSL fips=" + (tls::fips_mode() ? "true" : "false") + " " +
               cfg->summary());
  if (!cfg->local_mode()) {
    log_line("error", "only local mode is supported so far (set LOCAL_XDS_PATH, FAKE_CA=true and XDS_ADDRESS=\"\")");
    return kExitBadConfig;
  }
  if (cfg->dns_proxy_enabled) log_line("info", "the DNS proxy is not built yet; ISTIO_META_DNS_CAPTURE is ignored");
  mesh::MeshStore store;
  auto snapshot = load_mesh(*cfg, store);
  if (!snapshot) {
    log_line("error", "invalid local configuration", "error=\"" + snapshot.error().detail + "\"");
    return kExitBadConfig;
  }
  SharedState state(*snapshot);

  // The control thread's loop: admin, stats, readiness, signals, drain.
  real::Runtime rt;
  Env& env = rt.env();
  auto ca = open_fake_ca(cfg->fake_ca_dir, cfg->trust_domain, env.rng.stream("ca"), env.clock.wall_now());
  if (!ca) {
    log_line("error", "cannot set up the fake CA", "error=\"" + ca.error().message() + "\"");
    return 1;
  }
  LocalCertificates certs(cfg->secret_ttl, std::move(*ca));
  tls::TlsConfig server_tls;
  server_tls.role = tls::TlsRole::server;
  server_tls.roots = certs.roots();
  server_tls.trust_domain = cfg->trust_domain;
  server_tls.allow_tls12 = cfg->tls12_enabled;
  // HBONE clients send no SNI: the certificate is the called workload's.
  server_tls.credentials_for = [&](const Endpoint& local) -> std::shared_ptr<const tls::Credentials> {
    const mesh::Workload* w = state.get()->workload_by_address({"", local.ip});
    return w ? certs.for_identity(w->identity().to_string(), std::chrono::time_point_cast<Duration>(
                                                                  std::chrono::system_clock::now()))
             : nullptr;
  };

  // The data-plane workers, listening before the control endpoints come up.
  std::vector<std::unique_ptr<Worker>> workers;
  for (uint32_t i = 0; i < cfg->worker_threads; ++i) {
    // One server context per worker: a context remembers the peer chains it
    // verified, unlocked (tls::TlsContext::verified_chain).
    auto server_ctx = tls::TlsContext::create(server_tls);
    if (!server_ctx) {
      log_line("error", "cannot configure TLS", "error=\"" + server_ctx.error().message() + "\"");
      return 1;
    }
    workers.push_back(std::make_unique<Worker>(i, WorkerShared{*cfg, state, certs, *server_ctx}));
    if (auto r = workers.back()->listen(); !r) {
      log_line("error", "cannot listen", "error=\"" + r.error().message() + "\"");
      return 1;
    }
  }
  if (cfg->listen_on_workload_ips && workers.front()->listening().empty()) {
    log_line("warn", "no workload of this node to listen for", "node=" + cfg->node_name.value_or(""));
  }

  admin::Registry control_metrics;
  admin::declare_istio_metrics(control_metrics);
  admin::set_build_info(control_metrics, kVersion);
  auto render_metrics = [&] {
    admin::Registry all;
    all.merge(control_metrics);
    for (auto& w : workers) all.merge(w->metrics());
    return all.render();
  };
  bool draining = false;
  std::optional<MonoTime> drain_deadline;
  std::function<void(std::string_view)> begin_drain = [&](std::string_view reason) {
    if (draining) return;
    draining = true;
    drain_deadline = env.clock.now() + cfg->connection_termination_deadline;
    log_line("info", "draining", "reason=" + std::string(reason) + " deadline_ms=" +
                                     std::to_string(to_ms(cfg->connection_termination_deadline)));
    for (auto& w : workers) w->drain(cfg->connection_termination_deadline);
  };
  admin::AdminHandlers handlers;
  handlers.config_dump = [&] { return config_dump(*state.get(), certs); };
  handlers.log_level = [] { return log::spec(); };
  handlers.set_log_level = [](std::string_view spec) -> Result<void> {
    if (auto r = log::set_spec(spec); !r) return r;
    log_line("info", "log level changed", "level=\"" + log::spec() + "\"");
    return ok();
  };
  handlers.shutdown = [&] { begin_drain("quitquitquit"); };
  // Ready once the state is loaded (it is, by now) and the proxy listens;
  // not ready again while draining.
  auto pending = [&] {
    return draining ? std::vector<std::string>{"draining"} : std::vector<std::string>{};
  };
  std::vector<std::unique_ptr<admin::AdminServer>> servers;
  const std::pair<const ListenAddr*, admin::Routes> endpoints[] = {
      {&cfg->admin_addr, admin::admin_routes(env, handlers)},
      {&cfg->stats_addr, admin::stats_routes(render_metrics)},
      {&cfg->readiness_addr, admin::readiness_routes(pending)},
  };
  for (const auto& [addr, routes] : endpoints) {
    auto listeners = listen_all(env, *addr, cfg->ipv6_enabled);
    if (!listeners) {
      log_line("error", "cannot listen", "error=\"" + listeners.error().message() + "\"");
      return 1;
    }
    for (auto& l : *listeners) servers.push_back(std::make_unique<admin::AdminServer>(env, std::move(l), routes));
  }
  for (auto& s : servers) s->start();
  for (auto& w : workers) w->start();
  std::string pod_listeners;
  for (const std::string& ep : workers.front()->listening()) pod_listeners += (pod_listeners.empty() ? "" : ",") + ep;
  log_line("info", "serving", "workers=" + std::to_string(workers.size()) + " proxy=" + pod_listeners +
                                  " admin=" + cfg->admin_addr.to_string() + " stats=" + cfg->stats_addr.to_string() +
                                  " readiness=" + cfg->readiness_addr.to_string());

  // SIGTERM/SIGINT: a thread waits for them and raises a flag the control
  // loop polls (signal handlers may not touch the loop).
  std::atomic<bool> signalled = false;
  std::atomic<int> signal_number = 0;
  std::atomic<bool> loop_done = false;
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (!loop_done) {
      signal_number = sig;
      signalled = true;
    }
  });
  // Drain: workers stop accepting, GOAWAY their HBONE connections and let
  // connections finish until CONNECTION_TERMINATION_DEADLINE; the process
  // exits once every worker is done.
  // LOCAL_XDS_PATH is re-read when it changes (checked each second): a
  // valid file replaces the state and workers re-check open connections
  // against the new policies; a broken one is logged, counted and ignored.
  control_metrics.declare("ztunnel_local_config_reloads_total", admin::MetricType::counter,
                          "Times the local mesh file changed, by result (applied or rejected).");
  std::optional<std::pair<int64_t, int64_t>> mesh_version;
  if (cfg->local_xds_path) mesh_version = file_version(*cfg->local_xds_path);
  MonoTime next_mesh_check = env.clock.now() + std::chrono::seconds(1);
  auto check_mesh_file = [&] {
    if (!cfg->local_xds_path || draining || env.clock.now() < next_mesh_check) return;
    next_mesh_check = env.clock.now() + std::chrono::seconds(1);
    auto version = file_version(*cfg->local_xds_path);
    if (!version || version == mesh_version) return;
    mesh_version = version;
    auto reloaded = load_mesh(*cfg, store);
    if (!reloaded) {
      control_metrics.counter("ztunnel_local_config_reloads_total", {{"result", "rejected"}}).inc();
      log_line("error", "local configuration rejected; keeping the previous state",
               "error=\"" + reloaded.error().detail + "\"");
      return;
    }
    control_metrics.counter("ztunnel_local_config_reloads_total", {{"result", "applied"}}).inc();
    state.set(*reloaded);
    log_line("info", "local configuration reloaded",
             "workloads=" + std::to_string((*reloaded)->workloads().by_uid.size()));
    for (auto& w : workers) w->state_changed();
  };
  std::function<void()> poll = [&] {
    check_mesh_file();
    if (signalled.load() && !draining) begin_drain(signal_number.load() == SIGTERM ? "SIGTERM" : "SIGINT");
    const bool all_done =
        std::all_of(workers.begin(), workers.end(), [](const auto& w) { return w->finished(); });
    if (draining && all_done) {
      log_line("info", "drained");
      rt.stop();
      return;
    }
    env.loop.run_after(std::chrono::milliseconds(50), poll);
  };
  env.loop.post(poll);
  rt.run();
  workers.clear();  // joins the worker threads
  loop_done = true;
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  log_line("info", "stopped");
  return 0;
}

}  // namespace
}  // namespace zt::app

int main(int argc, char** argv) { return zt::app::run(argc, argv); }
