#include "h2/connection.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>

#include "io/async.h"
#include "io/bytes.h"

namespace zt::h2 {
namespace {

constexpr size_t kTransportReadBytes = 64 * 1024;
// While the connection is quiet (io/bytes.h ReadBuffer): a few small frames.
constexpr size_t kTransportReadQuietBytes = 2048;
// Frames are gathered up to 256 KiB per transport write, which TLS sends as
// one batch of records. A batch buffer up to 4 KiB stays allocated between
// writes; a bigger one only while batches are big (recycle()), so a pooled
// connection that went idle after a burst of streams holds little.
constexpr size_t kTransportWriteBytes = 256 * 1024;
constexpr size_t kTransportWriteKeep = 4 * 1024;
constexpr size_t kStreamBacklogKeep = 16 * 1024;

template <class Cb>
Cb take(Cb& slot) {
  Cb cb = std::move(slot);
  slot = nullptr;
  return cb;
}

nghttp2_nv nv(const std::string& name, const std::string& value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                    NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

std::optional<std::string_view> find_header(const Headers& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return std::nullopt;
}

// One HTTP/2 stream's state, shared by the connection and its Tunnel.
struct StreamState {
  int32_t id = 0;
  bool closed = false;      // nghttp2 closed it (both ends done, or reset)
  bool reset = false;       // ended by RST_STREAM (either way) or connection death
  int refused_status = 0;  // client, early tunnel: the non-2xx answer, which reads and writes then fail with
  Error reset_reason() const {
    if (refused_status) return Error(kRefused, "HTTP/2 request answered " + std::to_string(refused_status));
    return Error(Errc::connection_reset, "HTTP/2 stream reset");
  }
  bool answered = false;    // client: response headers arrived
  // Client: DATA of this stream went to the transport before the answer, so
  // the peer's application may have had it: a stream that then ends without
  // an answer is lost, not refused (never retried elsewhere).
  bool data_left = false;
  // Client: opened on a quiet connection; its DATA waits for the PING ACK
  // that shows the peer is there (Settings::liveness_quiet).
  bool held_for_liveness = false;
  bool has_tunnel = false;  // a Tunnel object exists
  bool early = false;            // client: the tunnel was handed out before the answer
  bool awaiting_answer = false;  // server: handed to on_request, not yet accepted or rejected
  size_t header_bytes = 0;       // server: the request's header list so far (RFC 9113 6.5.2 sizes)
  bool oversized = false;        // server: past header_list_bytes_max: answered 431, never handed on
  std::function<void()> on_cancel;  // server: the Incoming's, while it waits for an answer
  std::shared_ptr<bool> tunnel_alive;

  // Received, not yet read by the application (acknowledged only when read).
  std::vector<uint8_t> rx;
  size_t rx_off = 0;
  bool rx_fin = false;
  MutableBytes rd_buf;
  Stream::IoCallback rd_cb;
  // A pending read is filled in place: DATA arriving before its posted
  // completion runs goes straight into rd_buf (one copy, one completion for
  // several frames) as long as nothing is staged in rx ahead of it.
  size_t rd_filled = 0;
  bool rd_posted = false;

  // Being sent.
  ConstBytes wr_buf;
  size_t wr_off = 0;
  Stream::IoCallback wr_cb;
  bool fin_requested = false, fin_sent = false, deferred = false;
  // Closed by the application while the peer was still sending: the peer's
  // END_STREAM closes it quietly, but more DATA resets it (as TCP would).
  bool orphaned = false;

  // Client: waiting for the response; then the trailers, filled before the
  // END_STREAM that ends them reads as EOF.
  std::function<void(Result<Opened>)> open_cb;
  Response response;
  std::shared_ptr<Headers> trailers_in;
  // Server: trailers to end the stream with (gRPC's status), instead of an
  // END_STREAM on the last DATA; read when the tunnel's FIN goes out.
  std::shared_ptr<const Headers> trailers_out;
  // Server: the request being received.
  Request request;
};

struct Core : std::enable_shared_from_this<Core> {
  Core(Env& env, StreamPtr transport, Role role, Settings settings)
      : env(env), transport(std::move(transport)), role(role), settings(settings) {
    local = this->transport->local();
    peer = this->transport->peer();
  }
  ~Core() {
    if (session) nghttp2_session_del(session);
  }

  Env& env;
  StreamPtr transport;
  Endpoint local, peer;  // kept: the transport may be gone before the tunnels
  Role role;
  Settings settings;
  nghttp2_session* session = nullptr;
  std::map<int32_t, std::shared_ptr<StreamState>> streams;
  std::function<void(std::unique_ptr<Connection::Incoming>)> on_request;
  std::function<void(const Error&)> on_closed;
  std::function<void()> on_idle;
  ReadBuffer rx{kTransportReadBytes, kTransportReadQuietBytes};
  int tx_small_batches = 0;  // see recycle()
  ByteVector tx;
  bool writing = false, dead = false, goaway_sent = false, goaway_received = false;
  // The session is over (GOAWAY either way and no stream left): the
  // connection ends once the write in flight, which may carry its last
  // frames (END_STREAM, RST_STREAM, GOAWAY), has gone.
  std::optional<Error> finishing;
  // The first write waits (start()): `writing` is held true meanwhile.
  bool first_write_held = false;
  size_t unanswered = 0;  // server: requests handed to on_request, not yet answered
  bool calmed = false;    // server: sent GOAWAY(ENHANCE_YOUR_CALM)
  uint64_t oversized_requests = 0;  // server: answered 431 (header list too large)
  std::optional<Error> death;
  std::shared_ptr<bool> owner_alive = std::make_shared<bool>(true);  // the Connection exists
  MonoTime last_rx{}, ping_sent_at{};
  bool ping_outstanding = false;
  // Client: a liveness probe (a PING) is out; streams opened meanwhile hold
  // their DATA. `silent`: one went unanswered, so no new streams.
  bool probing = false, silent = false;
  uint64_t probes = 0;  // names the probe a deadline is for
  Scope scope;  // last: its coroutines go first

  bool init();
  void start();
  void release_first_write();
  void flush();
  Task<void> read_loop();
  Task<void> write_loop();
  Task<void> keepalive_loop();
  void die(Error e, bool graceful = false);
  void probe_liveness();
  void alive();
  void probe_expired(uint64_t probe);
  void finish(Error e);
  void fail_stream(StreamState& st, const Error& e);
  template <class Cb, class R>
  void deliver(StreamState& st, Cb cb, R r);
  void wake_reader(const std::shared_ptr<StreamState>& st);
  void complete_read_later(const std::shared_ptr<StreamState>& st);
  void consume(StreamState& st, size_t n);
  void goaway();
  void drop_early_data(StreamState& st);
  StreamPtr make_tunnel(const std::shared_ptr<StreamState>& st);
  nghttp2_data_provider provider(StreamState* st);

  // nghttp2 callbacks
  static ssize_t read_data(nghttp2_session*, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                           nghttp2_data_source* src, void* user);
  static int send_data(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd, size_t len,
                       nghttp2_data_source* src, void* user);
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                       const uint8_t* value, size_t valuelen, uint8_t flags, void* user);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_data_chunk(nghttp2_session*, uint8_t flags, int32_t id, const uint8_t* data, size_t len, void* user);
  static int on_stream_close(nghttp2_session*, int32_t id, uint32_t error_code, void* user);
  static int on_frame_not_send(nghttp2_session*, const nghttp2_frame* frame, int error, void* user);
};

// --- the tunnel: one HTTP/2 stream as a byte Stream -----------------------

class Tunnel final : public Stream {
 public:
  Tunnel(std::shared_ptr<Core> core, std::shared_ptr<StreamState> st) : core_(std::move(core)), st_(std::move(st)) {
    st_->has_tunnel = true;
    st_->tunnel_alive = std::make_shared<bool>(true);
  }
  ~Tunnel() override {
    *st_->tunnel_alive = false;
    st_->rd_cb = nullptr;
    st_->wr_cb = nullptr;
    close();
    st_->has_tunnel = false;
  }

  void read(MutableBytes buf, IoCallback done) override {
    ZT_ASSERT(!st_->rd_cb && !buf.empty());
    st_->rd_buf = buf;
    st_->rd_cb = std::move(done);
    core_->wake_reader(st_);
  }

  void write(ConstBytes buf, IoCallback done) override {
    ZT_ASSERT(!st_->wr_cb && !buf.empty());
    if (st_->reset || core_->dead) return core_->deliver(*st_, std::move(done), Result<size_t>(st_->reset_reason()));
    if (st_->fin_requested || st_->closed)
      return core_->deliver(*st_, std::move(done), Result<size_t>(Error(Errc::not_connected, "write after END_STREAM")));
    st_->wr_buf = buf;
    st_->wr_off = 0;
    st_->wr_cb = std::move(done);
    resume();
  }

  Result<void> shutdown_write() override {
    ZT_ASSERT(!st_->wr_cb);
    if (st_->reset || core_->dead) return Error(Errc::connection_reset, "HTTP/2 stream reset");
    if (st_->fin_requested) return ok();
    st_->fin_requested = true;
    resume();
    return ok();
  }

  void close() override {
    if (st_->closed || core_->dead) return cancel_ops();
    // Like TCP: unread bytes mean a reset at once; a peer that has not
    // finished is reset only if it sends more. (No gratuitous RST_STREAMs:
    // servers rate-limit them and tear down a connection that sends many.)
    if (st_->rx_off < st_->rx.size() || st_->rd_filled > 0) return abort();
    if (!st_->fin_requested) (void)shutdown_write();
    if (!st_->rx_fin) st_->orphaned = true;
    cancel_ops();
  }

  void abort() override {
    cancel_ops();
    if (st_->closed || st_->reset || core_->dead) return;
    st_->reset = true;
    nghttp2_submit_rst_stream(core_->session, NGHTTP2_FLAG_NONE, st_->id, NGHTTP2_CANCEL);
    core_->flush();
  }

  Endpoint local() const override { return core_->local; }
  Endpoint peer() const override { return core_->peer; }
  Result<Endpoint> original_dst() const override { return Error(Errc::unsupported, "an HTTP/2 tunnel"); }

 private:
  void resume() {
    if (st_->deferred && !st_->closed) {
      st_->deferred = false;
      nghttp2_session_resume_data(core_->session, st_->id);
    }
    core_->flush();
  }
  void cancel_ops() {
    if (st_->rd_cb) core_->deliver(*st_, take(st_->rd_cb), Result<size_t>(Errc::cancelled));
    if (st_->wr_cb) core_->deliver(*st_, take(st_->wr_cb), Result<size_t>(Errc::cancelled));
  }

  std::shared_ptr<Core> core_;
  std::shared_ptr<StreamState> st_;
};

// --- Core ----------------------------------------------------------------------

// Posts a completion. Tunnel reads and writes are dropped once the Tunnel is
// gone; open() results once the Connection is gone (io/network.h contract).
template <class Cb, class R>
void Core::deliver(StreamState& st, Cb cb, R r) {
  if (!cb) return;
  std::shared_ptr<bool> alive = st.tunnel_alive ? st.tunnel_alive : owner_alive;
  // Results may be move-only (a tunnel); std::function wants copies.
  auto result = std::make_shared<R>(std::move(r));
  env.loop.post([alive, cb = std::move(cb), result] {
    if (*alive) cb(std::move(*result));
  });
}

bool Core::init() {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_send);
  nghttp2_session_callbacks_set_send_data_callback(cbs, send_data);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);  // we acknowledge as the application reads
  nghttp2_option_set_max_send_header_block_length(opt, settings.header_list_bytes_max);
  // nghttp2 tears down a connection whose peer resets streams faster than
  // 1000 at once / 33 per second (the "rapid reset" defence). An HBONE peer
  // forwards its clients' resets, which can legitimately come faster; keep
  // the defence, with room for a busy node.
  nghttp2_option_set_stream_reset_rate_limit(opt, settings.stream_resets_burst, settings.stream_resets_per_s);
  // HBONE uses no stream priorities, so nghttp2 need not keep closed streams
  // around for the priority tree: a server session would otherwise hold up
  // to max-concurrent-streams of them per connection, long after a burst.
  nghttp2_option_set_no_closed_streams(opt, 1);
  const int rv = role == Role::client ? nghttp2_session_client_new2(&session, cbs, this, opt)
                                      : nghttp2_session_server_new2(&session, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) return false;
  const nghttp2_settings_entry entries[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, settings.stream_window_bytes},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, settings.frame_bytes_max},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, settings.header_list_bytes_max},
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, settings.concurrent_streams_max},
  };
  return nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, entries, std::size(entries)) == 0 &&
         nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0,
                                               int32_t(settings.connection_window_bytes)) == 0;
}

void Core::start() {
  last_rx = env.clock.now();
  scope.spawn(read_loop());
  scope.spawn(keepalive_loop());
  // The first write waits for the next loop turn, so the preface and SETTINGS
  // share it with what is submitted right after start(): a client's first
  // CONNECT. A server's waits longer when requests came with the TLS
  // handshake (an HBONE client sends its first CONNECT with its last
  // flight): until the first of them is answered, so SETTINGS, the SETTINGS
  // ACK and the 200 go in one write. The client waits for that answer
  // anyway; every answer, a GOAWAY and the keepalive tick release it.
  if (goaway_sent) return;  // a GOAWAY before start() went at once: nothing is held
  writing = true;
  first_write_held = true;
  env.loop.post([weak = weak_from_this()] {
    auto self = weak.lock();
    if (self && (self->role == Role::client || self->unanswered == 0)) self->release_first_write();
  });
}

void Core::release_first_write() {
  if (!first_write_held) return;
  first_write_held = false;
  writing = false;
  flush();
}

void Core::flush() {
  if (writing || dead) return;
  writing = true;
  scope.spawn(write_loop());
}

Task<void> Core::write_loop() {
  // No coroutine outlives the Connection: its destructor kills them, and a
  // dead core never starts new ones.
  while (!dead) {
    recycle(tx, tx_small_batches, kTransportWriteKeep);
    while (tx.size() < kTransportWriteBytes) {
      const uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session, &data);
      if (n < 0) {
        die(Error(Errc::io_error, std::string("HTTP/2: ") + nghttp2_strerror(int(n))));
        co_return;
      }
      if (n == 0) break;
      tx.insert(tx.end(), data, data + n);
    }
    if (tx.empty()) break;
    Result<void> w = co_await io::write_all(*transport, tx);
    if (!w) {
      die(w.error());
      co_return;
    }
  }
  writing = false;
  if (finishing && !dead) die(*finishing, true);
}

// The last frames are written before the transport closes (with a FIN, not
// a reset): an abort would drop what is still in flight, such as our
// END_STREAM or GOAWAY, and the peer would see its streams reset.
void Core::finish(Error e) {
  if (dead || finishing) return;
  finishing = std::move(e);
  release_first_write();  // a held first write goes now; its loop ends the connection
  if (!writing) die(*finishing, true);
}

Task<void> Core::read_loop() {
  for (;;) {
    Result<size_t> n = co_await io::read(*transport, rx.next());
    if (!n || *n == 0) {
      die(n ? Error(Errc::connection_reset, "the peer closed the HTTP/2 connection") : n.error());
      co_return;
    }
    last_rx = env.clock.now();
    rx.note_read(*n);
    const ssize_t rv = nghttp2_session_mem_recv(session, rx.data(), *n);
    if (rv < 0) {
      die(Error(Errc::io_error, std::string("HTTP/2 protocol error: ") + nghttp2_strerror(int(rv))));
      co_return;
    }
    flush();  // frames nghttp2 still wants to send, before it may say it is done
    if (nghttp2_session_want_read(session) == 0 && nghttp2_session_want_write(session) == 0) {
      finish(Error(Errc::connection_reset, "HTTP/2 connection finished (GOAWAY)"));
      co_return;
    }
  }
}

Task<void> Core::keepalive_loop() {
  for (;;) {
    co_await io::sleep(env.loop, settings.ping_idle);
    if (dead) co_return;
    release_first_write();  // a first request unanswered for this long holds nothing back
    const MonoTime now = env.clock.now();
    if (ping_outstanding && now - ping_sent_at >= settings.ping_timeout) {
      die(Error(Errc::timed_out, "no answer to an HTTP/2 PING in " + std::to_string(to_ms(settings.ping_timeout)) + "ms"));
      co_return;
    }
    if (!ping_outstanding && now - last_rx >= settings.ping_idle) {
      nghttp2_submit_ping(session, NGHTTP2_FLAG_NONE, nullptr);
      ping_outstanding = true;
      ping_sent_at = now;
      flush();
    }
  }
}

void Core::die(Error e, bool graceful) {
  if (dead) return;
  dead = true;
  death = e;
  ZT_LOG(env.log, debug, "h2", "connection ended", {"peer", peer}, {"role", role == Role::client ? "client" : "server"},
         {"streams", streams.size()}, {"error", e.message()});
  // Streams the peer never answered: safe to retry elsewhere unless their
  // DATA left (the peer's application may have consumed it). Those past a
  // GOAWAY's last stream id were refused already (nghttp2 closes them
  // REFUSED_STREAM when the GOAWAY arrives), data or not.
  for (auto& [id, st] : streams) {
    if (st->open_cb) {
      deliver(*st, take(st->open_cb),
              Result<Opened>(st->data_left ? Error(kLost, "HTTP/2 connection ended after the request's data left, "
                                                          "before the response: " + e.message())
                                           : Error(kRefused, "HTTP/2 connection ended before the response: " +
                                                                 e.message())));
    }
    fail_stream(*st, Error(Errc::connection_reset, "HTTP/2 connection ended: " + e.message()));
  }
  // Requests still waiting for our answer will never get it.
  std::vector<std::function<void()>> cancels;
  for (auto& [id, st] : streams) {
    if (st->on_cancel) cancels.push_back(take(st->on_cancel));
  }
  for (auto& cancel : cancels) cancel();
  if (transport) graceful ? transport->close() : transport->abort();
  if (on_closed) on_closed(e);
}

// A quiet connection may be dead without knowing it: a PING goes with the
// request, and the request's DATA waits for the ACK (Settings::liveness_quiet).
void Core::probe_liveness() {
  if (probing || settings.liveness_quiet <= Duration(0)) return;
  if (env.clock.now() - last_rx < settings.liveness_quiet) return;
  probing = true;
  const uint64_t probe = ++probes;
  ZT_LOG(env.log, debug, "h2", "quiet connection: a PING before early data", {"peer", peer},
         {"quiet_ms", to_ms(env.clock.now() - last_rx)});
  nghttp2_submit_ping(session, NGHTTP2_FLAG_NONE, nullptr);
  env.loop.run_after(settings.liveness_timeout, [weak = weak_from_this(), probe] {
    if (auto self = weak.lock()) self->probe_expired(probe);
  });
}

// A PING ACK: the peer is there. Held DATA goes.
void Core::alive() {
  if (!probing) return;
  probing = false;
  for (auto& [id, st] : streams) {
    if (!std::exchange(st->held_for_liveness, false)) continue;
    if (std::exchange(st->deferred, false) && !st->closed) nghttp2_session_resume_data(session, id);
  }
  flush();
}

// No ACK in time: the peer may be gone. The streams that held their DATA
// never sent any, so they are refused (retried elsewhere) and reset here;
// the connection takes no new streams. Streams opened before the probe go
// on (keepalive decides about the connection).
void Core::probe_expired(uint64_t probe) {
  if (dead || !probing || probe != probes) return;
  probing = false;
  silent = true;
  ZT_LOG(env.log, debug, "h2", "no answer to a liveness PING: no new streams", {"peer", peer},
         {"timeout_ms", to_ms(settings.liveness_timeout)});
  std::vector<std::shared_ptr<StreamState>> held;
  for (auto& [id, st] : streams)
    if (st->held_for_liveness) held.push_back(st);
  for (auto& st : held) {
    st->held_for_liveness = false;
    ZT_ASSERT(!st->data_left);
    const Error refused(kRefused, "HTTP/2 connection silent: no answer to a PING in " +
                                      std::to_string(to_ms(settings.liveness_timeout)) + "ms");
    if (st->open_cb) deliver(*st, take(st->open_cb), Result<Opened>(refused));
    fail_stream(*st, refused);
    if (!st->closed) nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
  }
  flush();
}

void Core::fail_stream(StreamState& st, const Error& e) {
  st.reset = true;
  // A read already filled completes with its bytes; the next one sees the reset.
  if (st.rd_cb && !st.rd_posted && st.rx_off == st.rx.size()) deliver(st, take(st.rd_cb), Result<size_t>(e));
  if (st.wr_cb) deliver(st, take(st.wr_cb), Result<size_t>(e));
}

void Core::consume(StreamState& st, size_t n) {
  if (dead || n == 0) return;
  // A reader that acknowledges late (fault point): the sender meets a zero
  // window and waits for the WINDOW_UPDATE, which comes within a second.
  if (ZT_BUGGIFY(env, "h2.zero_window")) {
    const Duration delay = std::chrono::milliseconds(10 + int64_t(n % 990));
    env.loop.run_after(delay, [weak = weak_from_this(), id = st.id, n] {
      auto core = weak.lock();
      if (!core || core->dead) return;
      auto it = core->streams.find(id);
      if (it != core->streams.end() && !it->second->closed) {
        nghttp2_session_consume(core->session, id, n);
      } else {
        nghttp2_session_consume_connection(core->session, n);
      }
      core->flush();
    });
    return;
  }
  if (!st.closed) {
    nghttp2_session_consume(session, st.id, n);
  } else {
    nghttp2_session_consume_connection(session, n);
  }
  flush();
}

// Acknowledges early data nobody will read (the request was rejected, or
// reset before its answer), so the connection window it held opens again.
void Core::drop_early_data(StreamState& st) {
  st.awaiting_answer = false;
  const size_t n = st.rx.size() - st.rx_off;
  std::vector<uint8_t>().swap(st.rx);
  st.rx_off = 0;
  consume(st, n);
}

void Core::wake_reader(const std::shared_ptr<StreamState>& stp) {
  StreamState& st = *stp;
  if (!st.rd_cb || st.rd_posted) return;
  const size_t avail = st.rx.size() - st.rx_off;
  if (avail > 0) {
    const size_t n = std::min(avail, st.rd_buf.size());
    std::memcpy(st.rd_buf.data(), st.rx.data() + st.rx_off, n);
    st.rx_off += n;
    if (st.rx_off == st.rx.size()) {
      // A small backlog (early data, a few frames ahead of the reader) is
      // freed: the tunnel may now sit idle for hours. A big one is a bulk
      // flow's, likely needed again.
      if (st.rx.capacity() <= kStreamBacklogKeep) {
        std::vector<uint8_t>().swap(st.rx);
      } else {
        st.rx.clear();
      }
      st.rx_off = 0;
    }
    st.rd_filled = n;
    consume(st, n);
    return complete_read_later(stp);
  }
  if (st.rx_fin) return deliver(st, take(st.rd_cb), Result<size_t>(size_t{0}));
  if (st.reset || dead) return deliver(st, take(st.rd_cb), Result<size_t>(st.reset_reason()));
}

void Core::complete_read_later(const std::shared_ptr<StreamState>& stp) {
  stp->rd_posted = true;
  env.loop.post([alive = stp->tunnel_alive, stp] {
    if (!*alive) return;
    StreamState& st = *stp;
    st.rd_posted = false;
    const size_t n = std::exchange(st.rd_filled, 0);
    if (Stream::IoCallback cb = take(st.rd_cb)) cb(Result<size_t>(n));  // else cancelled meanwhile
  });
}

StreamPtr Core::make_tunnel(const std::shared_ptr<StreamState>& st) {
  ZT_ASSERT(!st->has_tunnel);  // one tunnel per stream
  return std::make_unique<Tunnel>(shared_from_this(), st);
}

nghttp2_data_provider Core::provider(StreamState* st) {
  nghttp2_data_provider p;
  p.source.ptr = st;
  p.read_callback = read_data;
  return p;
}

// DATA payloads are not copied into nghttp2's frame buffer: read_data only
// says how much goes in the frame (NO_COPY), and send_data appends header
// and payload straight from the writer's buffer to the transport batch.
ssize_t Core::read_data(nghttp2_session* session, int32_t, uint8_t*, size_t len, uint32_t* flags, nghttp2_data_source* src,
                        void*) {
  auto* st = static_cast<StreamState*>(src->ptr);
  if (st->held_for_liveness) {
    st->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  if (st->wr_cb && st->wr_off < st->wr_buf.size()) {
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    return ssize_t(std::min(len, st->wr_buf.size() - st->wr_off));
  }
  if (st->fin_requested) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    st->fin_sent = true;
    if (st->trailers_out && !st->trailers_out->empty()) {
      // END_STREAM goes with the trailers (nghttp2 copies them).
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      std::vector<nghttp2_nv> nva;
      for (const auto& [k, v] : *st->trailers_out) nva.push_back(nv(k, v));
      nghttp2_submit_trailer(session, st->id, nva.data(), nva.size());
    }
    return 0;
  }
  st->deferred = true;
  return NGHTTP2_ERR_DEFERRED;
}

int Core::send_data(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd, size_t len,
                    nghttp2_data_source* src, void* user) {
  auto* core = static_cast<Core*>(user);
  auto* st = static_cast<StreamState*>(src->ptr);
  // Called within the nghttp2_session_mem_send that framed it (write_loop),
  // right after read_data: the writer's buffer is still there.
  ZT_ASSERT(frame->data.padlen == 0 && st->wr_cb && len <= st->wr_buf.size() - st->wr_off);
  ByteVector& tx = core->tx;
  const size_t at = tx.size();
  tx.resize(at + 9 + len);
  std::memcpy(tx.data() + at, framehd, 9);
  std::memcpy(tx.data() + at + 9, st->wr_buf.data() + st->wr_off, len);
  st->wr_off += len;
  if (len > 0) st->data_left = true;
  if (st->wr_off == st->wr_buf.size()) core->deliver(*st, take(st->wr_cb), Result<size_t>(st->wr_buf.size()));
  // Otherwise one mem_send call would frame every stream's pending bytes.
  return tx.size() >= kTransportWriteBytes ? NGHTTP2_ERR_PAUSE : 0;
}

int Core::on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* core = static_cast<Core*>(user);
  if (core->role == Role::server && frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    auto st = std::make_shared<StreamState>();
    st->id = frame->hd.stream_id;
    core->streams[st->id] = st;
  }
  return 0;
}

int Core::on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                    const uint8_t* value, size_t valuelen, uint8_t, void* user) {
  auto* core = static_cast<Core*>(user);
  auto it = core->streams.find(frame->hd.stream_id);
  if (it == core->streams.end()) return 0;
  StreamState& st = *it->second;
  if (core->role == Role::server) {
    // The limit we advertise (SETTINGS_MAX_HEADER_LIST_SIZE) is advisory
    // for the peer; nghttp2 does not hold it to it. We do: the request is
    // answered 431 and its headers are not kept.
    st.header_bytes += namelen + valuelen + 32;
    if (st.header_bytes > core->settings.header_list_bytes_max) st.oversized = true;
    if (st.oversized) return 0;
  }
  std::string n(reinterpret_cast<const char*>(name), namelen), v(reinterpret_cast<const char*>(value), valuelen);
  if (core->role == Role::server) {
    if (n == ":method") st.request.method = std::move(v);
    else if (n == ":authority") st.request.authority = std::move(v);
    else if (n == ":path") st.request.path = std::move(v);
    else if (n == ":scheme") st.request.scheme = std::move(v);
    else if (n[0] != ':') st.request.headers.emplace_back(std::move(n), std::move(v));
  } else if (st.answered && frame->headers.cat == NGHTTP2_HCAT_HEADERS) {
    // Trailers: the response went to the application already.
    if (st.trailers_in && n[0] != ':') st.trailers_in->emplace_back(std::move(n), std::move(v));
  } else {
    if (n == ":status") std::from_chars(v.data(), v.data() + v.size(), st.response.status);
    else if (n[0] != ':') st.response.headers.emplace_back(std::move(n), std::move(v));
  }
  return 0;
}

int Core::on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* core = static_cast<Core*>(user);
  switch (frame->hd.type) {
    case NGHTTP2_GOAWAY:
      core->goaway_received = true;
      ZT_LOG(core->env.log, debug, "h2", "GOAWAY received", {"peer", core->peer},
             {"last_stream_id", frame->goaway.last_stream_id}, {"error_code", frame->goaway.error_code});
      return 0;
    case NGHTTP2_PING:
      if (frame->hd.flags & NGHTTP2_FLAG_ACK) {
        core->ping_outstanding = false;
        core->alive();
      }
      return 0;
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA: break;
    default: return 0;
  }
  auto it = core->streams.find(frame->hd.stream_id);
  if (it == core->streams.end()) return 0;
  std::shared_ptr<StreamState> st = it->second;
  if (frame->hd.type == NGHTTP2_HEADERS && core->role == Role::client && !st->answered &&
      frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
    st->answered = true;
    if (st->held_for_liveness) core->alive();  // it answered what went with the probe
    Opened opened;
    opened.response = std::move(st->response);
    opened.trailers = st->trailers_in;
    const bool success = opened.response.status >= 200 && opened.response.status < 300;
    if (success && !st->early) opened.tunnel = core->make_tunnel(st);
    if (!success) {
      // Refused: our side ends at once (END_STREAM), or the stream would
      // stay half-open on both ends, holding a slot of the connection. An
      // early tunnel fails (not EOF: the peer never had a tunnel).
      if (st->early) {
        st->refused_status = opened.response.status;
        core->fail_stream(*st, st->reset_reason());
      }
      st->fin_requested = true;
      if (std::exchange(st->deferred, false)) nghttp2_session_resume_data(core->session, st->id);
      core->deliver(*st, take(st->open_cb), Result<Opened>(std::move(opened)));
      return 0;
    }
    core->deliver(*st, take(st->open_cb), Result<Opened>(std::move(opened)));
  } else if (frame->hd.type == NGHTTP2_HEADERS && core->role == Role::server &&
             frame->headers.cat == NGHTTP2_HCAT_REQUEST && st->oversized) {
    ++core->oversized_requests;
    ZT_LOG(core->env.log, debug, "h2", "request header list too large: 431", {"peer", core->peer},
           {"stream", st->id}, {"bytes", st->header_bytes});
    const std::string status_name = ":status", status = "431";
    const nghttp2_nv nva[] = {nv(status_name, status)};
    nghttp2_submit_response(core->session, st->id, nva, 1, nullptr);  // END_STREAM
    return 0;
  } else if (frame->hd.type == NGHTTP2_HEADERS && core->role == Role::server &&
             frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    if (core->unanswered >= core->settings.unanswered_requests_max) {
      // Rapid reset, or a peer that floods faster than we answer: calm it
      // down. GOAWAY names the last stream processed; this one is refused.
      if (!core->calmed) {
        core->calmed = true;
        ZT_LOG(core->env.log, warn, "h2", "peer sent too many unanswered requests: GOAWAY(ENHANCE_YOUR_CALM)",
               {"peer", core->peer}, {"unanswered", core->unanswered});
        nghttp2_session_terminate_session(core->session, NGHTTP2_ENHANCE_YOUR_CALM);
      }
      nghttp2_submit_rst_stream(core->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM);
      return 0;
    }
    // Moved, not copied: the Incoming is the request's one owner from here.
    st->awaiting_answer = true;
    auto incoming = std::make_unique<Connection::Incoming>(core->shared_from_this(), st->id, std::move(st->request));
    if (core->on_request) {
      core->on_request(std::move(incoming));
    }  // else: destroyed, which rejects it
  }
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
    st->rx_fin = true;
    core->wake_reader(st);
  }
  return 0;
}

int Core::on_data_chunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len, void* user) {
  auto* core = static_cast<Core*>(user);
  auto it = core->streams.find(id);
  if (it != core->streams.end() && it->second->awaiting_answer) {
    // Early data, sent right behind the request: kept for the tunnel if the
    // request is accepted (unacknowledged meanwhile, so the stream window
    // bounds it), dropped if it is not (drop_early_data).
    it->second->rx.insert(it->second->rx.end(), data, data + len);
    return 0;
  }
  if (it == core->streams.end() || !it->second->has_tunnel || it->second->orphaned) {
    // Nobody will read these: acknowledge them at once, and reset a stream
    // whose application already closed it.
    nghttp2_session_consume(core->session, id, len);
    if (it != core->streams.end() && it->second->orphaned && !it->second->reset && len > 0) {
      it->second->reset = true;
      nghttp2_submit_rst_stream(core->session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    }
    return 0;
  }
  const std::shared_ptr<StreamState>& stp = it->second;
  StreamState& st = *stp;
  size_t direct = 0;
  if (len > 0 && st.rd_cb && st.rx_off == st.rx.size()) {  // a read waits, nothing is ahead of this
    direct = std::min(len, st.rd_buf.size() - st.rd_filled);
    std::memcpy(st.rd_buf.data() + st.rd_filled, data, direct);
    st.rd_filled += direct;
    core->consume(st, direct);
    if (!st.rd_posted) core->complete_read_later(stp);
  }
  st.rx.insert(st.rx.end(), data + direct, data + len);
  return 0;
}

// A frame nghttp2 would not send: a request whose header block is past
// what we may send, or one on a connection that is going away. Its stream
// fails now instead of waiting for an answer that cannot come.
int Core::on_frame_not_send(nghttp2_session*, const nghttp2_frame* frame, int error, void* user) {
  auto* core = static_cast<Core*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  ZT_LOG(core->env.log, debug, "h2", "frame not sent", {"peer", core->peer}, {"stream", frame->hd.stream_id},
         {"error", nghttp2_strerror(error)});
  auto it = core->streams.find(frame->hd.stream_id);
  if (it == core->streams.end()) return 0;
  std::shared_ptr<StreamState> st = it->second;
  if (st->open_cb) {
    // A request too large for any connection is the caller's error; any
    // other (a GOAWAY that arrived between submitting and sending it, the
    // connection closing) never left: refused, safe to retry elsewhere.
    const bool unsendable = error == NGHTTP2_ERR_FRAME_SIZE_ERROR || error == NGHTTP2_ERR_HEADER_COMP;
    const Errc code = unsendable ? Errc::invalid_argument : kRefused;
    core->deliver(*st, take(st->open_cb),
                  Result<Opened>(Error(code, std::string("HTTP/2 request not sent: ") + nghttp2_strerror(error))));
  }
  core->fail_stream(*st, Error(Errc::connection_reset, std::string("HTTP/2 request not sent: ") + nghttp2_strerror(error)));
  return 0;
}

int Core::on_stream_close(nghttp2_session*, int32_t id, uint32_t error_code, void* user) {
  auto* core = static_cast<Core*>(user);
  auto it = core->streams.find(id);
  if (it == core->streams.end()) return 0;
  std::shared_ptr<StreamState> st = it->second;
  core->streams.erase(it);
  ZT_ASSERT(!st->closed && st->id == id);  // a stream closes once
  st->closed = true;
  if (st->awaiting_answer) {
    core->drop_early_data(*st);  // reset before our answer
    // Whatever the application does for it (a dial) can stop now. Run
    // here, not posted: the Incoming clears it before it goes.
    if (auto cancel = take(st->on_cancel)) cancel();
  }
  if (core->streams.empty() && core->on_idle) core->on_idle();
  if (st->open_cb) {
    const bool refused = error_code == NGHTTP2_REFUSED_STREAM;
    core->deliver(*st, take(st->open_cb),
                  Result<Opened>(Error(refused ? kRefused : Errc::connection_reset,
                                       std::string("HTTP/2 stream closed before the response: ") +
                                           nghttp2_http2_strerror(error_code))));
  }
  if (error_code != NGHTTP2_NO_ERROR) {
    core->fail_stream(*st, Error(Errc::connection_reset, std::string("HTTP/2 stream reset: ") +
                                                             nghttp2_http2_strerror(error_code)));
  } else {
    core->wake_reader(st);
  }
  if (st->wr_cb) core->deliver(*st, take(st->wr_cb), Result<size_t>(Error(Errc::not_connected, "stream closed")));
  return 0;
}

// --- Connection ------------------------------------------------------------------

Connection::Connection(Env& env, StreamPtr transport, Role role, Settings settings)
    : core_(std::make_shared<Core>(env, std::move(transport), role, settings)) {
  ZT_ASSERT(core_->init());
}

Connection::~Connection() {
  *core_->owner_alive = false;
  core_->on_closed = nullptr;
  core_->on_idle = nullptr;
  core_->on_request = nullptr;
  core_->die(Error(Errc::cancelled, "HTTP/2 connection dropped by its owner"));
  // The transport goes first, dropping its callbacks, then the coroutines
  // that waited on them; tunnels may keep the rest alive a while.
  core_->transport.reset();
  core_->scope.clear();
}

void Connection::start() { core_->start(); }

void Connection::open(Request request, std::function<void(Result<Opened>)> done,
                      std::function<void(StreamPtr)> early) {
  ZT_ASSERT(core_->role == Role::client);
  auto st = std::make_shared<StreamState>();
  if (!accepting_streams()) {
    return core_->deliver(*st, std::move(done),
                          Result<Opened>(Error(kRefused, "HTTP/2 connection takes no new streams")));
  }
  core_->probe_liveness();
  st->held_for_liveness = core_->probing;
  std::vector<nghttp2_nv> nva;
  const std::string method = ":method", authority = ":authority", scheme = ":scheme", path = ":path";
  nva.push_back(nv(method, request.method));
  nva.push_back(nv(authority, request.authority));
  if (!request.scheme.empty()) nva.push_back(nv(scheme, request.scheme));
  if (!request.path.empty()) nva.push_back(nv(path, request.path));
  for (const auto& [k, v] : request.headers) nva.push_back(nv(k, v));
  nghttp2_data_provider prd = core_->provider(st.get());
  const int32_t id = nghttp2_submit_request(core_->session, nullptr, nva.data(), nva.size(), &prd, st.get());
  if (id < 0) {
    return core_->deliver(*st, std::move(done),
                          Result<Opened>(Error(kRefused, std::string("HTTP/2: ") + nghttp2_strerror(id))));
  }
  st->id = id;
  st->open_cb = std::move(done);
  // Only a client that takes trailers (TE: trailers, as gRPC's) keeps them;
  // an HBONE CONNECT allocates nothing for them.
  const bool takes_trailers = std::any_of(request.headers.begin(), request.headers.end(),
                                          [](const auto& h) { return h.first == "te" && h.second == "trailers"; });
  if (takes_trailers) st->trailers_in = std::make_shared<Headers>();
  core_->streams[id] = st;
  if (early) {
    st->early = true;
    early(core_->make_tunnel(st));  // last: it may write at once
  }
  core_->flush();
}

void Connection::on_request(std::function<void(std::unique_ptr<Incoming>)> fn) { core_->on_request = std::move(fn); }
void Connection::on_closed(std::function<void(const Error&)> fn) { core_->on_closed = std::move(fn); }
void Connection::on_idle(std::function<void()> fn) { core_->on_idle = std::move(fn); }

void Connection::goaway() { core_->goaway(); }
void Connection::close(Error why) { core_->die(std::move(why)); }

void Core::goaway() {
  if (dead || goaway_sent) return;
  goaway_sent = true;
  release_first_write();
  nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session),
                        NGHTTP2_NO_ERROR, nullptr, 0);
  flush();
}

bool Connection::accepting_streams() const {
  const Core& c = *core_;
  if (c.dead || c.goaway_sent || c.goaway_received) return false;
  if (c.ping_outstanding && c.env.clock.now() - c.ping_sent_at >= c.settings.ping_idle) return false;
  if (c.silent) return false;
  return active_streams() < peer_concurrent_streams_max();
}

bool Connection::calmed() const { return core_->calmed; }
uint64_t Connection::oversized_requests() const { return core_->oversized_requests; }
bool Connection::dead() const { return core_->dead; }
Endpoint Connection::local() const { return core_->local; }
Endpoint Connection::peer() const { return core_->peer; }
size_t Connection::active_streams() const { return core_->streams.size(); }
Connection::Unread Connection::unread() const {
  Unread u;
  for (const auto& [id, st] : core_->streams) {
    const size_t n = st->rx.size() - st->rx_off;
    u.total += n;
    u.stream_max = std::max(u.stream_max, n);
  }
  return u;
}
uint32_t Connection::peer_concurrent_streams_max() const {
  return nghttp2_session_get_remote_settings(core_->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

// --- Incoming ----------------------------------------------------------------------

Connection::Incoming::Incoming(std::shared_ptr<Core> core, int32_t stream_id, Request request)
    : core_(std::move(core)), id_(stream_id), request_(std::move(request)) {
  ++core_->unanswered;
}

void Connection::Incoming::answered() {
  if (answered_) return;
  answered_ = true;
  --core_->unanswered;
  if (auto it = core_->streams.find(id_); it != core_->streams.end()) it->second->on_cancel = nullptr;
}

namespace {
// Releases a held first write when an answer has been submitted (on every
// way out of accept() and reject()), so the answer goes with SETTINGS.
struct ReleaseFirstWrite {
  Core& core;
  ~ReleaseFirstWrite() { core.release_first_write(); }
};
}  // namespace

Connection::Incoming::~Incoming() {
  if (auto it = core_->streams.find(id_); it != core_->streams.end()) it->second->on_cancel = nullptr;
  if (!answered_) reject(503);
}

void Connection::Incoming::on_cancel(std::function<void()> fn) {
  auto it = core_->streams.find(id_);
  if (core_->dead || it == core_->streams.end() || it->second->closed) return fn();
  it->second->on_cancel = std::move(fn);
}

bool Connection::Incoming::cancelled() const {
  auto it = core_->streams.find(id_);
  return core_->dead || it == core_->streams.end() || it->second->closed;
}

StreamPtr Connection::Incoming::accept(Headers headers, std::shared_ptr<const Headers> trailers) {
  ZT_ASSERT(!answered_);
  answered();
  ReleaseFirstWrite release{*core_};
  auto it = core_->streams.find(id_);
  if (core_->dead || it == core_->streams.end()) return nullptr;  // gone meanwhile
  std::shared_ptr<StreamState> st = it->second;
  st->awaiting_answer = false;  // early data stays in rx, for the tunnel
  st->trailers_out = std::move(trailers);
  const std::string status_name = ":status", status = "200";
  std::vector<nghttp2_nv> nva{nv(status_name, status)};
  for (const auto& [k, v] : headers) nva.push_back(nv(k, v));
  nghttp2_data_provider prd = core_->provider(st.get());
  if (nghttp2_submit_response(core_->session, id_, nva.data(), nva.size(), &prd) != 0) return nullptr;
  StreamPtr tunnel = core_->make_tunnel(st);
  // A server that goes away early (fault point): this stream was answered,
  // the client must move the next ones to a fresh connection invisibly.
  if (ZT_BUGGIFY(core_->env, "h2.early_goaway")) core_->goaway();
  core_->flush();
  request_ = {};  // answered: an open tunnel does not keep its request's strings
  return tunnel;
}

void Connection::Incoming::reject(int status, Headers headers) {
  ZT_ASSERT(!answered_ || status == 503);
  answered();
  ReleaseFirstWrite release{*core_};
  auto it = core_->streams.find(id_);
  if (core_->dead || it == core_->streams.end()) return;
  core_->drop_early_data(*it->second);
  const std::string status_name = ":status", code = std::to_string(status);
  std::vector<nghttp2_nv> nva{nv(status_name, code)};
  for (const auto& [k, v] : headers) nva.push_back(nv(k, v));
  nghttp2_submit_response(core_->session, id_, nva.data(), nva.size(), nullptr);  // END_STREAM
  core_->flush();
}

}  // namespace zt::h2
