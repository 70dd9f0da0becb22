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

Task<Result<Endpoint>> Channel::destination() {
  if (config_.host.empty()) co_return config_.address;
  Result<std::vector<IpAddr>> ips = co_await io::resolve(env_, config_.host);
  if (!ips) co_return Error(ips.code(), "resolving " + config_.host + ": " + ips.error().message());
  co_return Endpoint{(*ips)[(connects_ - 1) % ips->size()], config_.address.port};
}

Task<void> Channel::connect() {
  ++connects_;
  if (conn_ && !conn_->dead()) retiring_.push_back(std::move(conn_));
  conn_.reset();
  const MonoTime deadline = env_.clock.now() + config_.connect_timeout;
  Result<Endpoint> to = co_await destination();
  Result<StreamPtr> tcp = Error(Errc::name_not_found);
  if (to) {
    tcp = co_await io::connect(env_, *to, config_.socket, config_.connect_timeout);
  }
  StreamPtr transport;
  if (!to) {
    last_error_ = to.error();
  } else if (!tcp) {
    last_error_ = tcp.error();  // its detail names the address
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
                          "TLS with " + to->to_string() + ": " +
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
