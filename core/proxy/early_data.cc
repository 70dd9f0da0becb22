#include "core/proxy/early_data.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "io/assert.h"

namespace zt::core::proxy {

void EarlyData::attach(StreamPtr upstream) {
  ZT_ASSERT(!chosen_ && upstream);
  upstream_ = std::move(upstream);
  ++upstream_gen_;  // a write to the previous one no longer counts
  writing_ = false;
  sent_ = false;
  wr_off_ = 0;
  if (!started_) {
    started_ = true;
    reading_ = true;
    alive_ = std::make_shared<bool>(true);
    buf_ = std::make_shared<ByteVector>(kBytesMax);
    client_.read(*buf_, [alive = alive_, this, keep = buf_](Result<size_t> r) {
      if (*alive) on_read(std::move(r));
    });
    return;
  }
  send();
}

void EarlyData::on_read(Result<size_t> r) {
  reading_ = false;
  got_ = r ? *r : 0;
  result_ = std::move(r);
  if (!chosen_) return send();
  // Came after the upstream was chosen: the relay takes it.
  if (relay_cb_) {
    IoCallback done = std::move(relay_cb_);
    relay_cb_ = nullptr;
    if (!hand_to_relay(relay_buf_, done)) client_.read(relay_buf_, std::move(done));
  }
}

void EarlyData::send() {
  if (!upstream_ || writing_ || sent_ || got_ == 0) return;
  writing_ = true;
  upstream_->write(ConstBytes(buf_->data() + wr_off_, got_ - wr_off_),
                   [alive = alive_, this, gen = upstream_gen_, keep = buf_](Result<size_t> r) {
                     if (*alive && gen == upstream_gen_) on_sent(std::move(r));
                   });
}

void EarlyData::on_sent(Result<size_t> r) {
  writing_ = false;
  if (r) {
    wr_off_ += *r;
    if (wr_off_ < got_) return send();
    sent_ = true;
  }
  // A failed write is left to the answer (the stream was refused or reset).
  if (settling_) std::exchange(settling_, nullptr).resume();
}

Task<void> EarlyData::settle() {
  struct Awaiter {
    EarlyData& self;
    bool await_ready() const noexcept { return !self.writing_; }
    void await_suspend(std::coroutine_handle<> h) { self.settling_ = h; }
    void await_resume() const noexcept {}
  };
  Awaiter written{*this};  // named: GCC 12 mishandles temporaries in co_await
  co_await written;
}

StreamPtr EarlyData::take() {
  ZT_ASSERT(!writing_ && !chosen_);
  chosen_ = true;
  free_buffer_when_done();
  return std::move(upstream_);
}

// The relay may run for hours: it keeps no early buffer it no longer needs.
void EarlyData::free_buffer_when_done() {
  if (!buf_ || !chosen_ || reading_ || writing_) return;
  if (sent_ || got_ == 0 || relay_off_ == got_) buf_.reset();
}

// Completes `done` with what the early read left for the relay; false when
// nothing is left (the relay reads the client itself).
bool EarlyData::hand_to_relay(MutableBytes buf, IoCallback& done) {
  if (relay_done_ || !result_) return false;
  Result<size_t> out = size_t{0};
  if (!*result_) {
    out = result_->error();
    relay_done_ = true;
  } else if (got_ == 0) {
    relay_done_ = true;  // the client finished before the upstream was chosen
  } else if (sent_) {
    relay_done_ = true;  // went early: nothing for the relay
    return false;
  } else {
    const size_t n = std::min(buf.size(), got_ - relay_off_);
    std::memcpy(buf.data(), buf_->data() + relay_off_, n);
    relay_off_ += n;
    relay_done_ = relay_off_ == got_;
    out = n;
  }
  free_buffer_when_done();
  loop_.post([alive = alive_, done = std::move(done), out = std::move(out)]() mutable {
    if (*alive) done(std::move(out));
  });
  return true;
}

void EarlyData::read(MutableBytes buf, IoCallback done) {
  ZT_ASSERT(chosen_ && !relay_cb_);
  if (reading_) {  // the early read is still in flight: its bytes come here
    relay_buf_ = buf;
    relay_cb_ = std::move(done);
    return;
  }
  if (hand_to_relay(buf, done)) return;
  client_.read(buf, std::move(done));
}

}  // namespace zt::core::proxy
