// Access log: one structured record per proxied connection (outbound,
// inbound HBONE, inbound plaintext; SOCKS5 goes through outbound), emitted
// when the connection ends, and its one-line logfmt rendering, close to
// upstream ztunnel's "access" target.
//
//   log_access(env.log, record);
//   // 2026-12-04T15:04:47.123456Z  info  access  connection complete  src.addr=10.0.1.1:40000
//   //   src.workload="client" ... direction="outbound" bytes_sent=5 bytes_recv=5 duration="12ms"
//   OutboundConfig cfg;
//   cfg.access_log = [&](const ConnectionRecord& r) { records.push_back(r); };  // tests
//
// The record is filled where the metrics are reported (TrafficReport), so
// the access log and istio_tcp_* always describe the same connections.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "core/mesh/model.h"
#include "io/address.h"
#include "io/log.h"
#include "io/time.h"

namespace zt::core::proxy {

enum class Direction : uint8_t { outbound, inbound };
std::string_view to_string(Direction d);

struct ConnectionRecord {
  Direction direction = Direction::outbound;

  Endpoint src;                  // the client's address
  std::string src_workload;      // empty when the source is not a known workload
  std::string src_namespace;
  std::string src_identity;      // SPIFFE id; only when the connection was mutual TLS

  Endpoint dst;                  // where bytes went on the wire (a node's 15008 for HBONE)
  std::string hbone_addr;        // the CONNECT :authority, empty without HBONE
  std::string dst_service;       // the service hostname the client addressed, when known
  std::string dst_workload;
  std::string dst_namespace;
  std::string dst_identity;      // only when the connection was mutual TLS

  // Payload bytes from the source towards the destination, and back.
  uint64_t bytes_sent = 0;
  uint64_t bytes_recv = 0;
  Duration duration{};
  std::string error;             // empty: the connection completed
  std::string response_flags;    // "", "CONNECT" (upstream connect failed), "DENY" (policy), as upstream

  bool ok() const { return error.empty(); }
};

using AccessLogSink = std::function<void(const ConnectionRecord&)>;

// What is known when a connection starts: addresses, workload names from
// the mesh state (null: unknown), and, for mutual TLS only, the identities
// (the source's as verified, the destination's as the state names it).
ConnectionRecord start_record(Direction direction, Endpoint src, const mesh::Workload* source,
                              std::string source_identity, Endpoint dst, const mesh::Workload* destination,
                              bool mutual_tls);

// The log target of access records: RUST_LOG=access=off silences them.
inline constexpr std::string_view kAccessLogTarget = "access";
// info for a connection that completed, error for one that failed.
LogLevel access_log_level(const ConnectionRecord& r);
// Writes the record as upstream's access log event: target "access",
// message "connection complete", upstream's fields (see below).
void log_access(Log& log, const ConnectionRecord& r);
// The record's fields as logfmt, as log_access writes them: unknown ones are
// left out; strings are quoted and escaped, addresses and numbers are bare.
std::string format_access_log(const ConnectionRecord& r);

}  // namespace zt::core::proxy
