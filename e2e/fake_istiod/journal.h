// What the fake istiod saw and did, for GET /status and for tests: streams,
// ACKs, NACKs, certificates signed, the last node and cluster id; plus the
// per-call gate every RPC passes (bearer token, clusterid) and the log.
//
//   Journal journal;
//   grpc::Status gate = admit_call(*ctx, token, journal);   // records clusterid
//   if (!gate.ok()) ...;                                      // UNAUTHENTICATED
//   journal.nack(type_url, nonce, detail);
//   std::string body = journal.status_json(ca_up);
//   log_line("ads: stream 3 opened by ", node_id);
//
// Thread-safe: gRPC callbacks, the file watcher and the admin thread all
// write here.
#pragma once

#include <cstdint>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

namespace zt::e2e::fake_istiod {

// One line on stderr per event, never interleaved, with the UTC time of day
// to line it up with the client's log.
std::mutex& log_mutex();
std::string log_time();  // "19:05:15.042"
template <class... Parts>
void log_line(const Parts&... parts) {
  std::ostringstream line;
  line << log_time() << " fake-istiod: ";
  (line << ... << parts);
  line << '\n';
  std::lock_guard lock(log_mutex());
  std::cerr << line.str() << std::flush;
}

struct Nack {
  std::string type_url;
  std::string nonce;
  std::string detail;
};

class Journal {
 public:
  void stream_opened();
  void stream_closed();
  void ack();
  void nack(Nack nack);
  void certificate_signed();
  void node(const std::string& id, const std::string& metadata_json);
  void clusterid(const std::string& id);

  // {"streams_open":n,"streams_opened":n,"acks":n,"nacks":[{"type_url",
  //  "nonce","detail"}],"certificates_signed":n,"last_node_id":"...",
  //  "last_node_metadata":{...},"last_clusterid":"...","ca_up":bool}
  std::string status_json(bool ca_up) const;

 private:
  mutable std::mutex mu_;
  uint64_t streams_open_ = 0;
  uint64_t streams_opened_ = 0;
  uint64_t acks_ = 0;
  std::vector<Nack> nacks_;
  uint64_t certificates_signed_ = 0;
  std::string last_node_id_;
  std::string last_node_metadata_json_ = "{}";
  std::string last_clusterid_;
};

// Every call's gate: records its `clusterid` metadata, then, when `token` is
// set, refuses it UNAUTHENTICATED unless it carries `authorization: Bearer
// <token>`.
grpc::Status admit_call(const grpc::ServerContextBase& ctx, const std::string& token, Journal& journal);

}  // namespace zt::e2e::fake_istiod
