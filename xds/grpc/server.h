// A minimal gRPC server on our HTTP/2 and TLS: what the simulated istiod
// (its xDS and CA services) runs on, in the simulator. Unary and streaming
// both ways; a handler per method path.
//
//   Server server(env, std::move(listener), tls_ctx_or_null);
//   server.handle("/istio.v1.auth.IstioCertificateService/CreateCertificate",
//                 [this](ServerCall& call) { return sign(call); });
//   server.start();
//
//   Task<void> sign(ServerCall& call) {
//     auto req = co_await call.receive();
//     if (!req) co_return call.finish({Code::invalid_argument, "no request"});
//     co_await call.send(answer(*req));
//     call.finish({});
//   }
//
// A handler that returns without finish() ends its call with INTERNAL. An
// unknown method is answered UNIMPLEMENTED, anything not gRPC (not POST,
// not application/grpc) with HTTP 405 or 415 as gRPC servers do.
#pragma once

#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "h2/connection.h"
#include "io/acceptor.h"
#include "io/env.h"
#include "io/task.h"
#include "tls/context.h"
#include "xds/grpc/codec.h"

namespace zt::xds::grpc {

class ServerCall {
 public:
  ServerCall(Env& env, std::string path, h2::Headers metadata, StreamPtr stream,
             std::shared_ptr<h2::Headers> trailers, size_t message_bytes_max);
  ~ServerCall();

  Env& env() { return env_; }  // the server's: for a handler's timers
  const std::string& path() const { return path_; }
  const h2::Headers& metadata() const { return metadata_; }
  std::optional<std::string_view> header(std::string_view name) const;
  // The next message; nullopt when the client half-closed or the call died.
  Task<std::optional<std::string>> receive();
  // False when the call is gone.
  Task<bool> send(std::string message);
  // Ends the call with `status` (trailers). No send may be in flight.
  void finish(Status status);
  bool finished() const { return finished_; }
  // The client went away (reset, or the connection died).
  bool broken() const { return broken_; }
  // After finish(): reads and drops what the client still sends, until its
  // END_STREAM or the bounds, so closing the stream does not reset it (a
  // reset would drop the trailers queued behind it).
  Task<void> drain_input(size_t bytes_max, Duration time_max);

 private:
  Env& env_;
  std::string path_;
  h2::Headers metadata_;
  StreamPtr stream_;
  std::shared_ptr<h2::Headers> trailers_;
  MessageReader reader_;
  std::vector<uint8_t> rx_;  // one read's bytes, kept for the call
  bool finished_ = false, broken_ = false, client_done_ = false;
};

using Handler = std::function<Task<void>(ServerCall& call)>;

struct ServerCounters {
  uint64_t connections = 0, handshake_failures = 0, calls = 0, unimplemented = 0, not_grpc = 0;
};

class Server {
 public:
  // What a finished call still reads from its client before it closes.
  static constexpr size_t kDrainBytesMax = 1 << 20;
  static constexpr Duration kDrainTimeMax = std::chrono::seconds(10);

  // `tls` null: plaintext HTTP/2.
  Server(Env& env, std::unique_ptr<Listener> listener, std::shared_ptr<const tls::TlsContext> tls,
         h2::Settings settings = h2::Settings::server(), size_t message_bytes_max = kMessageBytesMax);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void handle(std::string path, Handler handler);
  void start();
  // Stops accepting; GOAWAY on every connection (calls in flight go on).
  void drain();
  Endpoint local() const { return acceptor_.local(); }
  const ServerCounters& counters() const { return counters_; }
  size_t calls_running() const { return calls_running_; }

 private:
  Task<void> serve(StreamPtr stream);
  void on_request(std::unique_ptr<h2::Connection::Incoming> in);
  Task<void> run_call(std::unique_ptr<ServerCall> call, const Handler* handler);

  Env& env_;
  std::shared_ptr<const tls::TlsContext> tls_;
  h2::Settings settings_;
  size_t message_bytes_max_;
  std::map<std::string, Handler, std::less<>> handlers_;
  ServerCounters counters_;
  size_t calls_running_ = 0;
  std::list<std::unique_ptr<h2::Connection>> conns_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  Scope calls_;        // before the acceptor: calls go first, then the connections' tasks
  Acceptor acceptor_;  // last: its tasks go first
};

}  // namespace zt::xds::grpc
