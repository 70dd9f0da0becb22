// Early data on outbound HBONE: the client's first bytes go right behind
// the CONNECT instead of after its answer. A client usually speaks first
// (and a SOCKS5 client is told "connected" before the tunnel exists), so
// waiting for the 200 before reading it costs every new connection a round
// trip between the nodes. HTTP/2 lets a client send DATA before the
// response; the HBONE server keeps it for the tunnel it accepts and drops it
// with a request it refuses (h2::Connection::open, `early`).
//
//   EarlyData early(env.loop, *client);
//   pool.open(key, request, [&](StreamPtr t) { early.attach(std::move(t)); });
//   ... answered 2xx: co_await early.settle(); StreamPtr tunnel = early.take();
//   Stream& from = early.holds_client_data() ? early : *client;
//   copy_bidirectional(env, from, *tunnel, stats);
//   stats.bytes_a_to_b += early.sent();
//
// One read of the client, up to kBytesMax, starts with the first attempt.
// Its bytes are written to every upstream attached, so a retry on another
// endpoint (after a 503 or a refused stream) sends them again; a read still
// in flight when the upstream is chosen completes into the relay instead.
#pragma once

#include <coroutine>
#include <memory>
#include <optional>

#include "io/bytes.h"
#include "io/loop.h"
#include "io/network.h"
#include "io/task.h"

namespace zt::core::proxy {

class EarlyData final : public Stream {
 public:
  // A first flight: a request line and headers, a TLS ClientHello. What
  // does not fit follows after the answer, as without early data. The
  // buffer is freed once its bytes are sent, but a client that waits for
  // the server to speak first keeps it until it speaks.
  static constexpr size_t kBytesMax = 2048;

  EarlyData(Loop& loop, Stream& client) : loop_(loop), client_(client) {}
  ~EarlyData() override {
    if (alive_) *alive_ = false;
  }
  EarlyData(const EarlyData&) = delete;

  // An upstream attempt exists (a tunnel just requested, or a connection
  // made): it replaces the previous one and gets the bytes read so far. The
  // first call starts the client read.
  void attach(StreamPtr upstream);
  bool started() const { return started_; }
  // Until no write to the attached upstream is in flight: the relay may
  // then write to it.
  Task<void> settle();
  // The attached upstream, chosen: later client bytes go to the relay.
  StreamPtr take();
  // Bytes of the client's that went to the chosen upstream before the relay.
  size_t sent() const { return chosen_ && sent_ ? got_ : 0; }
  // After take(): whether the relay must read the client through this (a
  // read in flight, or what one brought that the upstream has not had).
  // Usually not: the first flight went early, and the relay reads the
  // client itself (and this can go).
  bool holds_client_data() const { return reading_ || (result_ && !relay_done_ && !(got_ > 0 && sent_)); }

  // The client, as the relay sees it: a read still in flight (or an end
  // that arrived early) completes here first.
  void read(MutableBytes buf, IoCallback done) override;
  void write(ConstBytes buf, IoCallback done) override { client_.write(buf, std::move(done)); }
  Result<void> shutdown_write() override { return client_.shutdown_write(); }
  void close() override { client_.close(); }
  void abort() override { client_.abort(); }
  Endpoint local() const override { return client_.local(); }
  Endpoint peer() const override { return client_.peer(); }
  Result<Endpoint> original_dst() const override { return client_.original_dst(); }

 private:
  void on_read(Result<size_t> r);
  void send();
  void on_sent(Result<size_t> r);
  bool hand_to_relay(MutableBytes buf, IoCallback& done);
  void free_buffer_when_done();

  Loop& loop_;
  Stream& client_;
  StreamPtr upstream_;
  uint64_t upstream_gen_ = 0;  // which upstream a write completion is about
  // Shared with the read in flight: the client may complete into it after
  // this object is gone (io/network.h allows a completion to be dropped,
  // not the buffer to vanish under a read). It and alive_ are made by the
  // first attach(): a connection that never opens a tunnel (plain TCP)
  // allocates nothing here.
  std::shared_ptr<ByteVector> buf_;
  size_t wr_off_ = 0;
  std::optional<Result<size_t>> result_;  // the early read's, once in
  size_t got_ = 0;                        // bytes it brought
  size_t relay_off_ = 0;                  // of those, handed to the relay (a read that came late)
  bool started_ = false, reading_ = false, writing_ = false, sent_ = false, chosen_ = false, relay_done_ = false;
  MutableBytes relay_buf_;
  IoCallback relay_cb_;
  std::coroutine_handle<> settling_;
  std::shared_ptr<bool> alive_;
};

}  // namespace zt::core::proxy
