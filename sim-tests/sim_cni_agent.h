// The CNI node agent of in-pod mode as a simulated peer (the stand-in for
// istio-cni's ZDS server): on its own host, it holds its pods (a state
// directory survives its restarts), serves one ztunnel connection at a time
// over a packet socket (World::listen_packets), sends the snapshot on each
// connection and then adds and deletes as they happen, one message at a
// time, each waiting for its ack. A crash of its host is an agent restart.
//
//   SimCniAgent agent(world, agent_host, "/var/run/ztunnel/node1.sock");
//   agent.start();
//   agent.add(uid, PodInfo{name, ns, sa}, world.net_namespace(pod_host.id()));
//   agent.del(uid);
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/inpod/pod_proxies.h"
#include "core/inpod/zds.h"
#include "io/async.h"
#include "io/sim/packets.h"
#include "io/sim/world.h"

namespace zt::sim_tests {

class SimCniAgent {
 public:
  SimCniAgent(io::sim::World& w, io::sim::Host& host, std::string path) : w_(w), host_(host), path_(std::move(path)) {
    host_.on_crash([this] { stop(); });
    host_.on_restart([this] { start(); });
  }
  ~SimCniAgent() { stop(); }

  void start() {
    auto l = w_.listen_packets(host_.id(), path_);
    ZT_ASSERT(l.ok());
    listener_ = std::move(*l);
    scope_ = std::make_unique<Scope>();
    scope_->spawn(serve(this));
  }
  void stop() {
    scope_.reset();
    session_.reset();
    conn_.reset();
    listener_.reset();
  }

  void add(const std::string& uid, const core::inpod::PodInfo& info, NetNamespacePtr ns) {
    pods_[uid] = {info, std::move(ns)};
    queue_.push_back(core::inpod::AddPod{uid, info, ""});
  }
  void del(const std::string& uid) {
    pods_.erase(uid);
    queue_.push_back(core::inpod::DelPod{uid});
  }
  bool holds(const std::string& uid) const { return pods_.contains(uid); }
  std::set<std::string> uids() const {
    std::set<std::string> out;
    for (const auto& [uid, p] : pods_) out.insert(uid);
    return out;
  }
  const std::vector<std::string>& nacks() const { return nacks_; }
  uint64_t acks() const { return acks_; }

 private:
  struct Held {
    core::inpod::PodInfo info;
    NetNamespacePtr ns;
  };

  static Task<void> serve(SimCniAgent* self) {
    for (;;) {
      Result<PacketSocketPtr> s = co_await io::detail::make_awaiter<Result<PacketSocketPtr>>(
          [self](io::sim::PacketListener::AcceptCallback cb) { self->listener_->accept(std::move(cb)); });
      if (!s) co_return;
      // A new ztunnel connection replaces the old (a restarted ztunnel
      // connects again while the old connection idles, unread).
      self->session_.reset();
      self->conn_ = std::move(*s);
      self->session_ = std::make_unique<Scope>();
      self->session_->spawn(self->session(*self->conn_));
    }
  }

  Task<bool> exchange(PacketSocket& c, core::inpod::ZdsRequest req, NetNamespacePtr ns) {
    if (ns) io::sim::attach_namespaces(c, {std::move(ns)});
    const std::string bytes = core::inpod::encode_request(req);
    Result<void> sent = co_await io::detail::make_awaiter<Result<void>>([&](PacketSocket::SendCallback cb) {
      c.send(ConstBytes(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), std::move(cb));
    });
    if (!sent) co_return false;
    std::vector<uint8_t> buf(4096);
    Result<Packet> ack = co_await io::detail::make_awaiter<Result<Packet>>(
        [&](PacketSocket::ReceiveCallback cb) { c.receive(buf, std::move(cb)); });
    if (!ack || ack->size == 0) co_return false;
    // WorkloadResponse{ack{error}}: an empty error encodes as a bare ack.
    const std::string ok_ack = core::inpod::encode_ack("");
    if (ack->size == ok_ack.size() && std::equal(ok_ack.begin(), ok_ack.end(), buf.begin())) {
      ++acks_;
    } else {
      nacks_.push_back(std::string(buf.begin(), buf.begin() + ack->size));
    }
    co_return true;
  }

  Task<void> session(PacketSocket& c) {
    std::vector<uint8_t> buf(4096);
    Result<Packet> hello = co_await io::detail::make_awaiter<Result<Packet>>(
        [&](PacketSocket::ReceiveCallback cb) { c.receive(buf, std::move(cb)); });
    if (!hello || hello->size == 0) co_return;
    queue_.clear();  // the snapshot says it all
    // A copy: the pods may change while the snapshot is on its way.
    const std::map<std::string, Held> snapshot = pods_;
    for (const auto& [uid, held] : snapshot) {
      core::inpod::ZdsRequest add = core::inpod::AddPod{uid, held.info, ""};
      const bool sent = co_await exchange(c, std::move(add), held.ns);
      if (!sent) co_return;
    }
    core::inpod::ZdsRequest done = core::inpod::SnapshotSent{};
    const bool sent = co_await exchange(c, std::move(done), nullptr);
    if (!sent) co_return;
    for (;;) {
      while (queue_.empty()) {
        co_await io::sleep(host_.env().loop, std::chrono::milliseconds(10));
      }
      core::inpod::ZdsRequest req = queue_.front();
      queue_.pop_front();
      NetNamespacePtr ns;
      if (auto* add = std::get_if<core::inpod::AddPod>(&req)) {
        auto it = pods_.find(add->uid);
        if (it == pods_.end()) continue;  // deleted since
        ns = it->second.ns;
      }
      const bool ok = co_await exchange(c, std::move(req), std::move(ns));
      if (!ok) co_return;
    }
  }

  io::sim::World& w_;
  io::sim::Host& host_;
  std::string path_;
  std::map<std::string, Held> pods_;
  std::deque<core::inpod::ZdsRequest> queue_;
  std::unique_ptr<io::sim::PacketListener> listener_;
  PacketSocketPtr conn_;
  std::unique_ptr<Scope> session_;  // the current connection's
  std::unique_ptr<Scope> scope_;    // the accept loop
  std::vector<std::string> nacks_;
  uint64_t acks_ = 0;
};

// ztunnel's side of enrollment on one simulated node: starts a pod's
// proxies on the node's loop (app/ posts to the pod's worker) and tells
// `proxied` (if set) when they run and when they stop. A start posted
// before ztunnel died is dropped with it.
class SimPodRunner final : public core::inpod::PodRunner {
 public:
  SimPodRunner(Loop& loop, core::inpod::PodProxies& pods, std::function<void(bool)> proxied = {})
      : loop_(loop), pods_(pods), proxied_(std::move(proxied)) {}
  ~SimPodRunner() override { *alive_ = false; }
  void start(const std::string& uid, const core::inpod::PodInfo& info, NetNamespacePtr ns, Done done) override {
    loop_.post([this, alive = alive_, uid, info, ns = std::move(ns), done = std::move(done)]() mutable {
      if (!*alive) return;  // ztunnel died (and its ZDS client with it)
      Result<void> started = pods_.start(uid, info, std::move(ns));
      if (started && proxied_) proxied_(true);
      done(std::move(started));
    });
  }
  void stop(const std::string& uid) override {
    if (!pods_.running(uid)) return;
    pods_.stop(uid);
    if (proxied_) proxied_(false);
  }

 private:
  Loop& loop_;
  core::inpod::PodProxies& pods_;
  std::function<void(bool)> proxied_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace zt::sim_tests
