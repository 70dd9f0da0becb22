#include "tls/stream.h"

#include <algorithm>
#include <climits>
#include <cstring>

namespace zt::tls {
namespace {

constexpr size_t kRecordPlaintextMax = 16384;
constexpr size_t kRecordBytesMax = kRecordPlaintextMax + 512;  // with header and tag
// One user write becomes up to 16 records in one transport write (HTTP/2
// hands over its frames 256 KiB at a time), and one transport read takes up
// to four: per byte, fewer sends, receives and posted completions.
constexpr size_t kWritePlaintextMax = 16 * kRecordPlaintextMax;
constexpr size_t kTransportReadBytes = 4 * kRecordBytesMax;
// While the connection is quiet (io/bytes.h ReadBuffer): a handshake flight
// with its certificate chain (2-3 KiB) arrives in one read, and neither it
// nor small messages make the connection switch to full-size reads.
constexpr size_t kTransportReadQuietBytes = 4096;
// A ciphertext batch buffer up to this size stays allocated between writes;
// a bigger one only while batches are big (recycle()).
constexpr size_t kTransportWriteKeep = 4 * 1024;
constexpr int kPinnedSignatureBytes = 72;

template <class Cb>
Cb take(Cb& slot) {
  Cb cb = std::move(slot);
  slot = nullptr;
  return cb;
}

}  // namespace

// BoringSSL calls these C callbacks with the SSL; they find the stream in
// its app data.
struct TlsCallbacks {
  static TlsStream* self(SSL* ssl) { return static_cast<TlsStream*>(SSL_get_app_data(ssl)); }

  // Our own BIOs instead of memory BIOs: SSL reads ciphertext straight from
  // the transport read buffer and appends what it writes straight to the
  // next transport write, one copy less each way.
  static int bio_read(BIO* bio, char* out, int len) {
    TlsStream* s = static_cast<TlsStream*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    const size_t n = std::min(s->rx_len_ - s->rx_off_, size_t(len));
    if (n == 0) {
      BIO_set_retry_read(bio);
      return -1;
    }
    std::memcpy(out, s->rx_.data() + s->rx_off_, n);
    s->rx_off_ += n;
    return int(n);
  }
  static int bio_write(BIO* bio, const char* in, int len) {
    TlsStream* s = static_cast<TlsStream*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    // Not insert(end, in, in + len): from char* into a vector<uint8_t> that
    // is an element-by-element loop, which cost 12% of a ztunnel's CPU.
    const size_t at = s->tx_next_.size();
    s->tx_next_.resize(at + size_t(len));
    std::memcpy(s->tx_next_.data() + at, in, size_t(len));
    return len;
  }
  static long bio_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }
  static const BIO_METHOD* bio_method() {
    static const BIO_METHOD* method = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "zt-tls-transport");
      ZT_ASSERT(m && BIO_meth_set_read(m, bio_read) && BIO_meth_set_write(m, bio_write) &&
                BIO_meth_set_ctrl(m, bio_ctrl));
      return m;
    }();
    return method;
  }
  static BIO* new_bio(TlsStream* s) {
    BIO* bio = BIO_new(bio_method());
    ZT_ASSERT(bio);
    BIO_set_data(bio, s);
    BIO_set_init(bio, 1);
    return bio;
  }

  static ssl_verify_result_t verify(SSL* ssl, uint8_t* out_alert) {
    return self(ssl)->verify_peer(out_alert) ? ssl_verify_ok : ssl_verify_invalid;
  }

  // Signs with the configured key, retrying until the signature has its full
  // length, so handshake sizes are the same in every run (simulation only).
  static ssl_private_key_result_t sign(SSL* ssl, uint8_t* out, size_t* out_len, size_t max_out, uint16_t alg,
                                       const uint8_t* in, size_t in_len) {
    EVP_PKEY* key = self(ssl)->creds_->key.get();
    const EVP_MD* md = SSL_get_signature_algorithm_digest(alg);
    size_t len = 0;
    for (int attempt = 0; attempt < 64; ++attempt) {
      bssl::ScopedEVP_MD_CTX mctx;
      len = max_out;
      if (!EVP_DigestSignInit(mctx.get(), nullptr, md, nullptr, key) || !EVP_DigestSign(mctx.get(), out, &len, in, in_len))
        return ssl_private_key_failure;
      if (len == kPinnedSignatureBytes) break;
    }
    *out_len = len;
    return ssl_private_key_success;
  }
  static ssl_private_key_result_t decrypt(SSL*, uint8_t*, size_t*, size_t, const uint8_t*, size_t) {
    return ssl_private_key_failure;  // ECDSA keys never decrypt
  }
  static ssl_private_key_result_t complete(SSL*, uint8_t*, size_t*, size_t) { return ssl_private_key_failure; }
};

namespace {
const SSL_PRIVATE_KEY_METHOD kPinnedKeyMethod = {TlsCallbacks::sign, TlsCallbacks::decrypt, TlsCallbacks::complete};
}  // namespace

TlsStream::TlsStream(Env& env, std::shared_ptr<const TlsContext> ctx, StreamPtr transport)
    : env_(env), ctx_(std::move(ctx)), transport_(std::move(transport)), rx_(kTransportReadBytes, kTransportReadQuietBytes) {
  ZT_ASSERT(ctx_ && transport_);
  const TlsConfig& cfg = ctx_->config();
  const bool server = cfg.role == TlsRole::server;
  creds_ = cfg.credentials;
  if (server && cfg.credentials_for) {
    if (auto chosen = cfg.credentials_for(transport_->local())) creds_ = std::move(chosen);
  }
  // A server starts from the context that presents the chosen certificate.
  Result<SSL_CTX*> ssl_ctx = ctx_->ssl_ctx_for(creds_);
  ZT_ASSERT(ssl_ctx.ok());  // the credentials were built by our CA code: a failure is a bug
  ssl_.reset(SSL_new(*ssl_ctx));
  ZT_ASSERT(ssl_);
  BIO* rbio = TlsCallbacks::new_bio(this);
  BIO* wbio = TlsCallbacks::new_bio(this);
  SSL_set_bio(ssl_.get(), rbio, wbio);
  SSL_set_app_data(ssl_.get(), this);
  server ? SSL_set_accept_state(ssl_.get()) : SSL_set_connect_state(ssl_.get());
  // HBONE clients send no meaningful SNI; a client of istiod names it.
  if (!server && !cfg.expected_server_name.empty()) SSL_set_tlsext_host_name(ssl_.get(), cfg.expected_server_name.c_str());
  const bool client_cert = server && cfg.require_client_certificate;
  if (!server || client_cert) {
    SSL_set_custom_verify(ssl_.get(), SSL_VERIFY_PEER | (client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                          TlsCallbacks::verify);
  }
  if (cfg.pin_signature_sizes && creds_) SSL_set_private_key_method(ssl_.get(), &kPinnedKeyMethod);
  expected_ = cfg.expected_identities;
}

TlsStream::~TlsStream() { *alive_ = false; }

std::string TlsStream::version() const { return SSL_get_version(ssl_.get()); }

std::string TlsStream::cipher() const {
  const SSL_CIPHER* c = SSL_get_current_cipher(ssl_.get());
  return c ? SSL_CIPHER_standard_name(c) : "";
}

template <class Cb, class R>
void TlsStream::deliver(Cb cb, R result) {
  if (!cb) return;
  env_.loop.post([alive = alive_, cb = std::move(cb), r = std::move(result)]() mutable {
    if (*alive) cb(std::move(r));
  });
}

void TlsStream::handshake(HandshakeCallback done) {
  ZT_ASSERT(!hs_started_);
  hs_started_ = true;
  hs_cb_ = std::move(done);
  if (ctx_->config().on_handshake) hs_started_wall_ = env_.clock.wall_now();
  if (closed_) return fail_handshake(Error(Errc::not_connected, "TLS stream closed"));
  progress();
}

void TlsStream::read(MutableBytes buf, IoCallback done) {
  ZT_ASSERT(!rd_cb_ && !buf.empty());
  if (closed_) return deliver(std::move(done), Result<size_t>(Error(Errc::not_connected, "TLS read: closed")));
  if (hs_error_) return deliver(std::move(done), Result<size_t>(*hs_error_));
  if (!hs_done_) return deliver(std::move(done), Result<size_t>(Error(Errc::not_connected, "TLS read before handshake")));
  rd_buf_ = buf;
  rd_cb_ = std::move(done);
  progress();
}

void TlsStream::write(ConstBytes buf, IoCallback done) {
  ZT_ASSERT(!wr_cb_ && !buf.empty());
  if (closed_) return deliver(std::move(done), Result<size_t>(Error(Errc::not_connected, "TLS write: closed")));
  if (hs_error_) return deliver(std::move(done), Result<size_t>(*hs_error_));
  if (!hs_done_ || fin_pending_ || SSL_get_shutdown(ssl_.get()) & SSL_SENT_SHUTDOWN)
    return deliver(std::move(done), Result<size_t>(Error(Errc::not_connected, "TLS write before handshake or after shutdown")));
  ZT_ASSERT(hs_done_ && wr_taken_ == 0);
  wr_buf_ = buf;
  wr_cb_ = std::move(done);
  // Tiny records now and then (fault point): the peer reassembles many
  // records per read, and this write completes with a prefix, as any may.
  // Decided once per write: a retried SSL_write must repeat its length.
  wr_limit_ = ZT_BUGGIFY(env_, "tls.short_records") ? 1 + buf.size() % 97 : kWritePlaintextMax;
  tx_hold_ = false;  // goes with the held flight, if any
  progress();
}

Result<void> TlsStream::shutdown_write() {
  ZT_ASSERT(!wr_cb_);
  if (closed_ || !hs_done_) return Error(Errc::not_connected, "TLS shutdown before handshake or after close");
  if (SSL_get_shutdown(ssl_.get()) & SSL_SENT_SHUTDOWN) return ok();
  SSL_shutdown(ssl_.get());  // queues close_notify; the peer may still send
  fin_pending_ = true;
  tx_hold_ = false;
  progress();
  return ok();
}

void TlsStream::close() {
  if (closed_) return;
  closed_ = true;
  deliver(take(rd_cb_), Result<size_t>(Errc::cancelled));
  deliver(take(wr_cb_), Result<size_t>(Errc::cancelled));
  if (hs_cb_) deliver(take(hs_cb_), Result<void>(Errc::cancelled));
  // Bytes already queued (a close_notify after shutdown_write) still go out
  // if this object lives long enough; then the transport closes.
  if (!transport_writing_ && tx_sent_ == tx_.size() && tx_next_.empty()) transport_->close();
  else progress();
}

void TlsStream::abort() {
  if (closed_) return;
  closed_ = true;
  deliver(take(rd_cb_), Result<size_t>(Errc::cancelled));
  deliver(take(wr_cb_), Result<size_t>(Errc::cancelled));
  if (hs_cb_) deliver(take(hs_cb_), Result<void>(Errc::cancelled));
  transport_->abort();
}

// --- the engine ----------------------------------------------------------------

void TlsStream::progress() {
  if (in_progress_) {
    again_ = true;
    return;
  }
  in_progress_ = true;
  do {
    again_ = false;
    step();
  } while (again_);
  in_progress_ = false;
}

void TlsStream::step() {
  want_read_ = false;
  if (!closed_) {
    if (hs_started_ && !hs_done_ && !hs_error_) drive_handshake();
    if (hs_done_) {
      drive_read();
      drive_write();
    }
  }
  flush();
  if (!closed_) maybe_read_transport();
}

void TlsStream::drive_handshake() {
  const int r = SSL_do_handshake(ssl_.get());
  if (r == 1) {
    const uint8_t* proto = nullptr;
    unsigned proto_len = 0;
    SSL_get0_alpn_selected(ssl_.get(), &proto, &proto_len);
    if (proto_len != 2 || proto[0] != 'h' || proto[1] != '2') {
      failure_ = TlsFailure::alpn;
      return fail_handshake(Error(Errc::handshake_failed, "alpn: the peer did not agree to h2"));
    }
    const int nid = SSL_CIPHER_get_cipher_nid(SSL_get_current_cipher(ssl_.get()));
    if (nid != NID_aes_128_gcm && nid != NID_aes_256_gcm) {
      failure_ = TlsFailure::cipher;
      return fail_handshake(Error(Errc::handshake_failed, "cipher: negotiated " + cipher() + ", not AES-GCM"));
    }
    ZT_ASSERT(!hs_done_ && !hs_error_);  // the handshake completes once
    hs_done_ = true;
    if (ctx_->config().on_handshake) report_handshake();
    if (ctx_->config().role == TlsRole::client) {
      // The client's last flight (Certificate, CertificateVerify, Finished)
      // waits for the first write, which the handshake callback usually
      // makes at once (the HTTP/2 preface, SETTINGS and first CONNECT), so
      // both go in one transport write: one send and one wakeup of the
      // server instead of two or three. If nothing is written by the turn
      // after the callback, the flight goes alone.
      tx_hold_ = true;
      env_.loop.post([this, alive = alive_, cb = take(hs_cb_)]() mutable {
        if (!*alive) return;
        if (cb) cb(Result<void>());
        if (!*alive || !tx_hold_) return;
        env_.loop.post([this, alive] {
          if (*alive) release_tx_hold();
        });
      });
      return;
    }
    deliver(take(hs_cb_), Result<void>());
    return;
  }
  if (SSL_get_error(ssl_.get(), r) == SSL_ERROR_WANT_READ) {
    if (transport_error_ || transport_eof_) {
      failure_ = TlsFailure::closed;
      return fail_handshake(transport_error_ ? *transport_error_
                                             : Error(Errc::connection_reset, "closed: transport ended mid-handshake"));
    }
    want_read_ = true;
    return;
  }
  fail_handshake(classify_ssl_error(r, "handshake"));
}

void TlsStream::fail_handshake(Error e) {
  ZT_ASSERT(!hs_done_);  // a completed handshake cannot fail afterwards
  if (failure_ == TlsFailure::none) failure_ = TlsFailure::other;
  hs_error_ = e;
  // A peer that rejected us saw our certificate: that counts as presented.
  if (failure_ == TlsFailure::peer_rejected && ctx_->config().on_handshake) {
    verified_validity_.reset();
    report_handshake();
  }
  deliver(take(hs_cb_), Result<void>(std::move(e)));
}

void TlsStream::drive_read() {
  if (!rd_cb_) return;
  // SSL_read returns one record at most: keep reading while records are
  // already here and the caller's buffer has room, then complete once.
  size_t got = 0;
  int r = 0;
  while (got < rd_buf_.size()) {
    r = SSL_read(ssl_.get(), rd_buf_.data() + got, int(std::min<size_t>(rd_buf_.size() - got, INT_MAX)));
    if (r <= 0) break;
    got += size_t(r);
  }
  if (got > 0) {
    ERR_clear_error();  // a stop after data (want-read, close_notify, an error) is seen again on the next read
    return deliver(take(rd_cb_), Result<size_t>(got));
  }
  const int err = SSL_get_error(ssl_.get(), r);
  if (err == SSL_ERROR_ZERO_RETURN) return deliver(take(rd_cb_), Result<size_t>(size_t{0}));  // close_notify
  if (err == SSL_ERROR_WANT_READ) {
    if (transport_error_) return deliver(take(rd_cb_), Result<size_t>(*transport_error_));
    if (transport_eof_)
      return deliver(take(rd_cb_),
                     Result<size_t>(Error(Errc::connection_reset, "transport closed without TLS close_notify")));
    want_read_ = true;
    return;
  }
  deliver(take(rd_cb_), Result<size_t>(classify_ssl_error(r, "read")));
}

void TlsStream::drive_write() {
  if (!wr_cb_ || wr_taken_ > 0) return;
  if (transport_error_) return deliver(take(wr_cb_), Result<size_t>(*transport_error_));
  // SSL_write cuts this into records of at most 16 KiB itself.
  ZT_ASSERT(hs_done_ && !hs_error_);
  const int n = int(std::min(wr_buf_.size(), wr_limit_));
  const int r = SSL_write(ssl_.get(), wr_buf_.data(), n);
  if (r > 0) {
    wr_taken_ = size_t(r);  // completes once its ciphertext is handed to the transport
    return;
  }
  if (SSL_get_error(ssl_.get(), r) == SSL_ERROR_WANT_READ) {
    want_read_ = true;
    return;
  }
  deliver(take(wr_cb_), Result<size_t>(classify_ssl_error(r, "write")));
}

void TlsStream::release_tx_hold() {
  if (!tx_hold_) return;
  tx_hold_ = false;
  progress();
}

void TlsStream::flush() {
  if (transport_writing_) return;
  if (tx_hold_ && !closed_ && !transport_error_) return;  // see drive_handshake
  if (transport_error_) {
    tx_.clear();
    tx_sent_ = 0;
    tx_next_.clear();
    if (wr_cb_) deliver(take(wr_cb_), Result<size_t>(*transport_error_));
    wr_taken_ = 0;
    return;
  }
  if (tx_sent_ == tx_.size()) {
    // The last write is with the transport: what SSL wrote since goes next.
    recycle(tx_, tx_small_batches_, kTransportWriteKeep);
    tx_sent_ = 0;
    std::swap(tx_, tx_next_);
  }
  if (tx_.empty()) {
    // Everything so far is with the transport.
    if (wr_taken_ > 0 && wr_cb_) deliver(take(wr_cb_), Result<size_t>(std::exchange(wr_taken_, 0)));
    if (fin_pending_ && !closed_) {
      fin_pending_ = false;
      (void)transport_->shutdown_write();
    }
    if (closed_) transport_->close();
    return;
  }
  transport_writing_ = true;
  transport_->write(ConstBytes(tx_).subspan(tx_sent_), [this](Result<size_t> n) {
    transport_writing_ = false;
    if (n) {
      tx_sent_ += *n;
    } else {
      transport_error_ = n.error();
    }
    progress();
  });
}

void TlsStream::maybe_read_transport() {
  // SSL wants more only once it took everything read so far (bio_read), so
  // the buffer is free again.
  if (!want_read_ || transport_reading_ || transport_eof_ || transport_error_ || rx_off_ < rx_len_) return;
  transport_reading_ = true;
  transport_->read(rx_.next(), [this](Result<size_t> n) {
    transport_reading_ = false;
    if (!n) {
      transport_error_ = n.error();
    } else if (*n == 0) {
      transport_eof_ = true;
    } else {
      rx_off_ = 0;
      rx_len_ = *n;
      rx_.note_read(*n);
    }
    progress();
  });
}

// --- verification and errors ----------------------------------------------------

void TlsStream::report_handshake() {
  const TlsConfig& cfg = ctx_->config();
  HandshakeRecord r;
  r.role = cfg.role;
  if (creds_ && !creds_->chain.empty()) {
    r.presented = true;
    // A server's certificate leaves in its first flight; a client's in its
    // last (a rejected one: before the peer's alert came back).
    r.presented_at = cfg.role == TlsRole::server ? hs_started_wall_ : env_.clock.wall_now();
    r.presented_from = creds_->chain.front().not_before();
    r.presented_until = creds_->chain.front().not_after();
  }
  if (verified_validity_) {
    r.accepted = true;
    r.accepted_at = verified_at_;
    r.accepted_from = verified_validity_->first;
    r.accepted_until = verified_validity_->second;
  }
  r.peer = peer_identity_;
  cfg.on_handshake(r);
}

int TlsStream::verify_peer(uint8_t* out_alert) {
  const TlsConfig& cfg = ctx_->config();
  // DER buffers (TLS_with_buffers_method): nothing is parsed unless the
  // chain has to be verified.
  const STACK_OF(CRYPTO_BUFFER)* bufs = SSL_get0_peer_certificates(ssl_.get());
  if (!bufs || sk_CRYPTO_BUFFER_num(bufs) == 0) {
    failure_ = cfg.role == TlsRole::server ? TlsFailure::no_client_cert : TlsFailure::untrusted;
    *out_alert = SSL_AD_CERTIFICATE_REQUIRED;
    return 0;
  }
  const WallTime now = env_.clock.wall_now();
  if (cfg.role == TlsRole::client && !cfg.expected_server_name.empty()) return verify_server_name(bufs, now, out_alert);
  // The same peer chain as one verified before, still inside its validity:
  // its signatures need no second check (TlsContext::verified_chain).
  std::string chain_der;
  for (size_t i = 0; i < sk_CRYPTO_BUFFER_num(bufs); ++i) {
    const CRYPTO_BUFFER* b = sk_CRYPTO_BUFFER_value(bufs, i);
    const size_t len = CRYPTO_BUFFER_len(b);
    chain_der.append(reinterpret_cast<const char*>(&len), sizeof(len));  // no two chains concatenate alike
    chain_der.append(reinterpret_cast<const char*>(CRYPTO_BUFFER_data(b)), len);
  }
  if (const VerifiedChain* known = ctx_->verified_chain(chain_der, now)) {
    if (cfg.on_handshake) {
      verified_at_ = now;
      verified_validity_.emplace(known->valid_from, known->valid_until);
    }
    return accept_identity(known->identity, out_alert);
  }
  bssl::UniquePtr<STACK_OF(X509)> chain(sk_X509_new_null());
  for (size_t i = 0; chain && i < sk_CRYPTO_BUFFER_num(bufs); ++i) {
    bssl::UniquePtr<X509> x(X509_parse_from_buffer(sk_CRYPTO_BUFFER_value(bufs, i)));
    if (!x || !bssl::PushToStack(chain.get(), std::move(x))) {
      failure_ = TlsFailure::bad_certificate;
      verify_detail_ = "a peer certificate does not parse";
      *out_alert = SSL_AD_BAD_CERTIFICATE;
      return 0;
    }
  }
  if (!chain) {
    failure_ = TlsFailure::other;
    *out_alert = SSL_AD_INTERNAL_ERROR;
    return 0;
  }
  X509* leaf = sk_X509_value(chain.get(), 0);
  bssl::UniquePtr<X509_STORE_CTX> sctx(X509_STORE_CTX_new());
  if (!sctx || !X509_STORE_CTX_init(sctx.get(), ctx_->roots(), leaf, chain.get())) {
    failure_ = TlsFailure::other;
    *out_alert = SSL_AD_INTERNAL_ERROR;
    return 0;
  }
  // Validity against our clock (simulated wall time in the simulator).
  X509_STORE_CTX_set_time(sctx.get(), 0, time_t(to_unix_seconds(now)));
  if (X509_verify_cert(sctx.get()) != 1) return refuse_chain(X509_STORE_CTX_get_error(sctx.get()), out_alert);
  auto id = Certificate(bssl::UpRef(leaf)).identity();
  if (!id) {
    failure_ = TlsFailure::bad_certificate;
    verify_detail_ = id.error().message();
    *out_alert = SSL_AD_BAD_CERTIFICATE;
    return 0;
  }
  VerifiedChain verified{*id, WallTime::min(), WallTime::max()};
  STACK_OF(X509)* path = X509_STORE_CTX_get0_chain(sctx.get());
  for (size_t i = 0; path && i < sk_X509_num(path); ++i) {
    const Certificate c(bssl::UpRef(sk_X509_value(path, i)));
    verified.valid_from = std::max(verified.valid_from, c.not_before());
    verified.valid_until = std::min(verified.valid_until, c.not_after());
  }
  if (cfg.on_handshake) {
    verified_at_ = now;
    verified_validity_.emplace(verified.valid_from, verified.valid_until);
  }
  ctx_->remember_verified_chain(std::move(chain_der), std::move(verified));
  return accept_identity(*id, out_alert);
}

// Why a chain did not verify, for the failure class, the log and the alert.
int TlsStream::refuse_chain(int x509_error, uint8_t* out_alert) {
  failure_ = x509_error == X509_V_ERR_CERT_HAS_EXPIRED       ? TlsFailure::expired
             : x509_error == X509_V_ERR_CERT_NOT_YET_VALID ? TlsFailure::not_yet_valid
                                                           : TlsFailure::untrusted;
  verify_detail_ = X509_verify_cert_error_string(x509_error);
  *out_alert = x509_error == X509_V_ERR_CERT_HAS_EXPIRED ? SSL_AD_CERTIFICATE_EXPIRED : SSL_AD_UNKNOWN_CA;
  return 0;
}

// A server known by DNS name (istiod): the chain against the roots at our
// wall time, then the name against its DNS SANs. Not cached: a node makes
// one or two such connections, not one per workload connection.
int TlsStream::verify_server_name(const STACK_OF(CRYPTO_BUFFER) * bufs, WallTime now, uint8_t* out_alert) {
  const TlsConfig& cfg = ctx_->config();
  std::vector<Certificate> chain;
  for (size_t i = 0; i < sk_CRYPTO_BUFFER_num(bufs); ++i) {
    const CRYPTO_BUFFER* b = sk_CRYPTO_BUFFER_value(bufs, i);
    auto c = Certificate::from_der(std::span(CRYPTO_BUFFER_data(b), CRYPTO_BUFFER_len(b)));
    if (!c) {
      failure_ = TlsFailure::bad_certificate;
      verify_detail_ = "a server certificate does not parse";
      *out_alert = SSL_AD_BAD_CERTIFICATE;
      return 0;
    }
    chain.push_back(std::move(*c));
  }
  bssl::UniquePtr<X509_STORE_CTX> sctx(X509_STORE_CTX_new());
  bssl::UniquePtr<STACK_OF(X509)> rest(sk_X509_new_null());
  for (size_t i = 1; rest && i < chain.size(); ++i) bssl::PushToStack(rest.get(), bssl::UpRef(chain[i].get()));
  if (!sctx || !rest || !X509_STORE_CTX_init(sctx.get(), ctx_->roots(), chain[0].get(), rest.get())) {
    failure_ = TlsFailure::other;
    *out_alert = SSL_AD_INTERNAL_ERROR;
    return 0;
  }
  X509_STORE_CTX_set_time(sctx.get(), 0, time_t(to_unix_seconds(now)));
  if (X509_verify_cert(sctx.get()) != 1) return refuse_chain(X509_STORE_CTX_get_error(sctx.get()), out_alert);
  const std::string& name = cfg.expected_server_name;
  if (X509_check_host(chain[0].get(), name.data(), name.size(), 0, nullptr) != 1) {
    failure_ = TlsFailure::identity_mismatch;
    verify_detail_ = "the server's certificate is not for " + name;
    *out_alert = SSL_AD_BAD_CERTIFICATE;
    return 0;
  }
  return 1;
}

// The identity checks every connection makes, verified now or before.
int TlsStream::accept_identity(const Identity& id_ref, uint8_t* out_alert) {
  const TlsConfig& cfg = ctx_->config();
  const Identity* id = &id_ref;
  if (cfg.role == TlsRole::client && !expected_.empty() &&
      std::find(expected_.begin(), expected_.end(), *id) == expected_.end()) {
    failure_ = TlsFailure::identity_mismatch;
    verify_detail_ = "server is " + id->to_string() + ", not an expected identity";
    *out_alert = SSL_AD_BAD_CERTIFICATE;
    return 0;
  }
  if (cfg.role == TlsRole::server && id->trust_domain() != cfg.trust_domain) {
    failure_ = TlsFailure::trust_domain_mismatch;
    verify_detail_ = "client " + id->to_string() + " is not in trust domain " + cfg.trust_domain;
    *out_alert = SSL_AD_BAD_CERTIFICATE;
    return 0;
  }
  peer_identity_ = *id;
  return 1;
}

Error TlsStream::classify_ssl_error(int ret, const char* op) {
  const uint32_t code = ERR_peek_error();
  const int reason = ERR_GET_REASON(code);
  if (failure_ == TlsFailure::none) {
    if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
      failure_ = TlsFailure::no_client_cert;
    } else if (reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION ||
               reason == SSL_R_WRONG_VERSION_NUMBER) {
      failure_ = TlsFailure::protocol_version;
    } else if (reason == SSL_R_NO_APPLICATION_PROTOCOL || reason == SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL) {
      failure_ = TlsFailure::alpn;
    } else if (reason >= SSL_AD_REASON_OFFSET) {
      failure_ = TlsFailure::peer_rejected;  // a fatal alert from the peer
    } else {
      failure_ = TlsFailure::other;
    }
  }
  std::string detail = std::string(tls_failure_name(failure_)) + ": " + op;
  if (!verify_detail_.empty()) detail += ": " + verify_detail_;
  detail = last_ssl_error(detail.c_str());
  (void)ret;
  return Error(Errc::handshake_failed, std::move(detail));
}

}  // namespace zt::tls
