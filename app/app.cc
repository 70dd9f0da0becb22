#include "app/app.h"

#include <chrono>
#include <ctime>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "app/version.h"
#include "core/mesh/config_dump.h"
#include "tls/context.h"

namespace zt::app {
namespace {

namespace admin = core::admin;
namespace control = core::control;

constexpr Duration kRootCheckInterval = std::chrono::seconds(5);

std::string rfc3339_seconds(WallTime t) {
  const std::string micros = format_rfc3339_micros(t);  // "...:SS.ffffffZ"
  return micros.substr(0, 19) + "Z";
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

}  // namespace

int exit_code_for(const Error& e) { return e.code == Errc::invalid_argument ? kExitBadConfig : kExitFailed; }

App::App(const Config& cfg, io::real::ProcessLog& log, const Logging& logging)
    : cfg_(cfg), log_(log), logging_(logging), rt_(std::nullopt, &log), listeners_block_(readiness_.block("listeners")) {
  readiness_.on_release([this](const std::string& name, size_t left) {
    ZT_LOG(log_, info, "readiness", left == 0 ? "task complete, marking server ready" : "task complete",
           {"task", name}, {"pending", left});
  });
}

App::~App() {
  // Blocks released while the app comes apart are not news.
  readiness_.on_release(nullptr);
}

Result<std::unique_ptr<App>> App::build(const Config& cfg, const EnvMap& environment, io::real::ProcessLog& log,
                                        const Logging& logging) {
  if (auto fips = tls::check_fips_build(); !fips) return Error(Errc::unsupported, fips.error().detail);
  if (cfg.proxy_mode == ProxyMode::dedicated && cfg.inpod_enabled) {
    return Error(Errc::invalid_argument, "PROXY_MODE=dedicated and INPOD_ENABLED: a dedicated proxy serves one workload "
                                         "in its own network namespace, not the pods of a node");
  }
  for (const std::string& s : cfg.not_supported_yet) ZT_LOG(log, warn, "app", "setting has no effect", {"setting", s});
  (void)environment;
  std::unique_ptr<App> app(new App(cfg, log, logging));
  if (auto r = app->build_control(); !r) return r.error();
  if (auto r = app->build_workers(); !r) return r.error();
  if (auto r = app->build_endpoints(); !r) return r.error();
  return app;
}

// The mesh source (the local file or istiod's xDS), the certificate source
// (the fake CA or istiod's CA) and the control plane that joins them to the
// workers.
Result<void> App::build_control() {
  Env& env = rt_.env();
  if (auto r = build_mesh_source(); !r) return r;
  if (auto r = build_certificate_source(); !r) return r;
  certs_.set_roots(ca_->roots());
  control::ControlPlaneOutputs out;
  out.on_state = [this](std::shared_ptr<const core::mesh::StateSnapshot> s) {
    const bool changed = s != state_.get();
    state_.set(std::move(s));
    // Workers re-check open connections against the new policies (and, with
    // --listen-on-workload-ips, listen for workloads new on this node).
    if (changed) {
      for (auto& w : workers_) w->state_changed();
    }
  };
  out.on_certificate = [this](const std::string& id, std::shared_ptr<const tls::Credentials> c) {
    certs_.put(id, std::move(c));
  };
  out.on_forget = [this](const std::string& id) { certs_.forget(id); };
  control::ControlPlaneConfig cp_cfg;
  cp_cfg.node_name = cfg_.node_name;
  // The built-in CA issues in-process: every identity of the mesh is ready
  // before its first connection, whichever node it sends through.
  cp_cfg.every_identity = cfg_.fake_ca;
  control_ = std::make_unique<control::ControlPlane>(env, *mesh_, *ca_, readiness_, cp_cfg, std::move(out));
  // A certificate a worker did not find: fetched for the next connection.
  Loop& control_loop = env.loop;
  certs_.on_miss([this, &control_loop](const std::string& id) {
    control_loop.post([this, id] { control_->request(id); });
  });
  watch_roots();
  return ok();
}

Result<void> App::build_mesh_source() {
  Env& env = rt_.env();
  if (cfg_.local_mode()) {
    local_mesh_ = std::make_unique<LocalMeshSource>(env, cfg_, control_metrics_);
    auto initial = local_mesh_->load();
    if (!initial) return Error(Errc::invalid_argument, "invalid local configuration: " + initial.error().detail);
    // Workers listen (on their workloads' IPs, with --listen-on-workload-ips)
    // before the control plane has run: they start from this state.
    state_.set(*initial);
    mesh_ = local_mesh_.get();
    return ok();
  }
  // Nothing is known until istiod answers; readiness waits for it.
  state_.set(core::mesh::MeshStore().publish());
  auto address = parse_istiod_address(*cfg_.xds_address);
  if (!address) return Error(Errc::invalid_argument, "XDS_ADDRESS: " + address.error().detail);
  xds_address_ = *address;
  std::vector<tls::Certificate> roots;
  if (address->tls) {
    auto loaded = load_roots(cfg_.xds_root_cert);
    if (!loaded) return Error(Errc::invalid_argument, "XDS_ROOT_CA: " + loaded.error().detail);
    roots = std::move(*loaded);
  }
  auto channel = make_istiod_channel(env, *address, roots, cfg_.alt_xds_hostname);
  if (!channel) return channel.error();
  xds_channel_ = std::move(*channel);
  auto token = check_token(cfg_, log_);
  if (!token) return token.error();
  xds::AdsConfig ads_cfg;
  ads_cfg.node = xds::node_info(cfg_.instance_ip ? cfg_.instance_ip->to_string() : "", cfg_.pod_name.value_or(""),
                                cfg_.pod_namespace.value_or(""), cfg_.node_name.value_or(""), cfg_.proxy_metadata);
  ads_cfg.authority = address->authority();
  ads_cfg.metadata = CallMetadata(*token, cfg_.cluster_id);
  ads_cfg.on_demand = cfg_.xds_on_demand;
  ads_ = std::make_unique<xds::AdsClient>(env, *xds_channel_, readiness_, control_metrics_, std::move(ads_cfg));
  mesh_ = ads_.get();
  ZT_LOG(log_, info, "xds", "xDS client configured", {"address", *cfg_.xds_address},
         {"node_id", xds::node_info(cfg_.instance_ip ? cfg_.instance_ip->to_string() : "", cfg_.pod_name.value_or(""),
                                    cfg_.pod_namespace.value_or(""), cfg_.node_name.value_or(""), {})
                         .id});
  return ok();
}

Result<void> App::build_certificate_source() {
  Env& env = rt_.env();
  if (cfg_.fake_ca) {
    auto ca = open_fake_ca(cfg_.fake_ca_dir, cfg_.trust_domain, env.rng.stream("ca"), env.clock.wall_now());
    if (!ca) return Error(Errc::invalid_argument, "cannot set up the fake CA: " + ca.error().message());
    fake_ca_ = std::make_unique<control::FakeCaSource>(env, std::move(*ca), cfg_.secret_ttl);
    ca_ = fake_ca_.get();
    return ok();
  }
  auto address = parse_istiod_address(*cfg_.ca_address);
  if (!address) return Error(Errc::invalid_argument, "CA_ADDRESS: " + address.error().detail);
  ca_address_ = *address;
  // The CA's roots are the mesh's: a returned chain must verify against
  // them, and so must every peer's certificate.
  auto roots = load_roots(cfg_.ca_root_cert);
  if (!roots) return Error(Errc::invalid_argument, "CA_ROOT_CA: " + roots.error().detail);
  auto channel = make_istiod_channel(env, *address, *roots, cfg_.alt_ca_hostname);
  if (!channel) return channel.error();
  ca_channel_ = std::move(*channel);
  auto token = check_token(cfg_, log_);
  if (!token) return token.error();
  xds::CaClientConfig ca_cfg;
  ca_cfg.authority = address->authority();
  ca_cfg.metadata = CallMetadata(*token, cfg_.cluster_id);
  ca_cfg.ttl = cfg_.secret_ttl;
  ca_cfg.roots = *roots;
  ca_cfg.impersonate = cfg_.proxy_mode == ProxyMode::shared;
  ca_client_ = std::make_unique<xds::CaClient>(env, *ca_channel_, std::move(ca_cfg));
  ca_ = ca_client_.get();
  return ok();
}

// Root bundles are files that change (the mesh root rotates: a new root is
// added, later the old one removed). Checked every few seconds; a change
// reaches the channels to istiod, the CA client and every worker's TLS.
void App::watch_roots() {
  for (const RootCert* root : {&cfg_.xds_root_cert, &cfg_.ca_root_cert}) {
    const bool used = root == &cfg_.xds_root_cert ? (xds_address_ && xds_address_->tls) : ca_client_ != nullptr;
    const std::string path = root_file(*root);
    if (!used || path.empty()) continue;
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    root_files_[path] = text.str();
  }
  if (root_files_.empty()) return;
  roots_timer_ = rt_.env().loop.run_after(kRootCheckInterval, [this] { check_roots(); });
}

void App::check_roots() {
  roots_timer_ = rt_.env().loop.run_after(kRootCheckInterval, [this] { check_roots(); });
  for (auto& [path, last] : root_files_) {
    std::ifstream in(path, std::ios::binary);
    if (!in) continue;  // mid-replace; the next check sees it
    std::ostringstream text;
    text << in.rdbuf();
    if (text.str() == last) continue;
    RootCert root{RootCert::Kind::file, path};
    auto roots = load_roots(root);
    if (!roots) {
      ZT_LOG(log_, warn, "identity", "root certificates changed but cannot be used; keeping the old ones",
             {"path", path}, {"error", roots.error().message()});
      last = text.str();
      continue;
    }
    last = text.str();
    ZT_LOG(log_, info, "identity", "root certificates changed", {"path", path}, {"roots", roots->size()});
    if (xds_channel_ && xds_channel_->config().tls && root_file(cfg_.xds_root_cert) == path) {
      if (auto ctx = istiod_tls(*xds_address_, *roots, cfg_.alt_xds_hostname)) xds_channel_->set_tls(*ctx);
    }
    if (ca_client_ && root_file(cfg_.ca_root_cert) == path) {
      if (ca_channel_->config().tls) {
        if (auto ctx = istiod_tls(*ca_address_, *roots, cfg_.alt_ca_hostname)) ca_channel_->set_tls(*ctx);
      }
      ca_client_->set_roots(*roots);
      certs_.set_roots(*roots);
      for (auto& w : workers_) {
        auto ctx = tls::TlsContext::create(server_tls_config());
        if (ctx) w->roots_changed(*ctx);
      }
    }
  }
}

tls::TlsConfig App::server_tls_config() {
  tls::TlsConfig server_tls;
  server_tls.role = tls::TlsRole::server;
  server_tls.roots = certs_.roots();
  server_tls.trust_domain = cfg_.trust_domain;
  server_tls.allow_tls12 = cfg_.tls12_enabled;
  // HBONE clients send no SNI: the certificate is the called workload's.
  server_tls.credentials_for = [this](const Endpoint& local) -> std::shared_ptr<const tls::Credentials> {
    // Held while the workload is read: the control thread may publish and
    // drop this snapshot meanwhile.
    const std::shared_ptr<const core::mesh::StateSnapshot> snap = state_.get();
    const core::mesh::Workload* w = snap->workload_by_address({"", local.ip});
    return w ? certs_.get(w->identity().to_string()) : nullptr;
  };
  return server_tls;
}

namespace {
constexpr std::string_view kRefusedConnections = "ztunnel_connections_refused_total";
}  // namespace

// Refusals happen on the workers; the count reaches the control thread's
// metrics every few seconds.
void App::count_budget_refusals() {
  const uint64_t now = budget_->refused();
  if (now > budget_refused_seen_) {
    ZT_LOG(log_, warn, "proxy", "data-path connections refused: out of descriptors for the data path",
           {"refused", now - budget_refused_seen_}, {"budget", budget_->capacity()});
    control_metrics_.counter(kRefusedConnections, {{"reason", "descriptors"}}).inc(now - budget_refused_seen_);
    budget_refused_seen_ = now;
  }
  budget_timer_ = rt_.env().loop.run_after(std::chrono::seconds(5), [this] { count_budget_refusals(); });
}

Result<void> App::build_workers() {
  // Descriptors: the limit raised as far as it goes, and the data path's
  // share of it, so that the admin, stats and readiness ports keep theirs.
  const uint64_t limit = raise_descriptor_limit(log_);
  budget_ = std::make_unique<DescriptorBudget>(
      DescriptorBudget::connections_for(limit, cfg_.worker_threads, core::proxy::InboundConfig{}.dials.per_listener));
  ZT_LOG(log_, info, "app", "data-path connections bounded", {"connections", budget_->capacity()},
         {"descriptor_limit", limit});
  control_metrics_.declare(kRefusedConnections, core::metrics::MetricType::counter,
                           "Connections the data-path listeners refused at once, by reason: descriptors (the data "
                           "path's share of the descriptor limit was in use).");
  count_budget_refusals();
  // On demand, workers ask the xDS client, which lives on this thread;
  // the answer comes back here and the worker's own wrapper takes it home.
  Demand demand;
  if (ads_ && cfg_.xds_on_demand) {
    demand = [this](std::string key, std::function<void()> answered) {
      rt_.env().loop.post([this, key = std::move(key), answered = std::move(answered)]() mutable {
        ads_->demand(std::move(key), std::move(answered));
      });
    };
  }
  for (uint32_t i = 0; i < cfg_.worker_threads; ++i) {
    // One server context per worker: a context remembers the peer chains it
    // verified, unlocked (tls::TlsContext::verified_chain).
    auto server_ctx = tls::TlsContext::create(server_tls_config());
    if (!server_ctx) return Error(Errc::unsupported, "cannot configure TLS: " + server_ctx.error().message());
    workers_.push_back(
        std::make_unique<Worker>(i, WorkerShared{cfg_, state_, certs_, *server_ctx, log_, demand, budget_.get()}));
    if (auto r = workers_.back()->listen(); !r) return Error(r.code(), "cannot listen: " + r.error().message());
  }
  if (cfg_.listen_on_workload_ips && cfg_.local_mode() && workers_.front()->listening().empty()) {
    ZT_LOG(log_, warn, "app", "no workload of this node to listen for", {"node", cfg_.node_name.value_or("")});
  }
  listeners_block_.release();
  if (cfg_.inpod_enabled && cfg_.proxy_enabled) return build_inpod();
  return ok();
}

// Which worker runs each enrolled pod: the one with the fewest pods (the
// lowest index on a tie). A pod's connections all live on its worker, as a
// node-level listener's do; pods, not connections, are spread.
class App::PodPlacement final : public core::inpod::PodRunner {
 public:
  PodPlacement(Loop& control, std::vector<std::unique_ptr<Worker>>& workers)
      : control_(control), workers_(workers), load_(workers.size(), 0) {}

  void start(const std::string& uid, const core::inpod::PodInfo& info, NetNamespacePtr ns, Done done) override {
    size_t w;
    if (auto it = placed_.find(uid); it != placed_.end()) {
      w = it->second;  // replaced: the new proxies go where the old ones are
    } else {
      w = size_t(std::min_element(load_.begin(), load_.end()) - load_.begin());
      placed_[uid] = w;
      ++load_[w];
    }
    workers_[w]->start_pod(uid, info, std::move(ns),
                           [&loop = control_, done = std::move(done)](Result<void> r) mutable {
                             loop.post([done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
                           });
  }
  void stop(const std::string& uid) override {
    auto it = placed_.find(uid);
    if (it == placed_.end()) return;
    workers_[it->second]->stop_pod(uid);
    --load_[it->second];
    placed_.erase(it);
  }
  std::optional<size_t> worker_of(const std::string& uid) const {
    auto it = placed_.find(uid);
    return it == placed_.end() ? std::nullopt : std::optional<size_t>(it->second);
  }

 private:
  Loop& control_;
  std::vector<std::unique_ptr<Worker>>& workers_;
  std::vector<size_t> load_;  // pods per worker
  std::map<std::string, size_t> placed_;
};

Result<void> App::build_inpod() {
  placement_ = std::make_unique<PodPlacement>(rt_.env().loop, workers_);
  core::inpod::ZdsClientConfig zc;
  zc.path = cfg_.inpod_uds;
  zds_ = std::make_unique<core::inpod::ZdsClient>(rt_.env(), zc, *placement_);
  // Ready once the agent's first snapshot is applied (pods that cannot
  // start are retried and reported, and do not hold readiness back).
  inpod_block_ = readiness_.block("in-pod: the first snapshot from the CNI node agent (" + cfg_.inpod_uds + ")");
  zds_->on_ready([this] { inpod_block_.release(); });
  return ok();
}

// Admin (15000), stats (15020), readiness (15021), the scrape, the drain and
// the signal watcher.
Result<void> App::build_endpoints() {
  Env& env = rt_.env();
  control_metrics_.declare("istio_build", core::metrics::MetricType::gauge, "Istio component build info.");
  control_metrics_.gauge("istio_build", {{"component", "ztunnel"}, {"tag", version()}}).set(1);
  std::vector<MetricsSource*> sources;
  for (auto& w : workers_) sources.push_back(w.get());
  scrape_ = std::make_unique<MetricsScrape>(env, std::move(sources), control_metrics_);
  drain_ = std::make_unique<Drain>(env, workers_, readiness_, cfg_.connection_termination_deadline,
                                   [this] { rt_.stop(); });
  admin::AdminHandlers handlers;
  handlers.config_dump = [this] { return config_dump(); };
  handlers.log_filter = [this] { return log_.filter().to_string(); };
  handlers.change_log_filter = [this](std::string_view directives, bool reset) -> Result<void> {
    if (auto r = logging_.change(log_, directives, reset); !r) return r;
    ZT_LOG(log_, info, "admin", "log filter changed", {"filter", log_.filter().to_string()});
    return ok();
  };
  handlers.shutdown = [this] { begin_drain("quitquitquit"); };
  const std::pair<const ListenAddr*, admin::Routes> endpoints[] = {
      {&cfg_.admin_addr, admin::admin_routes(env, handlers)},
      {&cfg_.stats_addr, admin::stats_routes([this] { return scrape_->render(); })},
      {&cfg_.readiness_addr, admin::readiness_routes([this] { return readiness_.pending(); })},
  };
  for (const auto& [addr, routes] : endpoints) {
    auto listeners = listen_all(env, *addr, cfg_.ipv6_enabled);
    if (!listeners) return Error(listeners.code(), "cannot listen: " + listeners.error().message());
    for (auto& l : *listeners) servers_.push_back(std::make_unique<admin::AdminServer>(env, std::move(l), routes));
  }
  signals_ = std::make_unique<SignalWatcher>(env.loop, log_, [this](int sig) { begin_drain(signal_name(sig)); });
  return ok();
}

void App::begin_drain(std::string_view reason) {
  if (drain_->draining()) return;
  signals_->draining();
  rt_.env().loop.cancel(roots_timer_);
  rt_.env().loop.cancel(budget_timer_);
  control_->stop();
  drain_->begin(reason);
}

int App::run() {
  for (auto& s : servers_) s->start();
  for (auto& w : workers_) w->start([this] { drain_->worker_finished(); });
  control_->start();
  if (zds_) zds_->start();
  std::string pod_listeners;
  for (const std::string& ep : workers_.front()->listening()) pod_listeners += (pod_listeners.empty() ? "" : ",") + ep;
  ZT_LOG(log_, info, "app", "serving", {"workers", workers_.size()}, {"proxy", pod_listeners},
         {"admin", cfg_.admin_addr.to_string()}, {"stats", cfg_.stats_addr.to_string()},
         {"readiness", cfg_.readiness_addr.to_string()});
  rt_.run();
  zds_.reset();      // before the workers its pods run on
  workers_.clear();  // joins the worker threads
  ZT_LOG(log_, info, "app", "stopped");
  return 0;
}

// The mesh state plus each certificate the control plane holds, in
// upstream's "certificates" shape (identity, state, chain with validity).
std::string App::config_dump() const {
  nlohmann::json doc = nlohmann::json::parse(core::mesh::config_dump_json(*state_.get()));
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [identity, st] : control_->certificates()) {
    nlohmann::json entries = nlohmann::json::array();
    if (st.credentials) {
      for (const tls::Certificate& c : st.credentials->chain) {
        entries.push_back({{"pem", c.to_pem()}, {"validFrom", rfc3339_seconds(c.not_before())},
                           {"expirationTime", rfc3339_seconds(c.not_after())}});
      }
    }
    nlohmann::json entry = {{"identity", identity}, {"certChain", entries}};
    if (st.credentials) entry["nextRefresh"] = rfc3339_seconds(st.refresh_at);
    entry["fetches"] = st.fetches;
    entry["failures"] = st.failures;
    switch (st.state) {
      case control::CertificateStatus::State::available: entry["state"] = "Available"; break;
      case control::CertificateStatus::State::pending: entry["state"] = "Initializing"; break;
      case control::CertificateStatus::State::failed:
        entry["state"] = st.credentials ? "Available" : "Unavailable";
        entry["lastError"] = st.last_error;
        break;
    }
    list.push_back(std::move(entry));
  }
  doc["certificates"] = list;
  if (ads_) {
    const xds::AdsStatus& st = ads_->status();
    nlohmann::json xds = {{"address", *cfg_.xds_address}, {"connected", st.connected}, {"connects", st.connects},
                          {"acks", st.acks}, {"nacks", st.nacks}, {"lastTermination", st.last_termination}};
    nlohmann::json known = nlohmann::json::object();
    for (const auto& [type, n] : st.known) known[type] = n;
    xds["resources"] = known;
    if (cfg_.xds_on_demand) xds["onDemand"] = {{"asked", st.demanded}, {"pending", st.demands_pending}};
    if (st.last_nack) {
      xds["lastNack"] = {{"typeUrl", st.last_nack->type_url}, {"nonce", st.last_nack->nonce},
                         {"detail", st.last_nack->detail}, {"at", rfc3339_seconds(st.last_nack->at)}};
    }
    doc["xds"] = xds;
  }
  if (zds_) {
    const core::inpod::ZdsCounters& c = zds_->counters();
    nlohmann::json pods = nlohmann::json::array();
    for (const core::inpod::PodStatus& p : zds_->pods()) {
      const char* state = p.state == core::inpod::PodStatus::State::running    ? "Running"
                          : p.state == core::inpod::PodStatus::State::starting ? "Starting"
                                                                              : "Retrying";
      nlohmann::json pod = {{"uid", p.uid}, {"name", p.info.name}, {"namespace", p.info.ns},
                            {"serviceAccount", p.info.service_account}, {"netns", p.netns}, {"state", state},
                            {"attempts", p.attempts}};
      if (!p.error.empty()) pod["lastError"] = p.error;
      if (auto w = placement_->worker_of(p.uid)) pod["worker"] = *w;
      pods.push_back(std::move(pod));
    }
    doc["inpod"] = {{"uds", cfg_.inpod_uds}, {"connected", zds_->connected()}, {"snapshotApplied", zds_->ready()},
                    {"connects", c.connects}, {"connectFailures", c.connect_failures}, {"messages", c.messages},
                    {"nacks", c.nacks}, {"podStartFailures", c.pod_start_failures}, {"pods", pods}};
  }
  return doc.dump(2) + "\n";
}

}  // namespace zt::app
