// The ztunnel binary in local mode: it reads and validates its configuration
// (environment and flags, exit 2 on any bad value), checks FIPS when built
// for it, loads the local mesh state (LOCAL_XDS_PATH / LOCAL_XDS), issues
// workload certificates from its built-in CA (FAKE_CA), and runs outbound
// (15001), inbound plaintext (15006), inbound HBONE (15008), SOCKS5 (15080,
// when enabled), admin (15000), stats (15020) and readiness (15021) until
// SIGTERM, SIGINT or POST /quitquitquit. One event loop for now (worker
// threads come later); no xDS or CA client yet.
//
//   FAKE_CA=true XDS_ADDRESS= LOCAL_XDS_PATH=examples/localhost.yaml ./ztunnel
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "app/config.h"
#include "core/admin/admin.h"
#include "core/proxy/proxy.h"
#include "core/proxy/socks5.h"
#include "tls/ca.h"
#include "core/state/config_dump.h"
#include "core/state/local_config.h"
#include "core/state/store.h"
#include "io/real/runtime.h"
#include "tls/context.h"

extern char** environ;

namespace zt::app {
namespace {

namespace proxy = zt::core::proxy;

constexpr const char* kVersion = "0.1.0";
constexpr int kExitBadConfig = 2;

void log_line(const std::string& level, const std::string& msg, const std::string& fields = "") {
  std::fprintf(stderr, "level=%s msg=\"%s\"%s%s\n", level.c_str(), msg.c_str(), fields.empty() ? "" : " ",
               fields.c_str());
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

// Our sockets are v6-only, so "[::]" listens on [::] and 0.0.0.0, and
// "localhost" on 127.0.0.1 and (with IPv6) [::1]: what upstream's dual-stack
// listeners accept.
Result<std::vector<std::unique_ptr<Listener>>> listen_all(Env& env, const ListenAddr& addr, bool ipv6) {
  std::vector<Endpoint> eps;
  const uint16_t port = addr.port();
  if (addr.kind == ListenAddr::Kind::localhost) {
    eps.push_back({IpAddr::loopback(IpAddr::Family::v4), port});
    if (ipv6) eps.push_back({IpAddr::loopback(IpAddr::Family::v6), port});
  } else if (addr.endpoint.ip.is_unspecified() && addr.endpoint.ip.is_v6()) {
    eps.push_back(addr.endpoint);
    eps.push_back({IpAddr::unspecified(IpAddr::Family::v4), port});
  } else {
    eps.push_back(addr.endpoint);
  }
  std::vector<std::unique_ptr<Listener>> out;
  for (const auto& ep : eps) {
    auto l = env.net.listen(ep, {});
    if (!l) return Error(l.code(), "listening on " + ep.to_string() + ": " + l.error().message());
    out.push_back(std::move(*l));
  }
  return out;
}

// Workload certificates from the built-in CA, issued on first use.
class LocalCertificates {
 public:
  LocalCertificates(const Config& cfg, tls::Ca ca, Clock& clock) : cfg_(cfg), ca_(std::move(ca)), clock_(clock) {}

  std::shared_ptr<const tls::Credentials> for_identity(const std::string& spiffe) {
    auto it = creds_.find(spiffe);
    if (it != creds_.end()) return it->second;
    auto id = tls::Identity::parse(spiffe);
    if (!id) return nullptr;
    auto issued = ca_.issue(*id, cfg_.secret_ttl, clock_.wall_now());
    if (!issued) return nullptr;
    auto c = std::make_shared<tls::Credentials>(tls::Credentials{std::move(issued->chain), std::move(issued->key)});
    creds_.emplace(spiffe, c);
    return c;
  }
  std::vector<tls::Certificate> roots() const { return ca_.trust_bundle(); }

 private:
  const Config& cfg_;
  tls::Ca ca_;
  Clock& clock_;
  std::map<std::string, std::shared_ptr<const tls::Credentials>> creds_;
};

int run(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (help_requested(args)) {
    std::printf("%s", help_text(argv[0]).c_str());
    return 0;
  }
  const uint32_t cores = std::max(1u, std::thread::hardware_concurrency());
  auto cfg = parse_config(read_environment(), args, cores);
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
  mesh::MeshStore store;
  auto snapshot = load_mesh(*cfg, store);
  if (!snapshot) {
    log_line("error", "invalid local configuration", "error=\"" + snapshot.error().detail + "\"");
    return kExitBadConfig;
  }

  real::Runtime rt;
  Env& env = rt.env();
  admin::Registry registry;
  admin::declare_istio_metrics(registry);
  admin::set_build_info(registry, kVersion);
  std::string level = "info";
  admin::AdminHandlers handlers;
  handlers.config_dump = [&] { return mesh::config_dump_json(**snapshot); };
  handlers.log_level = [&] { return level; };
  handlers.set_log_level = [&](std::string_view l) -> Result<void> {
    level = std::string(l);
    log_line("info", "log level changed", "level=" + level);
    return ok();
  };
  handlers.shutdown = [&] {
    log_line("info", "shutting down", "reason=quitquitquit");
    rt.stop();
  };
  // Ready once the state is loaded (it is, by now) and the proxy listens.
  bool proxy_listening = false;
  auto pending = [&] {
    return proxy_listening ? std::vector<std::string>{} : std::vector<std::string>{"proxy listeners"};
  };
  std::vector<std::unique_ptr<admin::AdminServer>> servers;
  const std::pair<const ListenAddr*, admin::Routes> endpoints[] = {
      {&cfg->admin_addr, admin::admin_routes(env, handlers)},
      {&cfg->stats_addr, admin::stats_routes(registry)},
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

  // The data path. Marks are for in-pod capture; local mode has none.
  auto ca = tls::Ca::create(tls::CaOptions{cfg->trust_domain}, env.rng.stream("ca"), env.clock.wall_now());
  if (!ca) {
    log_line("error", "cannot create the local CA", "error=\"" + ca.error().message() + "\"");
    return 1;
  }
  LocalCertificates certs(*cfg, std::move(*ca), env.clock);
  proxy::StateSource state = [&] { return *snapshot; };
  std::map<std::string, std::shared_ptr<const tls::TlsContext>> client_contexts;
  core::hbone::PoolConfig pool_cfg;
  pool_cfg.streams_per_connection_max = cfg->pool_max_streams_per_connection;
  pool_cfg.idle_release = cfg->pool_unused_release_timeout;
  core::hbone::Pool pool(env, pool_cfg, [&](const core::hbone::PoolKey& key) -> Result<std::shared_ptr<const tls::TlsContext>> {
    auto& ctx = client_contexts[key.source_identity];
    if (!ctx) {
      tls::TlsConfig tc;
      tc.role = tls::TlsRole::client;
      tc.credentials = certs.for_identity(key.source_identity);
      if (!tc.credentials) return Error(Errc::invalid_argument, "no certificate for " + key.source_identity);
      tc.roots = certs.roots();
      tc.allow_tls12 = cfg->tls12_enabled;
      auto made = tls::TlsContext::create(tc);
      if (!made) return made.error();
      ctx = *made;
    }
    return ctx;
  });
  tls::TlsConfig server_tls;
  server_tls.role = tls::TlsRole::server;
  server_tls.roots = certs.roots();
  server_tls.trust_domain = cfg->trust_domain;
  server_tls.allow_tls12 = cfg->tls12_enabled;
  server_tls.credentials_for = [&](const Endpoint& local) -> std::shared_ptr<const tls::Credentials> {
    const mesh::Workload* w = (*snapshot)->workload_by_address({"", local.ip});
    return w ? certs.for_identity(w->identity().to_string()) : nullptr;
  };
  auto server_ctx = tls::TlsContext::create(server_tls);
  if (!server_ctx) {
    log_line("error", "cannot configure TLS", "error=\"" + server_ctx.error().message() + "\"");
    return 1;
  }
  // One access log line per connection when it ends (upstream's "access" target).
  const proxy::AccessLogSink access_log = [](const proxy::ConnectionRecord& r) {
    std::fprintf(stderr, "%s\n", proxy::format_access_log(r).c_str());
  };
  proxy::OutboundConfig out_cfg;
  out_cfg.mark = std::nullopt;
  out_cfg.metrics = &registry;
  out_cfg.access_log = access_log;
  proxy::InboundConfig in_cfg;
  in_cfg.mark = std::nullopt;
  in_cfg.metrics = &registry;
  in_cfg.access_log = access_log;
  std::vector<std::unique_ptr<proxy::Outbound>> outbounds;
  std::vector<std::unique_ptr<proxy::Inbound>> inbounds;
  std::vector<std::unique_ptr<proxy::InboundPlaintext>> plaintexts;
  std::vector<std::unique_ptr<proxy::Socks5Server>> socks;
  auto bind = [&](const ListenAddr& addr) {
    auto ls = listen_all(env, addr, cfg->ipv6_enabled);
    if (!ls) log_line("error", "cannot listen", "error=\"" + ls.error().message() + "\"");
    return ls;
  };
  if (cfg->proxy_enabled) {
    auto out_l = bind(cfg->outbound_addr), in_l = bind(cfg->inbound_addr), plain_l = bind(cfg->inbound_plaintext_addr);
    if (!out_l || !in_l || !plain_l) return 1;
    for (auto& l : *out_l) outbounds.push_back(std::make_unique<proxy::Outbound>(env, std::move(l), state, pool, out_cfg));
    for (auto& l : *in_l) inbounds.push_back(std::make_unique<proxy::Inbound>(env, std::move(l), *server_ctx, state, in_cfg));
    for (auto& l : *plain_l) plaintexts.push_back(std::make_unique<proxy::InboundPlaintext>(env, std::move(l), state, in_cfg));
    if (cfg->socks5_addr) {
      auto socks_l = bind(*cfg->socks5_addr);
      if (!socks_l) return 1;
      for (auto& l : *socks_l) socks.push_back(std::make_unique<proxy::Socks5Server>(env, std::move(l), state, *outbounds.front()));
    }
    for (auto& o : outbounds) o->start();
    for (auto& i : inbounds) i->start();
    for (auto& p : plaintexts) p->start();
    for (auto& s5 : socks) s5->start();
  }
  proxy_listening = true;
  log_line("info", "serving", "admin=" + cfg->admin_addr.to_string() + " stats=" + cfg->stats_addr.to_string() +
                                  " readiness=" + cfg->readiness_addr.to_string());

  // SIGTERM/SIGINT: a thread waits for them and stops the loop (stop() is
  // the one thread-safe call on the runtime).
  std::atomic<bool> drain_requested = false;
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::atomic<bool> loop_done = false;
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (!loop_done) {
      log_line("info", "shutting down", std::string("signal=") + (sig == SIGTERM ? "SIGTERM" : "SIGINT"));
      drain_requested = true;
    }
  });
  // Drain on SIGTERM/SIGINT: stop accepting, GOAWAY the HBONE connections,
  // let connections in flight finish for CONNECTION_TERMINATION_DEADLINE,
  // then stop. The signal thread only raises a flag; the loop polls it.
  std::optional<MonoTime> drain_deadline;
  auto active = [&] {
    size_t n = 0;
    for (auto& o : outbounds) n += o->active();
    for (auto& i : inbounds) n += i->active();
    for (auto& p : plaintexts) n += p->active();
    return n;
  };
  std::function<void()> poll = [&] {
    if (drain_requested.load() && !drain_deadline) {
      drain_deadline = env.clock.now() + cfg->connection_termination_deadline;
      for (auto& s5 : socks) s5->drain();
      for (auto& o : outbounds) o->drain();
      for (auto& p : plaintexts) p->drain();
      for (auto& i : inbounds) i->drain();
      proxy_listening = false;
      log_line("info", "draining", "connections=" + std::to_string(active()) +
                                       " deadline_ms=" + std::to_string(to_ms(cfg->connection_termination_deadline)));
    }
    if (drain_deadline && (active() == 0 || env.clock.now() >= *drain_deadline)) {
      log_line("info", "drained", "connections_left=" + std::to_string(active()));
      rt.stop();
      return;
    }
    env.loop.run_after(std::chrono::milliseconds(100), poll);
  };
  env.loop.post(poll);
  rt.run();
  // Wake the waiter if the loop ended for another reason.
  loop_done = true;
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  log_line("info", "stopped");
  return 0;
}

}  // namespace
}  // namespace zt::app

int main(int argc, char** argv) { return zt::app::run(argc, argv); }
