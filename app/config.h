// The ztunnel binary's configuration: what it reads from its environment and
// command line, checked and turned into typed values before anything starts.
//
// Environment variable names and defaults are upstream ztunnel's
// (src/config.rs), so a Kubernetes manifest written for upstream works here.
// Every setting that has a flag can be given either way; the flag wins.
//
//   EnvMap env = env_from_environ();            // built by main, not here
//   Result<Config> cfg = parse_config(env, args_without_argv0, cpu_cores);
//   if (!cfg) { fprintf(stderr, "%s\n", cfg.error().detail.c_str()); return 2; }
//   log_info(cfg->summary());
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "io/address.h"
#include "io/result.h"
#include "io/time.h"

namespace zt::app {

// Variable name -> value, as main() reads it from `environ`. The parser only
// ever looks here, so tests and main share one path and nothing reads getenv.
using EnvMap = std::map<std::string, std::string>;

enum class ProxyMode : uint8_t {
  shared,     // one ztunnel per node serving many pods (in-pod mode via INPOD_UDS)
  dedicated,  // ztunnel serves a single workload (PROXY_WORKLOAD_INFO)
};
std::string_view proxy_mode_name(ProxyMode mode);

// Where trust roots for the xDS or CA connection come from. Upstream decides
// file-or-inline by whether the path exists; we decide by content (an inline
// value holds a PEM header), so parsing stays free of filesystem access.
struct RootCert {
  enum class Kind : uint8_t {
    system,      // "SYSTEM": the operating system's trust store
    file,        // a path to a PEM file
    inline_pem,  // the PEM text itself
  };
  Kind kind = Kind::file;
  std::string value;  // path or PEM text; empty for system

  bool operator==(const RootCert&) const = default;
};

// The single workload a dedicated-mode ztunnel serves ("ns/name/sa").
struct WorkloadInfo {
  std::string namespace_name;
  std::string name;
  std::string service_account;

  bool operator==(const WorkloadInfo&) const = default;
};

// A listener's bind address. `localhost` binds 127.0.0.1 and, when IPv6 is
// enabled, [::1] as well, on endpoint.port (upstream's Address::Localhost).
struct ListenAddr {
  enum class Kind : uint8_t { localhost, socket };
  Kind kind = Kind::socket;
  Endpoint endpoint;

  static ListenAddr localhost(uint16_t port);
  static ListenAddr socket(Endpoint endpoint);
  uint16_t port() const { return endpoint.port; }
  std::string to_string() const;  // "localhost:15000", "[::]:15008"

  bool operator==(const ListenAddr&) const = default;
};

// Upstream defaults, named so tests and help text quote the same values.
namespace defaults {
inline constexpr std::string_view istiod_address_in_cluster = "https://istiod.istio-system.svc:15012";
inline constexpr std::string_view istiod_address_outside_cluster = "https://localhost:15012";
inline constexpr std::string_view root_cert_path = "./var/run/secrets/istio/root-cert.pem";
inline constexpr std::string_view auth_token_path = "./var/run/secrets/tokens/istio-token";
inline constexpr std::string_view cluster_id = "Kubernetes";
inline constexpr std::string_view cluster_domain = "cluster.local";
inline constexpr std::string_view trust_domain = "cluster.local";
inline constexpr std::string_view inpod_uds = "/var/run/ztunnel/ztunnel.sock";
inline constexpr Duration secret_ttl = std::chrono::hours(24);
inline constexpr Duration pool_unused_release_timeout = std::chrono::minutes(5);
inline constexpr Duration connection_termination_deadline = std::chrono::seconds(5);
inline constexpr uint16_t pool_max_streams_per_connection = 100;
inline constexpr uint32_t inpod_packet_mark = 1337;
inline constexpr uint16_t outbound_port = 15001;
inline constexpr uint16_t inbound_plaintext_port = 15006;
inline constexpr uint16_t inbound_port = 15008;
inline constexpr uint16_t dns_proxy_port = 15053;
inline constexpr uint16_t socks5_port = 15080;
inline constexpr uint16_t admin_port = 15000;
inline constexpr uint16_t stats_port = 15020;
inline constexpr uint16_t readiness_port = 15021;
inline constexpr uint32_t worker_threads_min = 2;
}  // namespace defaults

// Worker threads when ZTUNNEL_WORKER_THREADS is unset: a quarter of the
// cores, rounded up, and never fewer than two.
uint32_t default_worker_threads(uint32_t cpu_cores);

struct Config {
  // Control plane. xds_address empty: no xDS client (local mode);
  // ca_address empty: FAKE_CA issues certificates in-process.
  std::optional<std::string> xds_address;
  std::optional<std::string> ca_address;
  RootCert xds_root_cert;
  RootCert ca_root_cert;
  // AUTH_TOKEN: the token file (read on every connect: it rotates). Unset:
  // defaults::auth_token_path if present, else calls carry no token.
  std::optional<std::string> auth_token;
  // ALT_XDS_HOSTNAME / ALT_CA_HOSTNAME: the name istiod's certificate must
  // carry when it is not the address's host (an IP, a tunnel).
  std::optional<std::string> alt_xds_hostname;
  std::optional<std::string> alt_ca_hostname;
  // ISTIO_META_*: node metadata sent to istiod, prefix stripped.
  std::map<std::string, std::string> proxy_metadata;
  bool fake_ca = false;
  // --fake-ca-dir: where the fake CA's root lives, shared between processes.
  std::optional<std::string> fake_ca_dir;
  std::optional<std::string> local_xds_path;  // LOCAL_XDS_PATH: YAML file of workloads
  std::optional<std::string> local_xds_yaml;  // LOCAL_XDS: the same YAML inline
  bool xds_on_demand = false;
  Duration secret_ttl = defaults::secret_ttl;

  // Who and where we are.
  std::string cluster_id{defaults::cluster_id};
  std::string cluster_domain{defaults::cluster_domain};
  std::string trust_domain{defaults::trust_domain};
  std::string network;  // empty: the default network
  std::optional<std::string> node_name;
  std::optional<std::string> pod_name;
  std::optional<std::string> pod_namespace;
  std::optional<std::string> service_account;
  std::optional<IpAddr> instance_ip;
  ProxyMode proxy_mode = ProxyMode::shared;
  std::optional<WorkloadInfo> proxy_workload_info;  // set iff dedicated

  // Runtime.
  uint32_t worker_threads = defaults::worker_threads_min;
  uint16_t pool_max_streams_per_connection = defaults::pool_max_streams_per_connection;
  Duration pool_unused_release_timeout = defaults::pool_unused_release_timeout;
  Duration connection_termination_deadline = defaults::connection_termination_deadline;
  // In-pod mode (INPOD_ENABLED): pods are enrolled by the CNI node agent
  // over INPOD_UDS and proxied inside their own network namespaces; the
  // node-level pod-facing listeners are not opened.
  bool inpod_enabled = false;
  // ENABLE_ORIG_SRC: a pod's app sees its clients' addresses (IP_TRANSPARENT).
  // Unset: when ztunnel may (CAP_NET_ADMIN), as upstream's best effort.
  std::optional<bool> enable_orig_src;
  std::string inpod_uds{defaults::inpod_uds};
  std::optional<uint32_t> packet_mark;  // defaults to 1337 in shared mode
  bool tls12_enabled = false;
  bool ipv6_enabled = true;

  // Listeners. The in-pod ones (outbound, inbound*, dns, socks5) are bound
  // inside each pod's network namespace; admin, stats, readiness in ours.
  bool proxy_enabled = true;      // ENABLE_PROXY: the HBONE/capture listeners
  bool dns_proxy_enabled = true;  // ISTIO_META_DNS_CAPTURE
  ListenAddr outbound_addr;
  ListenAddr inbound_plaintext_addr;
  ListenAddr inbound_addr;
  ListenAddr dns_proxy_addr;
  std::optional<ListenAddr> socks5_addr;  // only with UNSTABLE_ENABLE_SOCKS5=true
  ListenAddr admin_addr;
  ListenAddr stats_addr;
  ListenAddr readiness_addr;
  // --listen-on-workload-ips: the pod-facing listeners (outbound, inbound,
  // inbound plaintext, SOCKS5) bind their port on each IP of this node's
  // workloads (node == node_name) rather than on their address above.
  bool listen_on_workload_ips = false;

  // Settings that were given but have no effect yet (the feature that uses
  // them is not built): "NAME: why", for a warning at start.
  std::vector<std::string> not_supported_yet;

  // Workloads come from a local file and no xDS server is used.
  bool local_mode() const;
  // One line for the start-up log: mode, config source, identity, listeners.
  std::string summary() const;
};

// Parses `env` and `args` (the command line without argv[0]) into a Config.
// `cpu_cores` is the machine's logical core count, used for the worker
// thread default and percentages. Errors are Errc::invalid_argument with a
// detail naming the variable or flag and the bad value. Never throws.
Result<Config> parse_config(const EnvMap& env, const std::vector<std::string>& args,
                            uint32_t cpu_cores);

// True when `args` asks for --help / -h; main then prints help_text().
bool help_requested(const std::vector<std::string>& args);

// Settings parsed (so upstream's manifests start) but with no effect until
// the feature that uses them exists, and why: reported at start, and marked
// in --help.
struct PendingSetting {
  std::string_view key;
  std::string_view needs;  // "the xDS client", "in-pod mode", ...
};
std::span<const PendingSetting> pending_settings();

// The --help text: every flag, the environment variable it stands for, and
// its default.
std::string help_text(std::string_view program_name = "ztunnel");

}  // namespace zt::app
