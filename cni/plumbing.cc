#include "cni/plumbing.h"

#include <sys/stat.h>

#include <fstream>
#include <vector>

#include "cni/command.h"

namespace zt::cni {
namespace {

using Argv = std::vector<std::string>;

bool exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

bool link_exists(const std::string& name) { return exists("/sys/class/net/" + name); }

Result<void> enable_forwarding() {
  std::ofstream f("/proc/sys/net/ipv4/ip_forward");
  if (!(f << "1\n" << std::flush)) return Error(Errc::io_error, "cannot enable IPv4 forwarding (/proc/sys/net/ipv4/ip_forward)");
  return ok();
}

Result<void> run_all(const std::vector<Argv>& commands) {
  for (const auto& argv : commands) {
    if (auto r = run_command(argv); !r) return r.error();
  }
  return ok();
}

Result<void> plumb(const PodRecord& pod, const std::string& redirect_script) {
  const std::string& ns = pod.name;
  const std::string& veth = pod.host_veth;
  if (auto r = run_all({
          {"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
          {"ip", "-n", ns, "link", "set", "lo", "up"},
          {"ip", "-n", ns, "addr", "add", pod.ip + "/32", "dev", "eth0"},
          {"ip", "-n", ns, "link", "set", "eth0", "up"},
          {"ip", "-n", ns, "route", "add", pod.gateway, "dev", "eth0", "scope", "link"},
          {"ip", "-n", ns, "route", "add", "default", "via", pod.gateway, "dev", "eth0", "src", pod.ip},
          {"ip", "addr", "add", pod.gateway + "/32", "dev", veth},
          {"ip", "link", "set", veth, "up"},
          {"ip", "route", "add", pod.ip + "/32", "dev", veth, "src", pod.gateway},
      });
      !r) {
    return r;
  }
  if (auto r = enable_forwarding(); !r) return r;
  Argv script{"ip", "netns", "exec", ns, redirect_script};
  if (pod.dns) script.push_back("--dns");
  if (auto r = run_command(script); !r) return r.error();
  return ok();
}

}  // namespace

Result<void> create_pod_network(const PodRecord& pod, const std::string& redirect_script) {
  if (exists(netns_path(pod.name))) {
    return Error(Errc::address_in_use, "a network namespace " + pod.name + " already exists (" +
                                           netns_path(pod.name) + "); remove it or pick another --name");
  }
  if (link_exists(pod.host_veth)) {
    return Error(Errc::address_in_use, "an interface " + pod.host_veth + " already exists in the root namespace");
  }
  if (auto r = run_command({"ip", "netns", "add", pod.name}); !r) return r.error();
  if (auto r = plumb(pod, redirect_script); !r) {
    (void)destroy_pod_network(pod);
    return r;
  }
  return ok();
}

Result<void> destroy_pod_network(const PodRecord& pod) {
  Result<void> outcome;
  if (link_exists(pod.host_veth)) {
    if (auto r = run_command({"ip", "link", "del", pod.host_veth}); !r) outcome = r.error();
  }
  if (exists(netns_path(pod.name))) {
    if (auto r = run_command({"ip", "netns", "del", pod.name}); !r && outcome) outcome = r.error();
  }
  return outcome;
}

}  // namespace zt::cni
