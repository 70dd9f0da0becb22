#include "xds/grpc/channel.h"

#include "io/async.h"
#include "tls/stream.h"

namespace zt::xds::grpc {

Channel::Channel(Env& env, ChannelConfig config) : env_(env), config_(std::move(config)) {}

Channel::~Channel() { scope_.clear(); }

void Channel::reset() {
  conn_.reset();
  retiring_.clear();
}

Task<Result<h2::Connection*>> Channel::connection() {
  std::erase_if(retiring_, [](const auto& c) { return c->dead() || c->active_streams() == 0; });
  if (conn_ && !conn_->dead() && conn_->accepting_streams()) co_return conn_.get();
  if (conn_ && !conn_->dead()) retiring_.push_back(std::move(conn_));
  if (!connecting_) {
    connecting_ = std::make_shared<Event>(env_.loop);
    scope_.spawn(connect());
  }
  std::shared_ptr<Event> done = connecting_;
  co_await done->wait();
  if (conn_ && !conn_->dead()) co_return conn_.get();
  co_return last_error_.value_or(Error(Errc::not_connected, "no connection"));
}

Task<void> Channel::connect() {
  ++connects_;
  if (conn_ && !conn_->dead()) retiring_.push_back(std::move(conn_));
  conn_.reset();
  const MonoTime deadline = env_.clock.now() + config_.connect_timeout;
  auto tcp = co_await io::connect(env_, config_.address, config_.socket, config_.connect_timeout);
  StreamPtr transport;
  if (!tcp) {
    last_error_ = Error(tcp.code(), "connecting to " + config_.address.to_string() + ": " + tcp.error().message());
  } else if (!config_.tls) {
    transport = std::move(*tcp);
  } else {
    auto tls = std::make_unique<tls::TlsStream>(env_, config_.tls, std::move(*tcp));
    tls::TlsStream* raw = tls.get();
    io::ScopedTimer timer(env_.loop, std::max(Duration(0), deadline - env_.clock.now()), [raw] { raw->abort(); });
    Result<void> hs = co_await tls::handshake(*tls);
    timer.cancel();
    if (hs) {
      transport = std::move(tls);
    } else {
      last_error_ = Error(hs.code() == Errc::cancelled ? Errc::timed_out : hs.code(),
                          "TLS with " + config_.address.to_string() + ": " +
                              std::string(tls::tls_failure_name(raw->failure())) + ": " + hs.error().detail);
    }
  }
  if (transport) {
    conn_ = std::make_unique<h2::Connection>(env_, std::move(transport), h2::Role::client, config_.settings);
    conn_->start();
    last_error_.reset();
  }
  std::shared_ptr<Event> done = std::move(connecting_);
  done->set();
}

}  // namespace zt::xds::grpc
