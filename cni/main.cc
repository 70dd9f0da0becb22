// zt-cni: a stand-in for istio-cni, to run ztunnel's in-pod mode on one
// Linux machine without Kubernetes (README, "In-pod mode on one machine").
//
//   zt-cni agent --uds /var/run/ztunnel/ztunnel.sock &
//   zt-cni add-pod --name sleep --namespace default --service-account sleep --ip 10.251.0.2/16
//   zt-cni del-pod --name sleep
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include "cni/agent.h"
#include "cni/control.h"
#include "cni/plumbing.h"
#include "cni/pods.h"

#ifndef ZT_CNI_SOURCE_SCRIPT
#define ZT_CNI_SOURCE_SCRIPT ""
#endif

namespace zt::cni {
namespace {

namespace fs = std::filesystem;

constexpr const char* kScriptName = "redirect-inpod.sh";

int fail(const std::string& message) {
  std::cerr << "zt-cni: " << message << "\n";
  return 1;
}

bool needs_root(const char* command) {
  if (::geteuid() == 0) return true;
  std::cerr << "zt-cni " << command << ": needs root (ip netns, veth, iptables)\n";
  return false;
}

// The script beside the binary (the build copies it there), else in the
// source tree the binary was built from.
std::string find_script(const std::string& given) {
  if (!given.empty()) return given;
  std::error_code ec;
  const fs::path beside = fs::read_symlink("/proc/self/exe", ec).parent_path() / kScriptName;
  if (!ec && fs::exists(beside, ec)) return beside.string();
  return ZT_CNI_SOURCE_SCRIPT;
}

struct AddPodArgs {
  std::string name, ns = "default", service_account = "default", ip, node_net, uid, script;
  bool dns = false;
};

// Prints what the agent said; the exit code.
int report_agent(const Result<ControlReply>& reply, const std::string& pod_name, bool adding) {
  if (!reply) {
    return fail("could not reach the agent: " + reply.error().detail +
                (adding ? " (the pod is recorded: it is in the agent's next snapshot)" : ""));
  }
  if (!reply->agent_running) {
    std::cout << "agent: not running" << (adding ? "; the pod is in its snapshot when it starts" : "") << "\n";
    return 0;
  }
  if (!reply->ok) {
    return fail("agent: " + reply->text +
                (adding ? " (the pod exists; remove it with: zt-cni del-pod --name " + pod_name + ")" : ""));
  }
  std::cout << "agent: " << reply->text << "\n";
  return 0;
}

int add_pod(const AddPodArgs& a, const std::string& state_dir) {
  if (!needs_root("add-pod")) return 1;
  if (auto r = check_pod_name(a.name, "--name"); !r) return fail(r.error().detail);
  if (a.ns.empty() || a.service_account.empty()) return fail("--namespace and --service-account must not be empty");
  if (!a.uid.empty() && a.uid.find_first_of(" \n=") != std::string::npos) return fail("--uid holds a space, newline or '='");
  auto plan = plan_addresses(a.ip, a.node_net);
  if (!plan) return fail(plan.error().detail);
  const std::string script = find_script(a.script);
  if (script.empty() || ::access(script.c_str(), X_OK) != 0) {
    return fail("the redirection script " + std::string(kScriptName) + " was not found or is not executable" +
                (script.empty() ? "" : " (" + script + ")") + "; give it with --script");
  }
  auto existing = list_pods(state_dir);
  if (!existing) return fail(existing.error().detail);
  for (const auto& p : existing->pods) {
    if (p.name == a.name) return fail("pod " + a.name + " already exists in " + state_dir);
    if (p.ip == plan->pod_ip) return fail("pod " + p.name + " already has " + p.ip);
  }
  PodRecord pod{a.name, a.ns, a.service_account, a.uid.empty() ? random_uid() : a.uid, plan->pod_ip,
                plan->prefix_len, plan->gateway, host_veth_name(a.name), a.dns};
  if (auto made = create_pod_network(pod, script); !made) return fail("add-pod " + a.name + ": " + made.error().detail);
  if (auto written = write_pod(state_dir, pod); !written) {
    (void)destroy_pod_network(pod);
    return fail("add-pod " + a.name + ": " + written.error().detail);
  }
  std::cout << "pod " << pod.ns << "/" << pod.name << " uid=" << pod.uid << " ip=" << pod.ip
            << " gateway=" << pod.gateway << " netns=" << netns_path(pod.name) << " veth=" << pod.host_veth
            << " dns=" << (pod.dns ? "captured" : "not captured") << "\n";
  return report_agent(ask_agent(state_dir, {ControlRequest::add, pod.name, ""}), pod.name, true);
}

int del_pod(const std::string& name, const std::string& state_dir) {
  if (!needs_root("del-pod")) return 1;
  auto pod = read_pod(state_dir, name);
  if (!pod) return fail("del-pod: " + pod.error().detail);
  // The file goes first: a snapshot sent from now on no longer has the pod.
  if (auto removed = remove_pod(state_dir, name); !removed) return fail("del-pod: " + removed.error().detail);
  const int told = report_agent(ask_agent(state_dir, {ControlRequest::del, name, pod->uid}), name, false);
  if (auto gone = destroy_pod_network(*pod); !gone) return fail("del-pod " + name + ": " + gone.error().detail);
  std::cout << "pod " << pod->ns << "/" << name << " removed\n";
  return told;
}

int list(const std::string& state_dir) {
  auto pods = list_pods(state_dir);
  if (!pods) return fail(pods.error().detail);
  for (const auto& problem : pods->problems) std::cerr << "zt-cni: skipped: " << problem << "\n";
  for (const auto& p : pods->pods) {
    std::cout << p.ns << "/" << p.name << " uid=" << p.uid << " ip=" << p.ip << "/" << p.prefix_len
              << " gateway=" << p.gateway << " veth=" << p.host_veth << " dns=" << (p.dns ? "on" : "off") << "\n";
  }
  return 0;
}

int main_impl(int argc, char** argv) {
  CLI::App app{
      "zt-cni: a stand-in for istio-cni, to run ztunnel's in-pod mode on one Linux machine without Kubernetes.\n"
      "The agent serves ZDS to ztunnel; add-pod/del-pod create and remove pods (network namespaces) and tell it."};
  app.require_subcommand(1);
  std::string state_dir(kDefaultStateDir);
  const std::string state_help = "State directory: one file per pod, the agent's control socket";

  AgentConfig agent_config{std::string(kDefaultUds), ""};
  auto* agent = app.add_subcommand("agent", "Run the node agent: serve pods to ztunnel over ZDS (until SIGTERM)");
  agent->add_option("--uds", agent_config.uds_path, "The ZDS socket ztunnel connects to (its INPOD_UDS)")
      ->capture_default_str();
  agent->add_option("--state", state_dir, state_help)->capture_default_str();
  agent->add_option("--ack-timeout-ms", agent_config.ack_timeout_ms, "How long ztunnel may take to ack a request")
      ->capture_default_str()
      ->check(CLI::Range(100, 600000));

  AddPodArgs add;
  auto* add_cmd = app.add_subcommand("add-pod", "Create a pod (netns, veth, redirection) and tell the agent (root)");
  add_cmd->add_option("--name", add.name, "Pod name; also its network namespace's name")->required();
  add_cmd->add_option("--namespace", add.ns, "Kubernetes namespace")->capture_default_str();
  add_cmd->add_option("--service-account", add.service_account, "Service account")->capture_default_str();
  add_cmd->add_option("--ip", add.ip, "Pod address and the node's pod network, e.g. 10.251.0.2/16")->required();
  add_cmd->add_option("--node-net", add.node_net,
                      "The node's address on the pod network, e.g. 10.251.0.1/16 (the gateway on every veth's host "
                      "end). Default: the first address of --ip's network");
  add_cmd->add_option("--uid", add.uid, "Pod uid. Default: a random UUID");
  add_cmd->add_option("--state", state_dir, state_help)->capture_default_str();
  add_cmd->add_flag("--dns", add.dns, "Capture the pod's DNS to ztunnel's DNS proxy (15053)");
  add_cmd->add_option("--script", add.script, "The redirection script. Default: redirect-inpod.sh beside zt-cni");

  std::string del_name;
  auto* del_cmd = app.add_subcommand("del-pod", "Tell the agent, then remove the pod's veth and namespace (root)");
  del_cmd->add_option("--name", del_name, "Pod name")->required();
  del_cmd->add_option("--state", state_dir, state_help)->capture_default_str();

  auto* list_cmd = app.add_subcommand("list", "List the pods in the state directory");
  list_cmd->add_option("--state", state_dir, state_help)->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  if (agent->parsed()) {
    agent_config.state_dir = state_dir;
    return run_agent(agent_config);
  }
  if (add_cmd->parsed()) return add_pod(add, state_dir);
  if (del_cmd->parsed()) return del_pod(del_name, state_dir);
  return list(state_dir);
}

}  // namespace
}  // namespace zt::cni

int main(int argc, char** argv) { return zt::cni::main_impl(argc, argv); }
