#include "io/sim/udp.h"

#include <algorithm>

namespace zt::io::sim {
namespace {
int64_t ns(World& w) { return w.now().time_since_epoch().count(); }
}  // namespace

void UdpEngine::deliver(World& w, HostId to_host, const Endpoint& to, const Endpoint& from,
                        std::vector<uint8_t> bytes) {
  if (!w.host(to_host).up()) return;
  auto it = w.udp_.find({to_host, to.ip, to.port});
  if (it == w.udp_.end()) it = w.udp_.find({to_host, IpAddr::unspecified(to.ip.family()), to.port});
  if (it == w.udp_.end()) return;  // no socket: dropped (ICMP unreachable is not modelled)
  UdpState& s = *it->second;
  if (s.queue.size() >= w.options().udp_queue_max) {
    w.count_fault("udp_queue_full");
    return;
  }
  w.trace().record("udp.arrive", ns(w), to_host, bytes.size());
  s.queue.emplace_back(from, std::move(bytes));
  try_recv(w, s);
}

void UdpEngine::try_recv(World& w, UdpState& s) {
  if (!s.parked || s.queue.empty()) return;
  s.parked = false;
  auto [from, bytes] = std::move(s.queue.front());
  s.queue.pop_front();
  const size_t n = std::min(bytes.size(), s.buf.size());  // the rest is truncated, as UDP does
  std::copy_n(bytes.begin(), n, s.buf.begin());
  s.completion = w.scheduler().after(Duration(0), s.host, "udp.recv.cb", [&s, n, from = from] {
    s.completion = 0;
    auto cb = std::move(s.cb);
    cb(Datagram{n, from});
  });
}

void UdpEngine::crash(World& w, HostId h) {
  for (auto it = w.udp_.begin(); it != w.udp_.end();) {
    if (std::get<0>(it->first) == h) {
      UdpState* s = it->second;
      s->closed = true;
      s->parked = false;
      s->completion = 0;
      s->cb = nullptr;
      s->queue.clear();
      it = w.udp_.erase(it);
    } else {
      ++it;
    }
  }
}

SimUdpSocket::SimUdpSocket(World& w, std::unique_ptr<UdpState> st) : w_(w), st_(std::move(st)) {
  w_.udp_[{st_->host, st_->local.ip, st_->local.port}] = st_.get();
}

SimUdpSocket::~SimUdpSocket() {
  for (auto& [token, ev] : sends_) w_.scheduler().cancel(ev);
  if (st_->completion) w_.scheduler().cancel(st_->completion);
  st_->cb = nullptr;
  st_->parked = false;
  close();
}

void SimUdpSocket::send_to(const Endpoint& to, ConstBytes data, SendCallback done) {
  World& w = w_;
  const size_t n = data.size();
  if (!st_->closed) {
    Host* dst = to.ip.is_loopback() ? &w.host(st_->host) : w.host_of(to.ip);
    if (dst && !w.blocked(st_->host, dst->id()) && !w.rng().chance(w.options().faults.udp_loss)) {
      std::vector<uint8_t> bytes(data.begin(), data.end());
      w.scheduler().after(w.delay(st_->host, dst->id()), kNetwork, "udp.datagram",
                          [&w, to_host = dst->id(), to, from = st_->local, bytes = std::move(bytes)]() mutable {
                            UdpEngine::deliver(w, to_host, to, from, std::move(bytes));
                          });
    } else if (dst) {
      w.count_fault("udp_lost");
    }
  }
  Result<size_t> r = st_->closed ? Result<size_t>(Errc::not_connected) : Result<size_t>(n);
  const uint64_t token = ++send_seq_;
  sends_[token] = w.scheduler().after(Duration(0), st_->host, "udp.send.cb",
                                      [this, token, done = std::move(done), r = std::move(r)] {
                                        sends_.erase(token);
                                        done(r);
                                      });
}

void SimUdpSocket::recv_from(MutableBytes buf, RecvCallback done) {
  ZT_ASSERT(!st_->parked && st_->completion == 0);  // one receive at a time
  st_->cb = std::move(done);
  if (st_->closed) {
    st_->completion = w_.scheduler().after(Duration(0), st_->host, "udp.recv.closed", [st = st_.get()] {
      st->completion = 0;
      auto cb = std::move(st->cb);
      cb(Errc::not_connected);
    });
    return;
  }
  st_->buf = buf;
  st_->parked = true;
  UdpEngine::try_recv(w_, *st_);
}

void SimUdpSocket::close() {
  if (st_->closed) return;
  st_->closed = true;
  w_.udp_.erase({st_->host, st_->local.ip, st_->local.port});
  st_->queue.clear();
  if (st_->parked) {
    st_->parked = false;
    st_->completion = w_.scheduler().after(Duration(0), st_->host, "udp.recv.cancelled", [st = st_.get()] {
      st->completion = 0;
      auto cb = std::move(st->cb);
      cb(Errc::cancelled);
    });
  }
}

}  // namespace zt::io::sim
