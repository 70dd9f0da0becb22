#include "io/sim/tcp.h"

#include <algorithm>
#include <cstring>

namespace zt::io::sim {
namespace {

int64_t ns(World& w) { return w.now().time_since_epoch().count(); }

bool is_local(const Host& h, const IpAddr& ip) {
  if (ip.is_loopback()) return true;
  return std::find(h.addrs().begin(), h.addrs().end(), ip) != h.addrs().end();
}

}  // namespace

// --- segments ------------------------------------------------------------

Conn* TcpEngine::find(World& w, uint64_t id) {
  auto it = w.conns_.find(id);
  return it == w.conns_.end() ? nullptr : it->second.get();
}

void TcpEngine::send(World& w, Conn& c, int from, Segment seg) {
  const int to = 1 - from;
  const HostId hf = c.side[from].host, ht = c.side[to].host;
  w.trace_.record("tcp.send", ns(w), c.id, uint64_t(from) << 8 | seg.kind, seg.bytes.size() + seg.acked);
  if (w.blocked(hf, ht)) {
    c.held[from].push_back(std::move(seg));
    return;
  }
  MonoTime t = std::max(w.now() + w.delay(hf, ht), c.last_arrival[from]);
  c.last_arrival[from] = t;
  auto shared = std::make_shared<Segment>(std::move(seg));
  w.in_flight_bytes_ += shared->bytes.size();
  w.sched_.at(t, kNetwork, "tcp.segment", [&w, id = c.id, to, shared] {
    w.in_flight_bytes_ -= shared->bytes.size();
    arrive(w, id, to, *shared);
  });
}

void TcpEngine::arrive(World& w, uint64_t conn_id, int to, const Segment& seg) {
  Conn* c = find(w, conn_id);
  if (!c) return;
  Side& s = c->side[to];
  if (s.dead || !w.host(s.host).up()) return;  // the host is gone: lost
  switch (seg.kind) {
    case Segment::data:
      if (s.rst_in) return;
      if (s.closed) {
        // Data for a closed socket: TCP answers with RST.
        if (!s.rst_out) {
          s.rst_out = true;
          send(w, *c, to, Segment{Segment::rst});
        }
        return;
      }
      s.rx.insert(s.rx.end(), seg.bytes.begin(), seg.bytes.end());
      try_read(w, *c, to);
      return;
    case Segment::fin:
      s.fin_in = true;
      try_read(w, *c, to);
      return;
    case Segment::rst:
      if (s.rst_in) return;
      s.rst_in = true;
      s.rx.clear();
      try_read(w, *c, to);
      try_write(w, *c, to);
      return;
    case Segment::ack:
      ZT_ASSERT(s.unacked >= seg.acked);
      s.unacked -= seg.acked;
      try_write(w, *c, to);
      return;
  }
}

// --- reads and writes -----------------------------------------------------

void TcpEngine::complete(World& w, Conn& c, int i, bool is_read, Result<size_t> r) {
  Side& s = c.side[i];
  PendingOp& op = is_read ? s.read : s.write;
  ZT_ASSERT(op.active && op.completion == 0);
  op.active = false;
  w.trace_.record(is_read ? "tcp.read.done" : "tcp.write.done", ns(w), c.id, uint64_t(i),
                  r ? *r : 1000 + uint64_t(r.code()));
  op.completion = w.sched_.after(Duration(0), s.host, is_read ? "tcp.read.cb" : "tcp.write.cb",
                                 [&w, id = c.id, i, is_read, cb = std::move(op.cb), r = std::move(r)]() mutable {
                                   if (Conn* conn = find(w, id)) {
                                     Side& side = conn->side[i];
                                     (is_read ? side.read : side.write).completion = 0;
                                   }
                                   cb(std::move(r));  // last: it may destroy the stream
                                 });
}

void TcpEngine::try_read(World& w, Conn& c, int i) {
  Side& s = c.side[i];
  if (!s.read.active) return;
  if (s.rst_in) return complete(w, c, i, true, Errc::connection_reset);
  if (!s.rx.empty()) {
    size_t n = std::min(s.read.rbuf.size(), s.rx.size());
    if (n > 1 && w.rng_.chance(w.options_.faults.short_io)) {
      n = w.rng_.between(1, n);
      w.count_fault("short_read");
    }
    std::copy_n(s.rx.begin(), n, s.read.rbuf.begin());
    s.rx.erase(s.rx.begin(), s.rx.begin() + std::ptrdiff_t(n));
    send(w, c, i, Segment{Segment::ack, {}, n});
    return complete(w, c, i, true, n);
  }
  if (s.fin_in) return complete(w, c, i, true, size_t{0});
}

void TcpEngine::try_write(World& w, Conn& c, int i) {
  Side& s = c.side[i];
  if (!s.write.active) return;
  if (s.rst_in || s.rst_out) return complete(w, c, i, false, Errc::connection_reset);
  const uint64_t window = w.options_.window_bytes;
  if (s.unacked >= window) return;  // parked until the peer reads
  size_t n = std::min<uint64_t>(s.write.wbuf.size(), window - s.unacked);
  if (n > 1 && w.rng_.chance(w.options_.faults.short_io)) {
    n = w.rng_.between(1, n);
    w.count_fault("short_write");
  }
  bool reset_after = false;
  if (c.reset_side == i && s.sent + n >= c.reset_offset) {
    n = c.reset_offset - s.sent;
    reset_after = true;
  }
  if (n > 0) {
    Segment seg{Segment::data};
    seg.bytes.assign(s.write.wbuf.begin(), s.write.wbuf.begin() + std::ptrdiff_t(n));
    s.unacked += n;
    s.sent += n;
    send(w, c, i, std::move(seg));
  }
  if (reset_after) {
    c.reset_side = -1;
    w.count_fault("reset_at_offset");
    reset_both(w, c);  // completes this write with connection_reset
    return;
  }
  complete(w, c, i, false, n);
}

// A reset injected on the path: each end sees RST after the bytes before it.
void TcpEngine::reset_both(World& w, Conn& c) {
  for (int i = 0; i < 2; ++i) {
    Side& s = c.side[i];
    if (s.closed || s.rst_out) continue;
    s.rst_out = true;
    send(w, c, i, Segment{Segment::rst});  // reaches the peer in order
  }
  for (int i = 0; i < 2; ++i) {
    Side& s = c.side[i];
    if (s.closed || s.rst_in) continue;
    s.rst_in = true;  // and this end learns at once
    s.rx.clear();
    try_read(w, c, i);
    try_write(w, c, i);
  }
}

void TcpEngine::cancel_ops(World& w, Conn& c, int i) {
  Side& s = c.side[i];
  if (s.read.active) complete(w, c, i, true, Errc::cancelled);
  if (s.write.active) complete(w, c, i, false, Errc::cancelled);
}

void TcpEngine::close(World& w, uint64_t id, int i, bool abortive) {
  Conn* c = find(w, id);
  if (!c) return;
  Side& s = c->side[i];
  if (s.closed) return;
  w.trace_.record(abortive ? "tcp.abort" : "tcp.close", ns(w), id, uint64_t(i));
  cancel_ops(w, *c, i);
  s.closed = true;
  if (!s.rst_in && !s.rst_out) {
    // Closing with unread bytes resets the connection, as TCP does.
    if (abortive || !s.rx.empty()) {
      s.rst_out = true;
      send(w, *c, i, Segment{Segment::rst});
    } else if (!s.fin_out) {
      s.fin_out = true;
      send(w, *c, i, Segment{Segment::fin});
    }
  }
  s.rx.clear();
  maybe_free(w, id);
}

void TcpEngine::maybe_free(World& w, uint64_t id) {
  Conn* c = find(w, id);
  if (c && c->side[0].closed && c->side[1].closed && !c->side[0].has_stream && !c->side[1].has_stream &&
      !c->side[0].read.busy() && !c->side[0].write.busy() && !c->side[1].read.busy() && !c->side[1].write.busy()) {
    w.trace_.record("tcp.free", ns(w), id);
    w.conns_.erase(id);
  }
}

// --- SimStream -------------------------------------------------------------

SimStream::SimStream(World& w, uint64_t conn_id, int side) : w_(w), id_(conn_id), side_(side) {
  Conn* c = TcpEngine::find(w, conn_id);
  ZT_ASSERT(c);
  Side& s = c->side[side];
  s.has_stream = true;
  host_ = s.host;
  local_ = s.local;
  peer_ = s.peer;
  original_dst_ = s.original_dst;
  ++w_.live_streams_;
}

SimStream::~SimStream() {
  --w_.live_streams_;
  for (auto& [token, ev] : late_failures_) w_.sched_.cancel(ev);
  if (Conn* c = TcpEngine::find(w_, id_)) {
    Side& s = c->side[side_];
    // Drop callbacks in flight: they must never fire now.
    for (PendingOp* op : {&s.read, &s.write}) {
      if (op->completion) w_.sched_.cancel(op->completion);
      *op = PendingOp{};
    }
    s.has_stream = false;
    if (!s.closed) {
      TcpEngine::close(w_, id_, side_, false);
    } else {
      TcpEngine::maybe_free(w_, id_);
    }
  }
}

void SimStream::fail_later(IoCallback done, Errc code, std::string_view what) {
  w_.trace_.record(what, ns(w_), id_, uint64_t(side_), uint64_t(code));
  const uint64_t token = ++late_seq_;
  late_failures_[token] = w_.sched_.after(Duration(0), host_, what, [this, token, done = std::move(done), code] {
    late_failures_.erase(token);
    done(code);  // last: it may destroy this stream
  });
}

void SimStream::read(MutableBytes buf, IoCallback done) {
  ZT_ASSERT(!buf.empty());
  Conn* c = TcpEngine::find(w_, id_);
  if (!c || c->side[side_].closed) return fail_later(std::move(done), Errc::not_connected, "tcp.read.closed");
  Side& s = c->side[side_];
  ZT_ASSERT(!s.read.busy());  // at most one read in flight
  s.read.active = true;
  s.read.rbuf = buf;
  s.read.cb = std::move(done);
  TcpEngine::try_read(w_, *c, side_);
}

void SimStream::write(ConstBytes buf, IoCallback done) {
  ZT_ASSERT(!buf.empty());
  Conn* c = TcpEngine::find(w_, id_);
  if (!c || c->side[side_].closed) return fail_later(std::move(done), Errc::not_connected, "tcp.write.closed");
  Side& s = c->side[side_];
  ZT_ASSERT(!s.write.busy());  // at most one write in flight
  if (s.fin_out && !s.rst_in && !s.rst_out)
    return fail_later(std::move(done), Errc::not_connected, "tcp.write.after_fin");
  s.write.active = true;
  s.write.wbuf = buf;
  s.write.cb = std::move(done);
  TcpEngine::try_write(w_, *c, side_);
}

Result<void> SimStream::shutdown_write() {
  Conn* c = TcpEngine::find(w_, id_);
  if (!c || c->side[side_].closed) return Errc::not_connected;
  Side& s = c->side[side_];
  ZT_ASSERT(!s.write.busy());  // FIN goes after the last write completed
  if (s.rst_in || s.rst_out) return Errc::connection_reset;
  if (s.fin_out) return ok();
  s.fin_out = true;
  w_.trace_.record("tcp.shutdown_write", ns(w_), id_, uint64_t(side_));
  TcpEngine::send(w_, *c, side_, Segment{Segment::fin});
  return ok();
}

void SimStream::close() { TcpEngine::close(w_, id_, side_, false); }
void SimStream::abort() { TcpEngine::close(w_, id_, side_, true); }

Result<Endpoint> SimStream::original_dst() const {
  if (original_dst_) return *original_dst_;
  return Error(Errc::unsupported, "connection was not redirected");
}

// --- listeners -------------------------------------------------------------

ListenerState* TcpEngine::find_listener(World& w, HostId h, const Endpoint& ep) {
  auto it = w.listeners_.find({h, ep.ip, ep.port});
  if (it != w.listeners_.end()) return it->second;
  it = w.listeners_.find({h, IpAddr::unspecified(ep.ip.family()), ep.port});
  return it == w.listeners_.end() ? nullptr : it->second;
}

void TcpEngine::try_accept(World& w, ListenerState& l) {
  if (!l.accept_parked || l.queue.empty()) return;
  const uint64_t id = l.queue.front();
  l.queue.pop_front();
  l.accept_parked = false;
  w.trace_.record("tcp.accept.done", ns(w), id);
  l.result.emplace(std::make_unique<SimStream>(w, id, 1));
  l.completion = w.sched_.after(Duration(0), l.host, "tcp.accept.cb", [&l] {
    l.completion = 0;
    auto cb = std::move(l.cb);
    auto r = std::move(*l.result);
    l.result.reset();
    cb(std::move(r));
  });
}

SimListener::SimListener(World& w, std::unique_ptr<ListenerState> st) : w_(w), st_(std::move(st)) {
  w_.listeners_[{st_->host, st_->local.ip, st_->local.port}] = st_.get();
}

SimListener::~SimListener() {
  if (st_->completion) w_.sched_.cancel(st_->completion);
  st_->cb = nullptr;
  st_->accept_parked = false;
  st_->result.reset();  // an accepted stream nobody took: closes
  close();
}

void SimListener::accept(AcceptCallback done) {
  ZT_ASSERT(!st_->accept_parked && st_->completion == 0);  // one accept at a time
  st_->cb = std::move(done);
  if (st_->closed) {
    st_->result.emplace(Error(Errc::not_connected, "listener closed"));
    st_->completion = w_.sched_.after(Duration(0), st_->host, "tcp.accept.closed", [st = st_.get()] {
      st->completion = 0;
      auto cb = std::move(st->cb);
      auto r = std::move(*st->result);
      st->result.reset();
      cb(std::move(r));
    });
    return;
  }
  st_->accept_parked = true;
  TcpEngine::try_accept(w_, *st_);
}

void SimListener::close() {
  if (st_->closed) return;
  st_->closed = true;
  w_.listeners_.erase({st_->host, st_->local.ip, st_->local.port});
  // Established connections nobody accepted are reset.
  for (uint64_t id : st_->queue) TcpEngine::close(w_, id, 1, true);
  st_->queue.clear();
  if (st_->accept_parked) {
    st_->accept_parked = false;
    st_->result.emplace(Errc::cancelled);
    st_->completion = w_.sched_.after(Duration(0), st_->host, "tcp.accept.cancelled", [st = st_.get()] {
      st->completion = 0;
      auto cb = std::move(st->cb);
      auto r = std::move(*st->result);
      st->result.reset();
      cb(std::move(r));
    });
  }
}

// --- connect ---------------------------------------------------------------

uint16_t TcpEngine::ephemeral_port(World&, Host& h) {
  uint16_t p = h.next_port_;
  h.next_port_ = h.next_port_ >= 60999 ? 40000 : uint16_t(h.next_port_ + 1);
  return p;
}

std::unique_ptr<Connecting> TcpEngine::connect(World& w, Host& h, const Endpoint& to, const SocketOptions& opts,
                                               Network::ConnectCallback cb) {
  auto st = std::make_shared<ConnectState>();
  st->host = h.id();
  st->incarnation = h.incarnation_;
  st->cb = std::move(cb);
  st->target = to;
  st->mark = opts.mark;
  const bool bypass = opts.mark && h.capture_ && *opts.mark == h.capture_->second;
  if (h.capture_ && !bypass && !is_local(h, to.ip)) {
    st->original_dst = to;
    const Endpoint& via = h.capture_->first;
    st->target = via.ip.is_unspecified() ? Endpoint{h.addr(to.ip.family()), via.port} : via;
  }
  IpAddr src = opts.source_ip ? *opts.source_ip
               : to.ip.is_loopback() ? to.ip
                                     : h.addr(to.ip.family());
  st->source = Endpoint{src, ephemeral_port(w, h)};
  w.trace_.record("tcp.connect", ns(w), h.id(), stable_hash(st->target));
  attempt_syn(w, st);
  return std::make_unique<SimConnecting>(w, st);
}

void TcpEngine::attempt_syn(World& w, std::shared_ptr<ConnectState> st) {
  if (st->decided) return;
  Host* dst = st->target.ip.is_loopback() ? &w.host(st->host) : w.host_of(st->target.ip);
  const bool lost = !dst || w.blackholes_.count(st->target.ip) || w.blocked(st->host, dst->id()) ||
                    w.blocked(dst->id(), st->host);
  if (lost) return syn_lost(w, st);
  if (w.rng_.chance(w.options_.faults.syn_drop)) {
    w.count_fault("syn_drop");
    return syn_lost(w, st);
  }
  w.sched_.after(w.delay(st->host, dst->id()), kNetwork, "tcp.syn", [&w, st] { syn_arrive(w, st); });
}

void TcpEngine::syn_lost(World& w, std::shared_ptr<ConnectState> st) {
  // Linux retransmits the SYN after 1, 2, 4, ... s and gives up one backoff
  // after the last retry (127 s with the default 6 retries).
  Duration backoff = std::chrono::seconds(1) * (int64_t(1) << st->attempt);
  const bool give_up = st->attempt >= w.options_.syn_retries;
  ++st->attempt;
  st->retry = w.sched_.after(backoff, st->host, "tcp.syn_retry", [&w, st, give_up] {
    st->retry = 0;
    if (!give_up) return attempt_syn(w, st);
    decide(w, st,
           Error(Errc::timed_out, "no answer from " + st->target.to_string() + " after " +
                                      std::to_string(st->attempt) + " SYNs"));
  });
}

void TcpEngine::syn_arrive(World& w, std::shared_ptr<ConnectState> st) {
  if (st->decided) return;
  Host& src = w.host(st->host);
  Host* dst = st->target.ip.is_loopback() ? &src : w.host_of(st->target.ip);
  if (!dst || !dst->up()) return syn_lost(w, st);
  // Inbound capture: the SYN goes to the capture listener instead. As
  // iptables PREROUTING, it sees only what arrives from another host: the
  // host's own connections (outbound capture to its 15001 included) pass.
  Endpoint local = st->target;
  if (const auto& cap = dst->capture_in_; cap && st->host != dst->id() && local.port != cap->port &&
      std::find(cap->except.begin(), cap->except.end(), local.port) == cap->except.end() &&
      !(st->mark && *st->mark == cap->bypass_mark)) {
    if (!st->original_dst) st->original_dst = st->target;
    local.port = cap->port;
  }
  ListenerState* l = find_listener(w, dst->id(), local);
  const Duration back = w.delay(dst->id(), st->host);
  if (!l) {
    w.sched_.after(back, kNetwork, "tcp.syn_refused", [&w, st] {
      decide(w, st, Error(Errc::connection_refused, "nothing listens on " + st->target.to_string()));
    });
    return;
  }
  if (int(l->queue.size()) >= l->backlog) {
    w.count_fault("backlog_overflow");
    return syn_lost(w, st);  // Linux drops the SYN; the client retries
  }
  auto conn = std::make_unique<Conn>();
  conn->id = w.next_conn_id_++;
  conn->side[0] = Side{.host = src.id(), .local = st->source, .peer = st->target};
  conn->side[1] = Side{.host = dst->id(), .local = local, .peer = st->source, .original_dst = st->original_dst};
  conn->side[0].has_stream = conn->side[1].has_stream = false;
  if (auto it = w.pending_resets_.find(src.id()); it != w.pending_resets_.end()) {
    conn->reset_side = it->second.first;
    conn->reset_offset = it->second.second;
    w.pending_resets_.erase(it);
  } else if (w.rng_.chance(w.options_.faults.conn_reset)) {
    conn->reset_side = int(w.rng_.below(2));
    conn->reset_offset = w.rng_.below(w.options_.faults.conn_reset_offset_max + 1);
  }
  const uint64_t id = conn->id;
  w.conns_.emplace(id, std::move(conn));
  w.trace_.record("tcp.established", ns(w), id, src.id(), dst->id());
  l->queue.push_back(id);
  try_accept(w, *l);
  w.sched_.after(back, kNetwork, "tcp.synack", [&w, st, id] {
    if (!find(w, id)) return decide(w, st, Error(Errc::connection_reset, "reset during handshake"));
    if (st->decided || st->dropped || w.host(st->host).incarnation_ != st->incarnation) {
      Conn* c = find(w, id);
      c->side[0].closed = true;  // the client gave up: reset the server side
      c->side[0].rst_out = true;
      send(w, *c, 0, Segment{Segment::rst});
      maybe_free(w, id);
      return;
    }
    decide(w, st, StreamPtr(std::make_unique<SimStream>(w, id, 0)));
  });
}

void TcpEngine::decide(World& w, const std::shared_ptr<ConnectState>& st, Result<StreamPtr> r) {
  if (st->decided) return;
  st->decided = true;
  if (st->retry) w.sched_.cancel(st->retry);
  st->retry = 0;
  if (st->dropped || w.host(st->host).incarnation_ != st->incarnation) return;  // nobody waits: r closes
  w.trace_.record("tcp.connect.done", ns(w), st->host, r ? 0 : 1000 + uint64_t(r.code()));
  st->result.emplace(std::move(r));
  st->completion = w.sched_.after(Duration(0), st->host, "tcp.connect.cb", [st] {
    st->completion = 0;
    auto cb = std::move(st->cb);
    auto result = std::move(*st->result);
    st->result.reset();
    cb(std::move(result));  // last: it may destroy the Connecting handle
  });
}

SimConnecting::~SimConnecting() {
  st_->dropped = true;
  st_->cb = nullptr;
  if (st_->completion) w_.sched_.cancel(st_->completion);
  st_->completion = 0;
  st_->result.reset();
  if (st_->retry) w_.sched_.cancel(st_->retry);
  st_->retry = 0;
}

void SimConnecting::cancel() {
  TcpEngine::decide(w_, st_, Error(Errc::cancelled, "connect cancelled"));
}

// --- crash and restart -------------------------------------------------------

void TcpEngine::crash(World& w, HostId h) {
  std::vector<uint64_t> ids;
  for (auto& [id, c] : w.conns_) {
    for (Side& s : c->side) {
      if (s.host != h || s.dead) continue;
      s.dead = s.closed = true;
      s.rx.clear();
      s.read = PendingOp{};
      s.write = PendingOp{};
    }
    ids.push_back(id);
  }
  for (auto it = w.listeners_.begin(); it != w.listeners_.end();) {
    if (std::get<0>(it->first) == h) {
      ListenerState* l = it->second;
      l->closed = true;
      l->queue.clear();
      l->accept_parked = false;
      l->completion = 0;  // its events were dropped with the host's
      l->cb = nullptr;
      l->result.reset();
      it = w.listeners_.erase(it);
    } else {
      ++it;
    }
  }
  for (uint64_t id : ids) maybe_free(w, id);
}

void TcpEngine::restart(World& w, HostId h) {
  // Peers still holding a connection to the old incarnation learn with a
  // RST, as the next segment they send (or a keepalive) would.
  for (auto& [id, c] : w.conns_) {
    for (int i = 0; i < 2; ++i) {
      Side& s = c->side[i];
      Side& peer = c->side[1 - i];
      if (s.host == h && s.dead && !peer.closed && !peer.rst_in && !s.rst_out) {
        s.rst_out = true;
        send(w, *c, i, Segment{Segment::rst});
      }
    }
  }
}

}  // namespace zt::io::sim
