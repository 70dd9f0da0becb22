#include "xds/grpc/server.h"

#include <array>

#include "io/assert.h"
#include "io/async.h"
#include "tls/stream.h"

namespace zt::xds::grpc {
namespace {

const h2::Headers kGrpcHeaders = {{"content-type", "application/grpc"}};

h2::Headers status_headers(const Status& s) {
  h2::Headers h{{"grpc-status", std::to_string(int(s.code))}};
  if (!s.message.empty()) h.emplace_back("grpc-message", encode_message(s.message));
  return h;
}

}  // namespace

// --- ServerCall ---------------------------------------------------------------

ServerCall::ServerCall(Env& env, std::string path, h2::Headers metadata, StreamPtr stream,
                       std::shared_ptr<h2::Headers> trailers, size_t message_bytes_max)
    : env_(env),
      path_(std::move(path)),
      metadata_(std::move(metadata)),
      stream_(std::move(stream)),
      trailers_(std::move(trailers)),
      reader_(message_bytes_max) {
  ZT_ASSERT(stream_ && trailers_);
}

ServerCall::~ServerCall() {
  if (!finished_) finish({Code::internal, "the handler ended without a status"});
  stream_->close();
}

std::optional<std::string_view> ServerCall::header(std::string_view name) const { return h2::find_header(metadata_, name); }

Task<std::optional<std::string>> ServerCall::receive() {
  if (rx_.empty()) rx_.resize(64 * 1024);
  MutableBytes buf(rx_);
  for (;;) {
    if (auto m = reader_.next()) co_return m;
    if (client_done_ || broken_) co_return std::nullopt;
    Result<size_t> n = co_await io::read(*stream_, buf);
    if (!n) {
      broken_ = true;
      co_return std::nullopt;
    }
    if (*n == 0) {
      client_done_ = true;
      continue;
    }
    if (Result<void> fed = reader_.feed(ConstBytes(buf.data(), *n)); !fed) {
      finish({Code::resource_exhausted, fed.error().detail});
      broken_ = true;
      co_return std::nullopt;
    }
  }
}

Task<bool> ServerCall::send(std::string message) {
  if (finished_ || broken_) co_return false;
  const std::string frame = frame_message(message);
  Result<void> w =
      co_await io::write_all(*stream_, ConstBytes(reinterpret_cast<const uint8_t*>(frame.data()), frame.size()));
  if (!w) broken_ = true;
  co_return w.ok();
}

Task<void> ServerCall::drain_input(size_t bytes_max, Duration time_max) {
  if (client_done_ || broken_) co_return;
  Stream* s = stream_.get();
  io::ScopedTimer stop(env_.loop, time_max, [s] { s->abort(); });
  std::vector<uint8_t> buf(16 * 1024);
  size_t dropped = 0;
  while (dropped <= bytes_max) {
    Result<size_t> n = co_await io::read(*stream_, buf);
    if (!n || *n == 0) break;
    dropped += *n;
  }
  client_done_ = true;
}

void ServerCall::finish(Status status) {
  if (finished_) return;
  finished_ = true;
  *trailers_ = status_headers(status);
  (void)stream_->shutdown_write();  // the trailers go with END_STREAM
}

// --- Server ---------------------------------------------------------------------

Server::Server(Env& env, std::unique_ptr<Listener> listener, std::shared_ptr<const tls::TlsContext> tls,
               h2::Settings settings, size_t message_bytes_max)
    : env_(env),
      tls_(std::move(tls)),
      settings_(settings),
      message_bytes_max_(message_bytes_max),
      acceptor_(env, std::move(listener), [this](StreamPtr s) { return serve(std::move(s)); }) {}

Server::~Server() {
  *alive_ = false;
  calls_.clear();
  acceptor_.tasks().clear();
  conns_.clear();
}

void Server::handle(std::string path, Handler handler) { handlers_[std::move(path)] = std::move(handler); }

void Server::start() { acceptor_.start(); }

void Server::drain() {
  acceptor_.drain();
  for (auto& c : conns_) c->goaway();
}

Task<void> Server::serve(StreamPtr stream) {
  StreamPtr transport = std::move(stream);
  if (tls_) {
    auto tls = std::make_unique<tls::TlsStream>(env_, tls_, std::move(transport));
    if (Result<void> hs = co_await tls::handshake(*tls); !hs) {
      ++counters_.handshake_failures;
      co_return;
    }
    transport = std::move(tls);
  }
  ++counters_.connections;
  auto conn = std::make_unique<h2::Connection>(env_, std::move(transport), h2::Role::server, settings_);
  conn->on_request([this](std::unique_ptr<h2::Connection::Incoming> in) { on_request(std::move(in)); });
  conns_.push_back(std::move(conn));
  auto it = std::prev(conns_.end());
  (*it)->on_closed([this, it](const Error&) {
    env_.loop.post([this, it, alive = alive_] {
      if (*alive) conns_.erase(it);
    });
  });
  (*it)->start();
}

void Server::on_request(std::unique_ptr<h2::Connection::Incoming> in) {
  h2::Request& req = in->request();
  const auto type = h2::find_header(req.headers, "content-type");
  if (req.method != "POST") {
    ++counters_.not_grpc;
    return in->reject(405);
  }
  if (!type || !type->starts_with("application/grpc")) {
    ++counters_.not_grpc;
    return in->reject(415);
  }
  auto handler = handlers_.find(req.path);
  if (handler == handlers_.end()) {
    ++counters_.unimplemented;
    h2::Headers h = kGrpcHeaders;
    for (auto& kv : status_headers({Code::unimplemented, "unknown method " + req.path})) h.push_back(std::move(kv));
    return in->reject(200, std::move(h));  // trailers-only
  }
  ++counters_.calls;
  auto trailers = std::make_shared<h2::Headers>();
  std::string path = std::move(req.path);
  h2::Headers metadata = std::move(req.headers);
  StreamPtr stream = in->accept(kGrpcHeaders, trailers);
  if (!stream) return;  // the client went away meanwhile
  auto call = std::make_unique<ServerCall>(env_, std::move(path), std::move(metadata), std::move(stream),
                                           std::move(trailers), message_bytes_max_);
  calls_.spawn(run_call(std::move(call), &handler->second));
}

Task<void> Server::run_call(std::unique_ptr<ServerCall> call, const Handler* handler) {
  ++calls_running_;
  co_await (*handler)(*call);
  if (!call->finished()) call->finish({Code::internal, "the handler ended without a status"});
  co_await call->drain_input(kDrainBytesMax, kDrainTimeMax);
  --calls_running_;
}

}  // namespace zt::xds::grpc
