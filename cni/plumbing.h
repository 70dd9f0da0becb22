// A pod's network on one machine, without Kubernetes: a network namespace
// named after the pod, a veth pair to the root namespace, and the in-pod
// redirection (redirect-inpod.sh) inside.
//
// The address plan (point-to-point, as the CNI "ptp" plugin does):
//   pod:  eth0 = POD_IP/32, lo up; route GATEWAY dev eth0 (link scope),
//         default via GATEWAY
//   root: the host end (ztvXXXXXXXX) carries GATEWAY/32 (the same address on
//         every host end); route POD_IP/32 dev ztvXXXXXXXX; IPv4 forwarding on
// Pods reach each other, and the node, through the root namespace's routes.
//
//   auto made = create_pod_network(pod, "/path/to/redirect-inpod.sh");
//   destroy_pod_network(pod);   // the veth, then the namespace
#pragma once

#include <string>

#include "cni/pods.h"
#include "io/result.h"

namespace zt::cni {

// Creates it all; on failure undoes what it did and names the step that failed.
Result<void> create_pod_network(const PodRecord& pod, const std::string& redirect_script);

// Removes the veth (from the root side, so it goes even while ztunnel still
// holds the namespace open) and the namespace. What is already gone is fine.
Result<void> destroy_pod_network(const PodRecord& pod);

}  // namespace zt::cni
