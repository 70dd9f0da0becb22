// A minimal in-memory runtime for micro benchmarks: a loop that runs posted
// callbacks in order, and a pair of connected Streams whose bytes move by
// memcpy. It measures the layers above (TLS, HTTP/2), not a network.
//
//   bench::MemoryRuntime rt;
//   auto [a, b] = rt.pipe();
//   ... start work on a and b ...
//   rt.run();   // until no callback is left
#pragma once

#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "io/env.h"

namespace zt::bench {

class MemoryRuntime final : public Loop, public Clock, public Network {
 public:
  // `fire_timers`: timers run at once (there is no time here); without,
  // they never run (HTTP/2 keepalive would otherwise spin).
  explicit MemoryRuntime(bool fire_timers = true)
      : fire_timers_(fire_timers), rng_(1), env_{*this, *this, *this, rng_, faults_, log_} {}
  Env& env() { return env_; }

  // Loop
  void post(Callback fn) override { queue_.push_back(std::move(fn)); }
  TimerId run_after(Duration, Callback fn) override {
    if (fire_timers_) queue_.push_back(std::move(fn));  // no time here: timers fire at once
    return ++next_timer_;
  }
  bool cancel(TimerId) override { return false; }
  void run() {
    while (!queue_.empty()) {
      Callback fn = std::move(queue_.front());
      queue_.pop_front();
      fn();
    }
  }

  // Clock: a fixed instant (2026), enough for certificate checks.
  MonoTime now() const override { return MonoTime{}; }
  WallTime wall_now() const override { return WallTime(std::chrono::seconds(1'780'000'000)); }

  // Network: not used by benchmarks; they make pipes directly.
  Result<std::unique_ptr<Listener>> listen(const Endpoint&, const ListenOptions&) override { return Errc::unsupported; }
  std::unique_ptr<Connecting> connect(const Endpoint&, const SocketOptions&, ConnectCallback) override { return nullptr; }
  Result<std::unique_ptr<DatagramSocket>> udp_bind(const Endpoint&) override { return Errc::unsupported; }
  std::unique_ptr<Resolving> resolve(const std::string&, ResolveCallback) override { return nullptr; }  // unused
  std::unique_ptr<Connecting> connect_packets(const std::string&, PacketConnectCallback) override {
    return nullptr;  // unused
  }

  std::pair<StreamPtr, StreamPtr> pipe(size_t window_bytes = 1 << 20);

 private:
  bool fire_timers_;
  Rng rng_;
  NoFaults faults_;
  NoLog log_;
  Env env_;
  std::deque<Callback> queue_;
  TimerId next_timer_ = 0;
};

namespace detail {

struct PipeEnd {
  std::vector<uint8_t> rx;  // bytes waiting to be read
  size_t rx_off = 0;
  bool fin = false;
  MutableBytes rbuf;
  Stream::IoCallback rcb;
  ConstBytes wbuf;
  Stream::IoCallback wcb;
};

struct PipeState {
  PipeEnd end[2];
  size_t window;
};

class PipeStream final : public Stream {
 public:
  PipeStream(MemoryRuntime& rt, std::shared_ptr<PipeState> st, int side) : rt_(rt), st_(std::move(st)), side_(side) {}
  void read(MutableBytes buf, IoCallback done) override {
    me().rbuf = buf;
    me().rcb = std::move(done);
    rt_.post([this] { pump(); });
  }
  void write(ConstBytes buf, IoCallback done) override {
    me().wbuf = buf;
    me().wcb = std::move(done);
    rt_.post([this] { pump(); });
  }
  Result<void> shutdown_write() override {
    peer().fin = true;
    rt_.post([this] { peer_stream_pump(); });
    return ok();
  }
  void close() override {}
  void abort() override {}
  Endpoint local() const override { return {}; }
  Endpoint peer() const override { return {}; }
  Result<Endpoint> original_dst() const override { return Errc::unsupported; }

  PipeStream* other = nullptr;

 private:
  PipeEnd& me() { return st_->end[side_]; }
  PipeEnd& peer() { return st_->end[1 - side_]; }
  void peer_stream_pump() {
    if (other) other->pump();
  }
  void pump() {
    // Our pending write moves into the peer's buffer (bounded by the window).
    if (me().wcb) {
      const size_t queued = peer().rx.size() - peer().rx_off;
      if (queued < st_->window) {
        const size_t n = std::min(me().wbuf.size(), st_->window - queued);
        peer().rx.insert(peer().rx.end(), me().wbuf.begin(), me().wbuf.begin() + std::ptrdiff_t(n));
        auto cb = std::exchange(me().wcb, nullptr);
        cb(n);
        if (other) other->pump();
      }
    }
    if (me().rcb) {
      const size_t avail = me().rx.size() - me().rx_off;
      if (avail > 0) {
        const size_t n = std::min(avail, me().rbuf.size());
        std::memcpy(me().rbuf.data(), me().rx.data() + me().rx_off, n);
        me().rx_off += n;
        if (me().rx_off == me().rx.size()) {
          me().rx.clear();
          me().rx_off = 0;
        }
        auto cb = std::exchange(me().rcb, nullptr);
        cb(n);
        if (other) rt_.post([o = other] { o->pump(); });  // window opened
      } else if (me().fin) {
        auto cb = std::exchange(me().rcb, nullptr);
        cb(size_t{0});
      }
    }
  }

  MemoryRuntime& rt_;
  std::shared_ptr<PipeState> st_;
  int side_;
};

}  // namespace detail

inline std::pair<StreamPtr, StreamPtr> MemoryRuntime::pipe(size_t window_bytes) {
  auto st = std::make_shared<detail::PipeState>();
  st->window = window_bytes;
  auto a = std::make_unique<detail::PipeStream>(*this, st, 0);
  auto b = std::make_unique<detail::PipeStream>(*this, st, 1);
  a->other = b.get();
  b->other = a.get();
  return {std::move(a), std::move(b)};
}

}  // namespace zt::bench
