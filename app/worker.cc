#include "app/worker.h"

#include <algorithm>

#include "io/real/sockopt.h"

namespace zt::app {

namespace proxy = core::proxy;

std::vector<Endpoint> endpoints_of(const ListenAddr& addr, bool ipv6) {
  const uint16_t port = addr.port();
  if (addr.kind == ListenAddr::Kind::localhost) {
    std::vector<Endpoint> eps{{IpAddr::loopback(IpAddr::Family::v4), port}};
    if (ipv6) eps.push_back({IpAddr::loopback(IpAddr::Family::v6), port});
    return eps;
  }
  if (addr.endpoint.ip.is_unspecified() && addr.endpoint.ip.is_v6()) {
    return {addr.endpoint, {IpAddr::unspecified(IpAddr::Family::v4), port}};
  }
  return {addr.endpoint};
}

std::vector<Endpoint> pod_endpoints(const Config& cfg, const core::mesh::StateSnapshot& state, const ListenAddr& addr) {
  if (!cfg.listen_on_workload_ips) return endpoints_of(addr, cfg.ipv6_enabled);
  std::vector<Endpoint> eps;
  for (const auto& [uid, w] : state.workloads().by_uid) {
    if (w->node != cfg.node_name) continue;
    for (const IpAddr& ip : w->ips) {
      if (ip.is_v6() && !cfg.ipv6_enabled) continue;
      Endpoint ep{ip, addr.port()};
      if (std::find(eps.begin(), eps.end(), ep) == eps.end()) eps.push_back(ep);
    }
  }
  return eps;
}

Worker::Worker(size_t index, WorkerShared shared)
    : index_(index), shared_(shared), rt_(std::nullopt, &shared.log), server_tls_(shared.server_tls) {}

Worker::~Worker() {
  if (thread_.joinable()) {
    rt_.stop();
    thread_.join();
  }
}

Result<void> Worker::listen() {
  Env& env = rt_.env();
  const Config& cfg = shared_.cfg;
  core::hbone::PoolConfig pool_cfg;
  pool_cfg.streams_per_connection_max = cfg.pool_max_streams_per_connection;
  pool_cfg.idle_release = cfg.pool_unused_release_timeout;
  pool_ = std::make_unique<core::hbone::Pool>(
      env, pool_cfg, [this](const core::hbone::PoolKey& key) { return client_context(key); });
  if (cfg.inpod_enabled) {
    build_pod_proxies();
    return ok();  // listeners open inside each pod as it is enrolled
  }
  return open_listeners();
}

// XDS_ON_DEMAND: the data path's asks go to the xDS client on the control
// thread; each answer is posted back here, where the connection waits.
// Without on-demand: none (an empty OnDemand asks nothing).
proxy::OnDemand Worker::on_demand() {
  proxy::OnDemand d;
  if (!shared_.demand) return d;
  d.ask = [this](std::string key, std::function<void()> answered) {
    shared_.demand(std::move(key), [loop = &rt_.env().loop, answered = std::move(answered)]() mutable {
      loop->post(std::move(answered));
    });
  };
  return d;
}

void Worker::build_pod_proxies() {
  const Config& cfg = shared_.cfg;
  core::inpod::PodProxyConfig pc;
  pc.ipv6 = cfg.ipv6_enabled;
  pc.node = cfg.node_name.value_or("");
  pc.mark = cfg.packet_mark.value_or(1337);
  pc.drain_deadline = cfg.connection_termination_deadline;
  pc.outbound_port = cfg.outbound_addr.port();
  pc.inbound_port = cfg.inbound_addr.port();
  pc.inbound_plaintext_port = cfg.inbound_plaintext_addr.port();
  pc.pool.streams_per_connection_max = cfg.pool_max_streams_per_connection;
  pc.pool.idle_release = cfg.pool_unused_release_timeout;
  pc.out.metrics = &traffic_;
  pc.in.metrics = &traffic_;
  pc.out.on_demand = on_demand();  // (the pods' proxies ask as the node-level ones do)
  pc.in.on_demand = on_demand();
  pc.in.shared_dials = &dials_;
  pc.budget = shared_.budget;
  pc.in.original_source = cfg.enable_orig_src.value_or(io::real::sockopt::can_set_transparent());
  core::inpod::PodTls tls;
  tls.client = [this](const core::hbone::PoolKey& key) { return client_context(key); };
  tls.server = [this](const core::proxy::LocalWorkload& local) { return pod_server_tls(local); };
  proxy::StateSource state = [this] { return shared_.state.get(); };
  pods_ = std::make_unique<core::inpod::PodProxies>(rt_.env(), std::move(pc), state, std::move(tls));
}

// A pod's (or the dedicated workload's) certificate is its own identity, as
// the agent or PROXY_WORKLOAD_INFO names it: found among this node's
// workloads by name, namespace and service account.
Result<std::shared_ptr<const tls::TlsContext>> Worker::pod_server_tls(const core::proxy::LocalWorkload& local) {
  tls::TlsConfig tc;
  tc.role = tls::TlsRole::server;
  tc.roots = shared_.certs.roots();
  tc.trust_domain = shared_.cfg.trust_domain;
  tc.allow_tls12 = shared_.cfg.tls12_enabled;
  auto lookup = std::make_shared<core::proxy::LocalWorkloadLookup>(local);
  tc.credentials_for = [this, lookup](const Endpoint&) -> std::shared_ptr<const tls::Credentials> {
    const core::mesh::Workload* w = lookup->find(shared_.state.get());
    return w ? shared_.certs.get(w->identity().to_string()) : nullptr;
  };
  return tls::TlsContext::create(tc);
}

void Worker::start_pod(std::string uid, core::inpod::PodInfo info, NetNamespacePtr ns,
                       std::function<void(Result<void>)> done) {
  rt_.env().loop.post([this, uid = std::move(uid), info = std::move(info), ns = std::move(ns),
                       done = std::move(done)]() mutable {
    if (!pods_ || draining_) return done(Error(Errc::cancelled, "the node is draining"));
    // On demand the state holds only what was asked for: ask for the pod
    // itself by uid, so its workload (its identity, hence its certificate)
    // is there before its first connection needs it.
    if (shared_.demand) shared_.demand(uid, [] {});
    done(pods_->start(uid, info, std::move(ns)));
  });
}

void Worker::stop_pod(std::string uid) {
  rt_.env().loop.post([this, uid = std::move(uid)] {
    if (pods_) pods_->stop(uid);
  });
}

// Opens what the current state asks for and is not open yet: everything on
// the first call; later (--listen-on-workload-ips), the ports of workloads
// that arrived on this node. Listeners of workloads that left stay open
// (connections to them find no workload and are refused).
Result<void> Worker::open_listeners() {
  Env& env = rt_.env();
  const Config& cfg = shared_.cfg;
  if (!cfg.proxy_enabled) return ok();
  // Local mode has no capture, so nothing to bypass: no SO_MARK.
  proxy::StateSource state = [this] { return shared_.state.get(); };
  // Access log lines go through the worker's Env log (target "access").
  proxy::OutboundConfig out_cfg;
  out_cfg.mark = std::nullopt;
  out_cfg.metrics = &traffic_;
  proxy::InboundConfig in_cfg;
  in_cfg.mark = std::nullopt;
  in_cfg.metrics = &traffic_;
  in_cfg.shared_dials = &dials_;
  if (cfg.proxy_workload_info) {
    // Dedicated mode: this proxy serves one workload, named by
    // PROXY_WORKLOAD_INFO: it is every connection's source outbound and the
    // only target inbound, and its identity is the certificate presented.
    const WorkloadInfo& wi = *cfg.proxy_workload_info;
    const proxy::LocalWorkload local{wi.name, wi.namespace_name, wi.service_account, cfg.node_name.value_or("")};
    out_cfg.local = local;
    in_cfg.local = local;
    if (!dedicated_tls_) {
      auto ctx = pod_server_tls(local);
      if (!ctx) return Error(ctx.code(), "TLS for the dedicated workload: " + ctx.error().message());
      dedicated_tls_ = true;
      server_tls_ = *ctx;
    }
  }
  out_cfg.on_demand = on_demand();
  in_cfg.on_demand = on_demand();

  ListenOptions opts;
  opts.reuse_port = true;  // every worker listens on the same ports
  const std::shared_ptr<const core::mesh::StateSnapshot> snapshot = shared_.state.get();
  auto open = [&](const ListenAddr& addr) -> Result<std::vector<std::unique_ptr<Listener>>> {
    std::vector<std::unique_ptr<Listener>> out;
    for (const Endpoint& ep : pod_endpoints(cfg, *snapshot, addr)) {
      if (!open_.insert(ep).second) continue;
      auto l = env.net.listen(ep, opts);
      if (!l) {
        open_.erase(ep);
        return Error(l.code(), "listening on " + ep.to_string() + ": " + l.error().message());
      }
      listening_.push_back(ep.to_string());
      out.push_back(std::move(*l));
    }
    return out;
  };
  auto out_l = open(cfg.outbound_addr);
  if (!out_l) return out_l.error();
  auto in_l = open(cfg.inbound_addr);
  if (!in_l) return in_l.error();
  auto plain_l = open(cfg.inbound_plaintext_addr);
  if (!plain_l) return plain_l.error();
  const size_t first_new[] = {outbounds_.size(), inbounds_.size(), plaintexts_.size(), socks_.size()};
  for (auto& l : *out_l) outbounds_.push_back(std::make_unique<proxy::Outbound>(env, std::move(l), state, *pool_, out_cfg));
  for (auto& l : *in_l) {
    inbounds_.push_back(std::make_unique<proxy::Inbound>(env, std::move(l), server_tls_, state, in_cfg));
  }
  for (auto& l : *plain_l) plaintexts_.push_back(std::make_unique<proxy::InboundPlaintext>(env, std::move(l), state, in_cfg));
  if (cfg.socks5_addr && !outbounds_.empty()) {
    auto socks_l = open(*cfg.socks5_addr);
    if (!socks_l) return socks_l.error();
    for (auto& l : *socks_l) {
      socks_.push_back(std::make_unique<proxy::Socks5Server>(env, std::move(l), state, *outbounds_.front()));
    }
  }
  if (shared_.budget) {
    for (size_t i = first_new[0]; i < outbounds_.size(); ++i) outbounds_[i]->set_budget(shared_.budget);
    for (size_t i = first_new[1]; i < inbounds_.size(); ++i) inbounds_[i]->set_budget(shared_.budget);
    for (size_t i = first_new[2]; i < plaintexts_.size(); ++i) plaintexts_[i]->set_budget(shared_.budget);
    for (size_t i = first_new[3]; i < socks_.size(); ++i) socks_[i]->set_budget(shared_.budget);
  }
  if (running_) {
    for (size_t i = first_new[0]; i < outbounds_.size(); ++i) outbounds_[i]->start();
    for (size_t i = first_new[1]; i < inbounds_.size(); ++i) inbounds_[i]->start();
    for (size_t i = first_new[2]; i < plaintexts_.size(); ++i) plaintexts_[i]->start();
    for (size_t i = first_new[3]; i < socks_.size(); ++i) socks_[i]->start();
  }
  return ok();
}

Result<std::shared_ptr<const tls::TlsContext>> Worker::client_context(const core::hbone::PoolKey& key) {
  auto creds = shared_.certs.get(key.source_identity);
  if (!creds) return Error(Errc::invalid_argument, "no certificate for " + key.source_identity + " yet");
  ClientContext& cached = client_contexts_[key.source_identity];
  if (cached.ctx && cached.creds == creds) return cached.ctx;
  tls::TlsConfig tc;
  tc.role = tls::TlsRole::client;
  tc.credentials = creds;
  tc.roots = shared_.certs.roots();
  tc.allow_tls12 = shared_.cfg.tls12_enabled;
  auto made = tls::TlsContext::create(tc);
  if (!made) return made.error();
  cached = {std::move(creds), *made};
  return cached.ctx;
}

void Worker::start(std::function<void()> on_finished) {
  running_ = true;
  // Listeners may come later (workloads arriving on this node): the loop
  // waits for them; only the drain ends it.
  rt_.keep_alive(true);
  for (auto& o : outbounds_) o->start();
  for (auto& i : inbounds_) i->start();
  for (auto& p : plaintexts_) p->start();
  for (auto& s : socks_) s->start();
  thread_ = std::thread([this, on_finished = std::move(on_finished)] {
    rt_.run();  // until drained
    finished_.store(true, std::memory_order_release);
    if (on_finished) on_finished();
  });
}

void Worker::drain(Duration deadline) {
  rt_.env().loop.post([this, deadline] { drain_now(deadline); });
}

void Worker::drain_now(Duration deadline) {
  draining_ = true;
  for (auto& s : socks_) s->drain();
  for (auto& o : outbounds_) o->drain();
  for (auto& p : plaintexts_) p->drain();
  for (auto& i : inbounds_) i->drain();
  if (pods_) pods_->drain_all();
  poll_drain(rt_.env().clock.now() + deadline);
}

void Worker::poll_drain(MonoTime until) {
  size_t active = 0;
  for (auto& o : outbounds_) active += o->active();
  for (auto& i : inbounds_) active += i->active();
  for (auto& p : plaintexts_) active += p->active();
  if (pods_) active += pods_->active();
  if (active == 0 || rt_.env().clock.now() >= until) {
    rt_.stop();
    return;
  }
  rt_.env().loop.run_after(std::chrono::milliseconds(50), [this, until] { poll_drain(until); });
}

void Worker::copy_metrics(std::function<void(core::metrics::Registry)> reply) {
  // Not started, or its loop is over: nothing changes the registry any more.
  if (finished() || !thread_.joinable()) return reply(registry_);
  // If the loop ends before it runs this, the post is dropped and the
  // caller's wait runs out: it keeps this worker's previous copy.
  rt_.env().loop.post([this, reply = std::move(reply)] { reply(registry_); });
}

void Worker::state_changed() {
  rt_.env().loop.post([this] {
    if (shared_.cfg.listen_on_workload_ips && !draining_) {
      if (auto r = open_listeners(); !r) {
        ZT_LOG(rt_.env().log, warn, "proxy", "cannot listen for a workload", {"worker", index_},
               {"error", r.error().message()});
      }
    }
    size_t closed = 0;
    for (auto& i : inbounds_) closed += i->recheck_policies();
    for (auto& p : plaintexts_) closed += p->recheck_policies();
    if (pods_) closed += pods_->recheck_policies();
    if (closed > 0) {
      ZT_LOG(rt_.env().log, info, "proxy", "policy change closed connections", {"worker", index_},
             {"connections", closed});
    }
  });
}

void Worker::roots_changed(std::shared_ptr<const tls::TlsContext> server_tls) {
  rt_.env().loop.post([this, server_tls = std::move(server_tls)] {
    if (dedicated_tls_ && shared_.cfg.proxy_workload_info) {
      const WorkloadInfo& wi = *shared_.cfg.proxy_workload_info;
      auto ctx = pod_server_tls({wi.name, wi.namespace_name, wi.service_account, shared_.cfg.node_name.value_or("")});
      if (ctx) server_tls_ = *ctx;
    } else {
      server_tls_ = server_tls;
    }
    for (auto& i : inbounds_) i->set_tls(server_tls_);
    client_contexts_.clear();  // rebuilt with the new roots on next use
    if (pods_) pods_->roots_changed();
  });
}

std::vector<std::string> Worker::listening() const { return listening_; }

}  // namespace zt::app
