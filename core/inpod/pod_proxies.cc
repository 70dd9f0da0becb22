#include "core/inpod/pod_proxies.h"

#include <algorithm>

namespace zt::core::inpod {

struct PodProxies::Pod {
  Pod(const Env& node, std::unique_ptr<Network> pod_net)
      : net(std::move(pod_net)), env{node.clock, node.loop, *net, node.rng, node.faults, node.log} {}
  // Destroyed bottom-up: the proxies, then the pool, then the network.
  std::unique_ptr<Network> net;
  Env env;  // the loop's, with the pod's network
  std::string uid;
  proxy::LocalWorkload local;
  std::unique_ptr<hbone::Pool> pool;
  std::vector<std::unique_ptr<proxy::Outbound>> outbound;
  std::vector<std::unique_ptr<proxy::Inbound>> inbound;
  std::vector<std::unique_ptr<proxy::InboundPlaintext>> plaintext;
  std::vector<Endpoint> listening;
  MonoTime deadline{};  // retiring: cut what is still open then
  bool cut = false;     // its deadline passed: what was open has been reset

  size_t active() const {
    size_t n = 0;
    for (const auto& o : outbound) n += o->active();
    for (const auto& i : inbound) n += i->active();
    for (const auto& p : plaintext) n += p->active();
    return n;
  }
  // Resets what is still open (destroying the proxies would close it: a
  // FIN, which the client could take for a complete answer).
  void abort_all() {
    for (auto& o : outbound) o->abort_all();
    for (auto& i : inbound) i->abort_all();
    for (auto& p : plaintext) p->abort_all();
  }
  void drain() {
    for (auto& o : outbound) o->drain();
    for (auto& i : inbound) i->drain();
    for (auto& p : plaintext) p->drain();
  }
};

PodProxies::PodProxies(Env& env, PodProxyConfig cfg, proxy::StateSource state, PodTls tls)
    : env_(env), cfg_(std::move(cfg)), state_(std::move(state)), tls_(std::move(tls)) {}

PodProxies::~PodProxies() {
  if (poll_timer_ != kNoTimer) env_.loop.cancel(poll_timer_);
}

Result<void> PodProxies::start(const std::string& uid, const PodInfo& info, NetNamespacePtr ns) {
  auto net = env_.net.inside(std::move(ns), cfg_.mark);
  if (!net) return Error(net.code(), "entering the pod's network namespace: " + net.error().message());
  auto pod = std::make_unique<Pod>(env_, std::move(*net));
  pod->uid = uid;
  pod->local = proxy::LocalWorkload{info.name, info.ns, info.service_account, cfg_.node};

  // Listen first: a pod whose ports cannot be had starts nothing.
  std::vector<IpAddr> any{IpAddr::unspecified(IpAddr::Family::v4)};
  if (cfg_.ipv6) any.push_back(IpAddr::unspecified(IpAddr::Family::v6));
  std::vector<std::unique_ptr<Listener>> out_l, in_l, plain_l;
  auto open = [&](uint16_t port, std::vector<std::unique_ptr<Listener>>& into) -> Result<void> {
    for (const IpAddr& ip : any) {
      const Endpoint at{ip, port};
      auto l = pod->env.net.listen(at, ListenOptions{});
      if (!l) return Error(l.code(), "listening on " + at.to_string() + " in the pod: " + l.error().message());
      pod->listening.push_back((*l)->local());
      into.push_back(std::move(*l));
    }
    return ok();
  };
  if (auto r = open(cfg_.outbound_port, out_l); !r) return r;
  if (auto r = open(cfg_.inbound_plaintext_port, plain_l); !r) return r;
  if (auto r = open(cfg_.inbound_port, in_l); !r) return r;
  auto server_tls = tls_.server(pod->local);
  if (!server_tls) return Error(server_tls.code(), "the pod's TLS: " + server_tls.error().message());

  // Its sandbox was recreated: the old proxies go (after the new ones
  // could listen, which they can: a new namespace has its own ports).
  if (auto it = pods_.find(uid); it != pods_.end()) {
    std::unique_ptr<Pod> old = std::move(it->second);
    pods_.erase(it);
    retire(std::move(old));
  }

  pod->pool = std::make_unique<hbone::Pool>(pod->env, cfg_.pool, tls_.client);
  proxy::OutboundConfig out_cfg = cfg_.out;
  out_cfg.local = pod->local;
  out_cfg.mark = cfg_.mark;
  proxy::InboundConfig in_cfg = cfg_.in;
  in_cfg.local = pod->local;
  in_cfg.mark = cfg_.mark;
  for (auto& l : out_l) pod->outbound.push_back(std::make_unique<proxy::Outbound>(pod->env, std::move(l), state_, *pod->pool, out_cfg));
  for (auto& l : in_l) pod->inbound.push_back(std::make_unique<proxy::Inbound>(pod->env, std::move(l), *server_tls, state_, in_cfg));
  for (auto& l : plain_l) pod->plaintext.push_back(std::make_unique<proxy::InboundPlaintext>(pod->env, std::move(l), state_, in_cfg));
  if (cfg_.budget) {
    for (auto& o : pod->outbound) o->set_budget(cfg_.budget);
    for (auto& i : pod->inbound) i->set_budget(cfg_.budget);
    for (auto& p : pod->plaintext) p->set_budget(cfg_.budget);
  }
  for (auto& o : pod->outbound) o->start();
  for (auto& i : pod->inbound) i->start();
  for (auto& p : pod->plaintext) p->start();
  ZT_LOG(env_.log, info, "inpod", "pod proxied", {"uid", uid}, {"name", info.name}, {"namespace", info.ns},
         {"listeners", pod->listening.size()});
  pods_[uid] = std::move(pod);
  ++counters_.started;
  return ok();
}

void PodProxies::stop(const std::string& uid) {
  auto it = pods_.find(uid);
  if (it == pods_.end()) return;
  std::unique_ptr<Pod> pod = std::move(it->second);
  pods_.erase(it);
  ZT_LOG(env_.log, info, "inpod", "pod removed: draining", {"uid", uid}, {"connections", pod->active()});
  retire(std::move(pod));
}

void PodProxies::drain_all() {
  for (auto& [uid, pod] : pods_) pod->drain();
}

void PodProxies::retire(std::unique_ptr<Pod> pod) {
  ++counters_.stopped;
  pod->drain();  // listeners closed: the pod's port is free at once
  if (pod->active() == 0) return;  // destroyed here
  pod->deadline = env_.clock.now() + cfg_.drain_deadline;
  retiring_.push_back(std::move(pod));
  if (poll_timer_ == kNoTimer) {
    poll_timer_ = env_.loop.run_after(std::chrono::milliseconds(50), [this] {
      poll_timer_ = kNoTimer;
      poll_retiring();
    });
  }
}

// Retiring pods go once their connections have ended, or at their deadline:
// what is still open then is reset, and the pod goes at the next poll (the
// copies pass the resets on to the other side meanwhile) or once nothing is
// open.
void PodProxies::poll_retiring() {
  const MonoTime now = env_.clock.now();
  for (auto it = retiring_.begin(); it != retiring_.end();) {
    Pod& pod = **it;
    const size_t open = pod.active();
    if (open == 0 || pod.cut) {
      it = retiring_.erase(it);
      continue;
    }
    if (now >= pod.deadline) {
      pod.abort_all();
      pod.cut = true;
      counters_.cut_at_deadline += open;
      ZT_LOG(env_.log, info, "inpod", "pod drained at its deadline", {"uid", pod.uid}, {"cut", open});
    }
    ++it;
  }
  if (!retiring_.empty()) {
    poll_timer_ = env_.loop.run_after(std::chrono::milliseconds(50), [this] {
      poll_timer_ = kNoTimer;
      poll_retiring();
    });
  }
}

std::vector<std::string> PodProxies::uids() const {
  std::vector<std::string> out;
  for (const auto& [uid, pod] : pods_) out.push_back(uid);
  return out;
}

size_t PodProxies::active() const {
  size_t n = 0;
  for (const auto& [uid, pod] : pods_) n += pod->active();
  for (const auto& pod : retiring_) n += pod->active();
  return n;
}

std::vector<Endpoint> PodProxies::listening(const std::string& uid) const {
  auto it = pods_.find(uid);
  return it == pods_.end() ? std::vector<Endpoint>{} : it->second->listening;
}

const hbone::Pool* PodProxies::pool(const std::string& uid) const {
  auto it = pods_.find(uid);
  return it == pods_.end() ? nullptr : it->second->pool.get();
}

const proxy::Outbound* PodProxies::outbound(const std::string& uid) const {
  auto it = pods_.find(uid);
  return it == pods_.end() || it->second->outbound.empty() ? nullptr : it->second->outbound.front().get();
}

const proxy::Inbound* PodProxies::inbound(const std::string& uid) const {
  auto it = pods_.find(uid);
  return it == pods_.end() || it->second->inbound.empty() ? nullptr : it->second->inbound.front().get();
}

size_t PodProxies::recheck_policies() {
  size_t closed = 0;
  for (auto& [uid, pod] : pods_) {
    for (auto& i : pod->inbound) closed += i->recheck_policies();
    for (auto& p : pod->plaintext) closed += p->recheck_policies();
  }
  return closed;
}

void PodProxies::roots_changed() {
  for (auto& [uid, pod] : pods_) {
    auto ctx = tls_.server(pod->local);
    if (!ctx) continue;  // keeps the old context; the next change tries again
    for (auto& i : pod->inbound) i->set_tls(*ctx);
  }
}

}  // namespace zt::core::inpod
