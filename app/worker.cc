#include "app/worker.h"

#include "app/log.h"

#include <algorithm>
#include <cstdio>
#include <future>

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

std::vector<Endpoint> pod_endpoints(const Config& cfg, const mesh::StateSnapshot& state, const ListenAddr& addr) {
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

Worker::Worker(size_t index, WorkerShared shared) : index_(index), shared_(shared) {}

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
      env, pool_cfg, [this](const core::hbone::PoolKey& key) -> Result<std::shared_ptr<const tls::TlsContext>> {
        auto& ctx = client_contexts_[key.source_identity];
        if (!ctx) {
          tls::TlsConfig tc;
          tc.role = tls::TlsRole::client;
          tc.credentials = shared_.certs.for_identity(key.source_identity, rt_.env().clock.wall_now());
          if (!tc.credentials) return Error(Errc::invalid_argument, "no certificate for " + key.source_identity);
          tc.roots = shared_.certs.roots();
          tc.allow_tls12 = shared_.cfg.tls12_enabled;
          auto made = tls::TlsContext::create(tc);
          if (!made) return made.error();
          ctx = *made;
        }
        return ctx;
      });

  // Local mode has no capture, so nothing to bypass: no SO_MARK.
  proxy::StateSource state = [this] { return shared_.state.get(); };
  // One access log line per connection when it ends (upstream's "access"
  // target, filtered like upstream's: info for complete, error for failed).
  const proxy::AccessLogSink access_log = [](const proxy::ConnectionRecord& r) {
    const log::Level level = r.ok() ? log::Level::info : log::Level::error;
    if (log::enabled(level, "access")) log::raw(level, "access", proxy::format_access_log(r));
  };
  proxy::OutboundConfig out_cfg;
  out_cfg.mark = std::nullopt;
  out_cfg.metrics = &registry_;
  out_cfg.access_log = access_log;
  proxy::InboundConfig in_cfg;
  in_cfg.mark = std::nullopt;
  in_cfg.metrics = &registry_;
  in_cfg.access_log = access_log;

  ListenOptions opts;
  opts.reuse_port = true;  // every worker listens on the same ports
  auto open = [&](const ListenAddr& addr) -> Result<std::vector<std::unique_ptr<Listener>>> {
    std::vector<std::unique_ptr<Listener>> out;
    for (const Endpoint& ep : pod_endpoints(cfg, *shared_.state.get(), addr)) {
      auto l = env.net.listen(ep, opts);
      if (!l) return Error(l.code(), "listening on " + ep.to_string() + ": " + l.error().message());
      listening_.push_back(ep.to_string());
      out.push_back(std::move(*l));
    }
    return out;
  };
  if (!cfg.proxy_enabled) return ok();
  auto out_l = open(cfg.outbound_addr);
  if (!out_l) return out_l.error();
  auto in_l = open(cfg.inbound_addr);
  if (!in_l) return in_l.error();
  auto plain_l = open(cfg.inbound_plaintext_addr);
  if (!plain_l) return plain_l.error();
  for (auto& l : *out_l) outbounds_.push_back(std::make_unique<proxy::Outbound>(env, std::move(l), state, *pool_, out_cfg));
  for (auto& l : *in_l) {
    inbounds_.push_back(std::make_unique<proxy::Inbound>(env, std::move(l), shared_.server_tls, state, in_cfg));
  }
  for (auto& l : *plain_l) plaintexts_.push_back(std::make_unique<proxy::InboundPlaintext>(env, std::move(l), state, in_cfg));
  if (cfg.socks5_addr && !outbounds_.empty()) {
    auto socks_l = open(*cfg.socks5_addr);
    if (!socks_l) return socks_l.error();
    for (auto& l : *socks_l) {
      socks_.push_back(std::make_unique<proxy::Socks5Server>(env, std::move(l), state, *outbounds_.front()));
    }
  }
  return ok();
}

void Worker::start() {
  for (auto& o : outbounds_) o->start();
  for (auto& i : inbounds_) i->start();
  for (auto& p : plaintexts_) p->start();
  for (auto& s : socks_) s->start();
  thread_ = std::thread([this] {
    // Returns once drained, or at once when this worker has nothing to
    // serve (no workloads of ours with --listen-on-workload-ips).
    rt_.run();
    finished_.store(true, std::memory_order_release);
  });
}

void Worker::drain(Duration deadline) {
  rt_.env().loop.post([this, deadline] { drain_now(deadline); });
}

void Worker::drain_now(Duration deadline) {
  for (auto& s : socks_) s->drain();
  for (auto& o : outbounds_) o->drain();
  for (auto& p : plaintexts_) p->drain();
  for (auto& i : inbounds_) i->drain();
  poll_drain(rt_.env().clock.now() + deadline);
}

void Worker::poll_drain(MonoTime until) {
  size_t active = 0;
  for (auto& o : outbounds_) active += o->active();
  for (auto& i : inbounds_) active += i->active();
  for (auto& p : plaintexts_) active += p->active();
  if (active == 0 || rt_.env().clock.now() >= until) {
    rt_.stop();
    return;
  }
  rt_.env().loop.run_after(std::chrono::milliseconds(50), [this, until] { poll_drain(until); });
}

admin::Registry Worker::metrics() {
  if (finished() || !thread_.joinable()) return registry_;
  auto copied = std::make_shared<std::promise<admin::Registry>>();
  std::future<admin::Registry> result = copied->get_future();
  rt_.env().loop.post([this, copied] { copied->set_value(registry_); });
  if (result.wait_for(std::chrono::seconds(2)) == std::future_status::ready) return result.get();
  // The loop ended before it ran the copy: nothing changes the registry now.
  if (finished()) return registry_;
  return admin::Registry{};
}

void Worker::state_changed() {
  rt_.env().loop.post([this] {
    size_t closed = 0;
    for (auto& i : inbounds_) closed += i->recheck_policies();
    for (auto& p : plaintexts_) closed += p->recheck_policies();
    if (closed > 0) {
      log::line(log::Level::info, "policy change closed connections",
                "worker=" + std::to_string(index_) + " connections=" + std::to_string(closed));
    }
  });
}

std::vector<std::string> Worker::listening() const { return listening_; }

}  // namespace zt::app
