// The fake istiod's command line.
//
//   fake-istiod --listen 127.0.0.1:0 --port-file /tmp/t/port --state-dir /tmp/t
//               --mesh /tmp/t/mesh.yaml --admin-listen 127.0.0.1:0 --admin-port-file /tmp/t/admin-port
//               [--token T] [--max-cert-lifetime 24h] [--root-lifetime 87600h] [--min-ping-interval 15s]
//
//   auto parsed = parse_options(argc, argv);
//   if (auto* error = std::get_if<std::string>(&parsed)) { std::cerr << *error << usage(); return 2; }
#pragma once

#include <chrono>
#include <string>
#include <variant>

namespace zt::e2e::fake_istiod {

struct Options {
  std::string listen;           // gRPC (TLS), "ip:port"
  std::string port_file;        // gets the bound gRPC port
  std::string state_dir;        // gets root-cert.pem
  std::string mesh;             // local-config YAML, watched
  std::string admin_listen;     // plain HTTP admin, "ip:port"
  std::string admin_port_file;  // gets the bound admin port, written last
  std::string token;            // empty: no bearer token required
  std::chrono::seconds max_cert_lifetime = std::chrono::hours(24);
  std::chrono::seconds root_lifetime = std::chrono::hours(24 * 365 * 10);
  // istiod's keepalive enforcement (MinTime 15 s, pings allowed without
  // calls): a client pinging more often is told "too_many_pings" (GOAWAY).
  std::chrono::milliseconds min_ping_interval = std::chrono::seconds(15);
};

// An error names the flag at fault.
std::variant<Options, std::string> parse_options(int argc, char** argv);
std::string usage();

}  // namespace zt::e2e::fake_istiod
