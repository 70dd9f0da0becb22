// Unix SOCK_SEQPACKET sockets and network namespaces in the simulator (in-pod
// mode: the CNI node agent's ZDS socket, and the pods' namespaces it sends).
//
// A pod is a simulated host; its namespace is a handle on that host, and
// Network::inside(ns, mark) is the pod host's network with every socket
// marked (so the pod's capture lets ztunnel's own connections through).
// Packet sockets keep message boundaries and carry namespace handles; paths
// are world-wide (give each node's agent its own). Messages arrive after the
// sender's loopback latency; a crash closes the crashed host's sockets (the
// peer reads end-of-file) and its listeners.
//
//   auto agent = world.listen_packets(agent_host.id(), "/run/ztunnel-node1.sock");
//   (*agent)->accept([](Result<PacketSocketPtr> s) { ... });
//   node.env().net.connect_packets("/run/ztunnel-node1.sock", ...);   // ztunnel's side
//   NetNamespacePtr ns = world.net_namespace(pod.id());                 // sent with an add
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "io/network.h"

namespace zt::io::sim {

class PacketListener {
 public:
  using AcceptCallback = std::function<void(Result<PacketSocketPtr>)>;
  virtual ~PacketListener() = default;
  // One accept in flight; the callback never runs inline.
  virtual void accept(AcceptCallback done) = 0;
};

// The agent's side: the namespaces the next send() on `agent_side` (a
// socket of this simulator) carries, as SCM_RIGHTS would.
void attach_namespaces(PacketSocket& agent_side, std::vector<NetNamespacePtr> ns);

}  // namespace zt::io::sim
