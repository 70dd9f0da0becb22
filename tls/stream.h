// TLS over any io Stream: a Stream whose bytes are encrypted into another
// Stream (a simulated connection, a socket, later an HTTP/2 tunnel), with the
// real BoringSSL handshake and record layer driven through memory BIOs. So
// TLS runs unchanged in the simulator.
//
//   TlsStream tls(env, ctx, std::move(tcp));
//   Result<void> hs = co_await tls::handshake(tls);
//   if (!hs) log(tls_failure_name(tls.failure()));
//   tls.peer_identity();                     // verified SPIFFE identity
//   co_await io::write_all(tls, bytes);      // then it is just a Stream
//
// Semantics: shutdown_write() sends close_notify, then FIN; a peer's
// close_notify reads as EOF (0); the transport ending without close_notify
// reads as connection_reset (a truncation must not look like a clean end).
// A write completes once its ciphertext has been handed to the transport,
// so a slow peer slows the writer. Certificates are checked against
// env.clock.wall_now(), so a simulated wall-clock jump expires them.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "io/bytes.h"
#include "io/env.h"
#include "io/task.h"
#include "tls/context.h"

namespace zt::tls {

class TlsStream final : public Stream {
 public:
  using HandshakeCallback = std::function<void(Result<void>)>;

  TlsStream(Env& env, std::shared_ptr<const TlsContext> ctx, StreamPtr transport);
  ~TlsStream() override;

  // Client only: the identities this connection accepts (default: the
  // context's expected_identities). Call before handshake().
  void expect_identities(std::vector<Identity> ids) { expected_ = std::move(ids); }
  // Runs the handshake; completes once, never inside the call.
  void handshake(HandshakeCallback done);
  TlsFailure failure() const { return failure_; }
  const std::optional<Identity>& peer_identity() const { return peer_identity_; }
  // The negotiated TLS version and suite, e.g. "TLSv1.3", "TLS_AES_128_GCM_SHA256".
  std::string version() const;
  std::string cipher() const;

  // Stream
  void read(MutableBytes buf, IoCallback done) override;
  void write(ConstBytes buf, IoCallback done) override;
  Result<void> shutdown_write() override;
  void close() override;
  void abort() override;
  Endpoint local() const override { return transport_->local(); }
  Endpoint peer() const override { return transport_->peer(); }
  Result<Endpoint> original_dst() const override { return transport_->original_dst(); }

 private:
  friend struct TlsCallbacks;

  void progress();
  void step();
  void drive_handshake();
  void drive_read();
  void drive_write();
  void flush();
  void release_tx_hold();
  void maybe_read_transport();
  void fail_handshake(Error e);
  Error classify_ssl_error(int ret, const char* op);
  int verify_peer(uint8_t* out_alert);
  int verify_server_name(const STACK_OF(CRYPTO_BUFFER) * bufs, WallTime now, uint8_t* out_alert);
  int refuse_chain(int x509_error, uint8_t* out_alert);
  int accept_identity(const Identity& id, uint8_t* out_alert);
  template <class Cb, class R>
  void deliver(Cb cb, R result);

  Env& env_;
  std::shared_ptr<const TlsContext> ctx_;
  StreamPtr transport_;
  bssl::UniquePtr<SSL> ssl_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::vector<Identity> expected_;
  std::shared_ptr<const Credentials> creds_;  // the certificate this connection presents

  // The transport side.
  ReadBuffer rx_;                 // one transport read at a time
  size_t rx_off_ = 0, rx_len_ = 0;  // rx_[rx_off_, rx_len_) is not yet taken by SSL
  ByteVector tx_;                 // ciphertext being written
  size_t tx_sent_ = 0;
  int tx_small_batches_ = 0;      // see recycle()
  ByteVector tx_next_;            // ciphertext SSL wrote since; goes once tx_ is sent
  bool transport_reading_ = false, transport_writing_ = false;
  bool transport_eof_ = false;
  std::optional<Error> transport_error_;
  bool want_read_ = false;  // the last SSL call needs more ciphertext
  bool tx_hold_ = false;    // client: the last handshake flight waits for the first write

  // The handshake.
  HandshakeCallback hs_cb_;
  bool hs_started_ = false, hs_done_ = false;
  std::optional<Error> hs_error_;
  TlsFailure failure_ = TlsFailure::none;
  std::string verify_detail_;
  std::optional<Identity> peer_identity_;
  // For TlsConfig::on_handshake only.
  WallTime hs_started_wall_{}, verified_at_{};
  std::optional<std::pair<WallTime, WallTime>> verified_validity_;
  void report_handshake();

  // The user side: one read and one write at a time.
  MutableBytes rd_buf_;
  IoCallback rd_cb_;
  ConstBytes wr_buf_;
  IoCallback wr_cb_;
  size_t wr_taken_ = 0;      // plaintext SSL_write accepted, waiting for the flush
  size_t wr_limit_ = 0;      // plaintext of this write one SSL_write may take
  bool fin_pending_ = false;  // send FIN once the close_notify is flushed
  bool closed_ = false;

  bool in_progress_ = false, again_ = false;
};

// Awaitable handshake for coroutine code.
inline auto handshake(TlsStream& s) {
  struct Awaiter {
    TlsStream& s;
    std::optional<Result<void>> result;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
      s.handshake([this, h](Result<void> r) {
        result.emplace(std::move(r));
        h.resume();
      });
    }
    Result<void> await_resume() { return std::move(*result); }
  };
  return Awaiter{s, std::nullopt};
}

}  // namespace zt::tls
