// A gRPC call from the client side, on one stream of an HTTP/2 connection
// (h2/): unary or streaming both ways. It runs wherever h2 runs, the
// simulator included (the gRPC C++ library cannot: own threads, own clock).
//
//   ClientCall call(env, conn, "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources",
//                   {.authority = "istiod.istio-system.svc:15012", .metadata = {{"authorization", "Bearer ..."}}});
//   co_await call.send(request.SerializeAsString());
//   while (auto m = co_await call.receive()) handle(*m);
//   Status st = call.status();    // why it ended (OK, UNAVAILABLE, ...)
//
// The request goes out at once (HEADERS, then DATA as messages are sent:
// the client may speak first on a stream whose server answers only later).
// Every way a call can end is a Status, as gRPC reports it: the server's
// grpc-status (trailers, or a trailers-only answer), an HTTP answer mapped
// as gRPC maps it, UNAVAILABLE when the connection or stream fails,
// DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED for a message over the limit,
// CANCELLED when the client cancels.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "h2/connection.h"
#include "io/env.h"
#include "io/task.h"
#include "xds/grpc/codec.h"

namespace zt::xds::grpc {

struct CallOptions {
  std::string authority;         // :authority, the server's name (host:port)
  std::string scheme = "https";  // "http" on a plaintext connection
  h2::Headers metadata;          // authorization, clusterid, ...
  std::optional<Duration> deadline;  // the whole call; sent as grpc-timeout
  size_t message_bytes_max = kMessageBytesMax;
};

class ClientCall {
 public:
  ClientCall(Env& env, h2::Connection& conn, std::string path, CallOptions options);
  ~ClientCall();  // cancels a call still running
  ClientCall(const ClientCall&) = delete;
  ClientCall& operator=(const ClientCall&) = delete;

  // One message. False when the call is over or its stream failed (the
  // status comes from receive()). One send at a time.
  Task<bool> send(std::string message);
  // No more messages from us (END_STREAM); the server may go on sending.
  void close_send();
  // The next message, or nullopt once the call is over; then status().
  // One receive at a time (concurrently with a send).
  Task<std::optional<std::string>> receive();
  // Why the call ended; meaningful once receive() returned nullopt.
  const Status& status() const;
  bool finished() const;
  // Ends the call now (RST_STREAM): receive() returns nullopt with `why`.
  void cancel(Status why = {Code::cancelled, "cancelled by the client"});

 private:
  struct State;
  Task<void> await_answer();
  void finish(Status status);
  Status status_at_end();

  Env& env_;
  std::shared_ptr<State> st_;
};

// A unary call: one request, one response, and how it ended.
struct UnaryResult {
  Status status;
  std::string response;  // set when status is OK
};
Task<UnaryResult> unary(Env& env, h2::Connection& conn, std::string path, std::string request, CallOptions options);

}  // namespace zt::xds::grpc
