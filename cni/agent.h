// `zt-cni agent`: the CNI node agent's side of ZDS, for running in-pod mode
// on one machine. It listens on the ZDS socket; for each ztunnel connection
// it reads the hello, sends the snapshot (an add with the pod's netns for
// every pod in the state directory, then snapshot_sent) and afterwards the
// adds and dels that add-pod and del-pod ask for on the control socket
// (cni/control.h). One request at a time, each waiting for its ack; a nack is
// logged (and told to the add-pod/del-pod that asked). A new ztunnel
// connection replaces the old one. Single-threaded: one poll loop.
//
//   AgentConfig config{.uds_path = "/var/run/ztunnel/ztunnel.sock", .state_dir = "/var/run/zt-cni"};
//   return run_agent(config);   // until SIGTERM or SIGINT
#pragma once

#include <string>

namespace zt::cni {

struct AgentConfig {
  std::string uds_path;
  std::string state_dir;
  int hello_timeout_ms = 5000;    // from ztunnel's connect to its hello
  int ack_timeout_ms = 5000;      // per request; past it the connection is dropped
  int control_timeout_ms = 2000;  // for add-pod/del-pod's request to arrive
};

// Runs the agent until SIGTERM or SIGINT; logs to stderr. Returns the
// process's exit code (non-zero when it could not start).
int run_agent(const AgentConfig& config);

}  // namespace zt::cni
