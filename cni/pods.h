// The CNI stand-in's pods: what `zt-cni add-pod` records in the state
// directory (one file per pod, DIR/pods/NAME), the address plan, and names.
// The state directory is the agent's whole memory: it re-reads it for every
// snapshot, so a restarted agent sends ztunnel the same pods.
//
//   auto plan = plan_addresses("10.251.0.5/16", "");   // pod .5, gateway 10.251.0.1
//   PodRecord pod{.name = "sleep", ..., .ip = plan->pod_ip, ...};
//   write_pod(state_dir, pod);       // atomically (a temporary file, then rename)
//   for (auto& p : list_pods(state_dir)->pods) ...
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "io/result.h"

namespace zt::cni {

inline constexpr std::string_view kDefaultStateDir = "/var/run/zt-cni";
inline constexpr std::string_view kDefaultUds = "/var/run/ztunnel/ztunnel.sock";
inline constexpr std::string_view kNetnsDir = "/var/run/netns";  // where `ip netns add` puts them
inline constexpr size_t kPodNameBytesMax = 63;

struct PodRecord {
  std::string name;             // the pod's name, also its network namespace's name
  std::string ns;               // Kubernetes namespace
  std::string service_account;
  std::string uid;
  std::string ip;               // the pod's address (eth0 carries it as /32)
  int prefix_len = 0;           // the node's pod network, from --ip or --node-net
  std::string gateway;          // the node's address on every veth's host end
  std::string host_veth;        // the root namespace's end of the pod's veth
  bool dns = false;             // DNS captured to 15053

  bool operator==(const PodRecord&) const = default;
};

// Where the pod's network namespace is mounted (an fd of it goes to ztunnel).
std::string netns_path(const std::string& pod_name);
// The root namespace's veth end: "ztv" and 8 hex digits of the name's hash
// (interface names have at most 15 bytes; pod names may be longer).
std::string host_veth_name(const std::string& pod_name);
// Letters, digits, '.', '_' and '-', not starting with '.' or '-', at most
// kPodNameBytesMax: safe as a file name, a netns name and a log word.
Result<void> check_pod_name(std::string_view name, std::string_view what);
// A random RFC 4122 version 4 UUID, as Kubernetes gives pods.
std::string random_uid();

// IPv4 only. --ip A.B.C.D/len is the pod's address and, unless --node-net
// says otherwise, the node's pod network; the gateway (the host end of every
// veth) is the network's first address or --node-net's address.
struct AddressPlan {
  std::string pod_ip, gateway;
  int prefix_len = 0;
};
Result<AddressPlan> plan_addresses(std::string_view pod_cidr, std::string_view node_net);

// One pod file's text ("key=value" lines) and back.
std::string format_pod(const PodRecord& pod);
Result<PodRecord> parse_pod(std::string_view text);

// The state directory: DIR/pods/NAME per pod, DIR/control.sock (the agent's
// control socket), DIR/agent.lock (one agent per directory).
std::string pods_dir(const std::string& state_dir);
std::string control_socket_path(const std::string& state_dir);
std::string agent_lock_path(const std::string& state_dir);

Result<void> write_pod(const std::string& state_dir, const PodRecord& pod);
// An error of kind name_not_found when there is no such pod.
Result<PodRecord> read_pod(const std::string& state_dir, const std::string& name);
// Every pod, sorted by name; a file that cannot be read or parsed is left out
// and named in `problems` (one bad file must not empty a snapshot).
struct PodList {
  std::vector<PodRecord> pods;
  std::vector<std::string> problems;
};
Result<PodList> list_pods(const std::string& state_dir);
Result<void> remove_pod(const std::string& state_dir, const std::string& name);

}  // namespace zt::cni
