// The mesh as ztunnel sees it: workloads, services and their endpoints, in
// our own validated types (never raw protobuf). Built by validate.h from xDS
// and by local_config.h from YAML; read through StateSnapshot (snapshot.h).
//
//   Workload w = *validate_workload(proto);          // Result<Workload>
//   NetworkAddress key{w.network, w.ips.front()};    // "net/10.0.0.1"
//   std::string spiffe = w.identity().to_string();   // "spiffe://cluster.local/ns/x/sa/y"
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "io/address.h"
#include "io/result.h"

namespace zt::core::mesh {

// Upstream defaults applied when xDS leaves a field empty.
inline constexpr std::string_view default_trust_domain = "cluster.local";
inline constexpr std::string_view default_service_account = "default";
inline constexpr std::string_view default_cluster_id = "Kubernetes";

// An IP on a named network: the key of workload and service lookups.
struct NetworkAddress {
  std::string network;
  IpAddr ip;

  std::string to_string() const;  // "network/ip" (upstream's form)
  static Result<NetworkAddress> parse(std::string_view text);  // "network/ip" or "ip"
  auto operator<=>(const NetworkAddress&) const = default;
  bool operator==(const NetworkAddress&) const = default;
};

struct NetworkAddressHash {
  size_t operator()(const NetworkAddress& a) const;
};

// The primary key of a service: "namespace/hostname".
struct NamespacedHostname {
  std::string ns;
  std::string hostname;

  std::string to_string() const;
  static Result<NamespacedHostname> parse(std::string_view text);  // splits at the first '/'
  auto operator<=>(const NamespacedHostname&) const = default;
  bool operator==(const NamespacedHostname&) const = default;
};

// A SPIFFE identity, spiffe://<trust_domain>/ns/<ns>/sa/<sa>.
struct Identity {
  std::string trust_domain;
  std::string ns;
  std::string service_account;

  std::string to_string() const;
  static Result<Identity> parse(std::string_view uri);
  auto operator<=>(const Identity&) const = default;
  bool operator==(const Identity&) const = default;
};

// Where a waypoint or network gateway is: an address or a host name, and
// the port its HBONE listener uses.
struct GatewayAddress {
  std::variant<NetworkAddress, NamespacedHostname> destination;
  uint16_t hbone_mtls_port = 0;

  bool operator==(const GatewayAddress&) const = default;
};

enum class InboundProtocol : uint8_t { tcp, hbone };
enum class HealthStatus : uint8_t { healthy, unhealthy };
enum class NetworkMode : uint8_t { standard, host_network };

struct Locality {
  std::string region;
  std::string zone;
  std::string subzone;
  bool operator==(const Locality&) const = default;
};

struct ApplicationTunnel {
  enum class Protocol : uint8_t { none, proxy };
  Protocol protocol = Protocol::none;
  std::optional<uint16_t> port;  // 0 on the wire means unset
  bool operator==(const ApplicationTunnel&) const = default;
};

// Service port -> target port. A target of 0 means "not set here": the
// endpoint's own mapping, or the application tunnel, decides.
using PortMap = std::map<uint16_t, uint16_t>;

struct Workload {
  std::string uid;
  std::string name;
  std::string ns;
  std::string trust_domain{default_trust_domain};
  std::string service_account{default_service_account};
  std::string network;
  std::string hostname;
  std::string node;
  std::string cluster_id{default_cluster_id};
  std::string canonical_name;
  std::string canonical_revision;
  std::string workload_type = "deployment";  // upstream's lower-case enum name
  std::string workload_name;
  std::vector<IpAddr> ips;
  std::optional<GatewayAddress> waypoint;
  std::optional<GatewayAddress> network_gateway;
  InboundProtocol protocol = InboundProtocol::tcp;
  NetworkMode network_mode = NetworkMode::standard;
  bool native_tunnel = false;
  std::optional<ApplicationTunnel> application_tunnel;
  std::vector<std::string> authorization_policies;  // policy keys, "ns/name"
  HealthStatus status = HealthStatus::healthy;
  Locality locality;
  uint32_t capacity = 1;
  // Services this workload backs, with its own port mapping for each.
  std::map<NamespacedHostname, PortMap> services;

  Identity identity() const { return {trust_domain, ns, service_account}; }
  bool operator==(const Workload&) const = default;
};

enum class LbScope : uint8_t { region, zone, subzone, node, cluster, network };
enum class LbMode : uint8_t { standard, strict, failover, passthrough };
enum class HealthPolicy : uint8_t { only_healthy, allow_all };
enum class IpFamilies : uint8_t { automatic, ipv4_only, ipv6_only, dual };

struct LoadBalancer {
  std::vector<LbScope> routing_preference;
  LbMode mode = LbMode::standard;
  HealthPolicy health_policy = HealthPolicy::only_healthy;
  bool operator==(const LoadBalancer&) const = default;
};

struct Service {
  std::string name;
  std::string ns;
  std::string hostname;
  std::vector<NetworkAddress> vips;
  PortMap ports;
  std::vector<std::string> subject_alt_names;
  std::optional<GatewayAddress> waypoint;
  std::optional<LoadBalancer> load_balancer;
  IpFamilies ip_families = IpFamilies::automatic;
  bool canonical = false;
  bool ingress_use_waypoint = false;

  NamespacedHostname key() const { return {ns, hostname}; }
  bool operator==(const Service&) const = default;
};

// One workload behind one service, as the workload itself declared it.
// Endpoints exist only through their workload (an upsert rewrites them), so
// each carries its workload and load balancing needs no lookups.
struct ServiceEndpoint {
  std::string workload_uid;
  PortMap ports;
  HealthStatus status = HealthStatus::healthy;
  std::shared_ptr<const Workload> workload;
  bool operator==(const ServiceEndpoint&) const = default;
};

// Endpoints of one service by workload uid (ordered: choices are seeded and
// must not depend on hash order).
using EndpointSet = std::map<std::string, ServiceEndpoint>;

std::string_view to_string(InboundProtocol p);
std::string_view to_string(HealthStatus s);
std::string_view to_string(LbScope s);
std::string_view to_string(LbMode m);
std::string_view to_string(HealthPolicy p);
std::string_view to_string(IpFamilies f);
std::string to_string(const GatewayAddress& g);

}  // namespace zt::core::mesh
