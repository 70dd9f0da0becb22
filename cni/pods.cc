#include "cni/pods.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace zt::cni {
namespace {

namespace fs = std::filesystem;

Error invalid(std::string why) { return Error(Errc::invalid_argument, std::move(why)); }

Result<uint32_t> parse_ipv4(std::string_view text, std::string_view what) {
  in_addr a{};
  const std::string s(text);
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return invalid(std::string(what) + ": '" + s + "' is not an IPv4 address");
  return ntohl(a.s_addr);
}

std::string format_ipv4(uint32_t host_order) {
  in_addr a{htonl(host_order)};
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

struct Cidr {
  uint32_t addr = 0;
  int len = 0;
};

Result<Cidr> parse_cidr(std::string_view text, std::string_view what) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) return invalid(std::string(what) + ": '" + std::string(text) + "' needs a /len");
  auto addr = parse_ipv4(text.substr(0, slash), what);
  if (!addr) return addr.error();
  const std::string len_text(text.substr(slash + 1));
  char* end = nullptr;
  const long len = std::strtol(len_text.c_str(), &end, 10);
  if (len_text.empty() || *end != '\0' || len < 1 || len > 30) {
    return invalid(std::string(what) + ": prefix length '" + len_text + "' is not between 1 and 30");
  }
  return Cidr{*addr, int(len)};
}

uint32_t mask_of(int len) { return len == 0 ? 0 : ~uint32_t{0} << (32 - len); }

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return Error(Errc::name_not_found, path + ": no such file");
    return Error(Errc::io_error, path + ": " + std::strerror(errno));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string netns_path(const std::string& pod_name) { return std::string(kNetnsDir) + "/" + pod_name; }

std::string host_veth_name(const std::string& pod_name) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (unsigned char c : pod_name) h = (h ^ c) * 16777619u;
  char buf[16];
  std::snprintf(buf, sizeof buf, "ztv%08x", h);
  return buf;
}

Result<void> check_pod_name(std::string_view name, std::string_view what) {
  const std::string w(what);
  if (name.empty()) return invalid(w + " is empty");
  if (name.size() > kPodNameBytesMax) {
    return invalid(w + " '" + std::string(name) + "' is longer than " + std::to_string(kPodNameBytesMax) + " bytes");
  }
  if (name[0] == '.' || name[0] == '-') return invalid(w + " '" + std::string(name) + "' starts with '" + name[0] + "'");
  for (char c : name) {
    const bool good = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '_' || c == '-';
    if (!good) return invalid(w + " '" + std::string(name) + "' may hold only letters, digits, '.', '_' and '-'");
  }
  return ok();
}

std::string random_uid() {
  std::array<uint8_t, 16> b{};
  const int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  ZT_ASSERT(fd >= 0);
  const ssize_t n = ::read(fd, b.data(), b.size());
  ::close(fd);
  ZT_ASSERT(n == ssize_t(b.size()));
  b[6] = (b[6] & 0x0f) | 0x40;  // version 4
  b[8] = (b[8] & 0x3f) | 0x80;  // RFC 4122 variant
  char out[37];
  std::snprintf(out, sizeof out, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return out;
}

Result<AddressPlan> plan_addresses(std::string_view pod_cidr, std::string_view node_net) {
  auto pod = parse_cidr(pod_cidr, "--ip");
  if (!pod) return pod.error();
  Cidr net{pod->addr & mask_of(pod->len), pod->len};
  uint32_t gateway = net.addr + 1;
  if (!node_net.empty()) {
    auto n = parse_cidr(node_net, "--node-net");
    if (!n) return n.error();
    net = {n->addr & mask_of(n->len), n->len};
    gateway = n->addr;
    if (gateway == net.addr) gateway = net.addr + 1;  // "10.251.0.0/16" means the first address
  }
  const uint32_t broadcast = net.addr | ~mask_of(net.len);
  const std::string net_text = format_ipv4(net.addr) + "/" + std::to_string(net.len);
  if ((pod->addr & mask_of(net.len)) != net.addr) {
    return invalid("--ip " + format_ipv4(pod->addr) + " is outside the node's pod network " + net_text);
  }
  if (pod->addr == net.addr || pod->addr == broadcast) {
    return invalid("--ip " + format_ipv4(pod->addr) + " is the network or broadcast address of " + net_text);
  }
  if (gateway == broadcast) return invalid("--node-net: the gateway " + format_ipv4(gateway) + " is the broadcast address");
  if (pod->addr == gateway) {
    return invalid("--ip " + format_ipv4(pod->addr) + " is the node's gateway address on " + net_text +
                   " (the host end of every veth); pick another");
  }
  return AddressPlan{format_ipv4(pod->addr), format_ipv4(gateway), net.len};
}

std::string format_pod(const PodRecord& p) {
  std::string out;
  out += "name=" + p.name + "\n";
  out += "namespace=" + p.ns + "\n";
  out += "service_account=" + p.service_account + "\n";
  out += "uid=" + p.uid + "\n";
  out += "ip=" + p.ip + "\n";
  out += "prefix_len=" + std::to_string(p.prefix_len) + "\n";
  out += "gateway=" + p.gateway + "\n";
  out += "host_veth=" + p.host_veth + "\n";
  out += std::string("dns=") + (p.dns ? "true" : "false") + "\n";
  return out;
}

Result<PodRecord> parse_pod(std::string_view text) {
  PodRecord p;
  bool seen_uid = false, seen_name = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    const std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) continue;
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) return invalid("a line without '=': " + std::string(line));
    const std::string_view key = line.substr(0, eq);
    const std::string value(line.substr(eq + 1));
    if (key == "name") p.name = value, seen_name = true;
    else if (key == "namespace") p.ns = value;
    else if (key == "service_account") p.service_account = value;
    else if (key == "uid") p.uid = value, seen_uid = true;
    else if (key == "ip") p.ip = value;
    else if (key == "prefix_len") p.prefix_len = std::atoi(value.c_str());
    else if (key == "gateway") p.gateway = value;
    else if (key == "host_veth") p.host_veth = value;
    else if (key == "dns") p.dns = value == "true";
    // Unknown keys are skipped: a newer zt-cni may add some.
  }
  if (!seen_name || p.name.empty()) return invalid("no name");
  if (!seen_uid || p.uid.empty()) return invalid("no uid");
  return p;
}

std::string pods_dir(const std::string& state_dir) { return state_dir + "/pods"; }
std::string control_socket_path(const std::string& state_dir) { return state_dir + "/control.sock"; }
std::string agent_lock_path(const std::string& state_dir) { return state_dir + "/agent.lock"; }

Result<void> write_pod(const std::string& state_dir, const PodRecord& pod) {
  ZT_ASSERT(check_pod_name(pod.name, "name").ok());
  std::error_code ec;
  fs::create_directories(pods_dir(state_dir), ec);
  if (ec) return Error(Errc::io_error, "cannot create " + pods_dir(state_dir) + ": " + ec.message());
  const std::string path = pods_dir(state_dir) + "/" + pod.name;
  const std::string tmp = pods_dir(state_dir) + "/." + pod.name + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << format_pod(pod);
    if (!out.flush()) return Error(Errc::io_error, "cannot write " + tmp);
  }
  fs::rename(tmp, path, ec);  // atomic: a reader sees the old file, none, or the whole new one
  if (ec) {
    fs::remove(tmp, ec);
    return Error(Errc::io_error, "cannot write " + path);
  }
  return ok();
}

Result<PodRecord> read_pod(const std::string& state_dir, const std::string& name) {
  if (auto good = check_pod_name(name, "pod name"); !good) return good.error();
  const std::string path = pods_dir(state_dir) + "/" + name;
  auto text = read_file(path);
  if (!text) {
    if (text.code() == Errc::name_not_found) return Error(Errc::name_not_found, "no pod " + name + " in " + state_dir);
    return text.error();
  }
  auto pod = parse_pod(*text);
  if (!pod) return Error(Errc::invalid_argument, path + ": " + pod.error().detail);
  if (pod->name != name) return Error(Errc::invalid_argument, path + ": it names pod " + pod->name);
  return pod;
}

Result<PodList> list_pods(const std::string& state_dir) {
  PodList out;
  std::error_code ec;
  if (!fs::exists(pods_dir(state_dir), ec)) return out;
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(pods_dir(state_dir), ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.empty() && name[0] != '.') names.push_back(name);
  }
  if (ec) return Error(Errc::io_error, "cannot list " + pods_dir(state_dir) + ": " + ec.message());
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    auto pod = read_pod(state_dir, name);
    if (pod) out.pods.push_back(std::move(*pod));
    else if (pod.code() != Errc::name_not_found) out.problems.push_back(pod.error().detail);  // not removed meanwhile
  }
  return out;
}

Result<void> remove_pod(const std::string& state_dir, const std::string& name) {
  if (auto good = check_pod_name(name, "pod name"); !good) return good.error();
  std::error_code ec;
  if (!fs::remove(pods_dir(state_dir) + "/" + name, ec)) {
    if (ec) return Error(Errc::io_error, "cannot remove pod file: " + ec.message());
    return Error(Errc::name_not_found, "no pod " + name + " in " + state_dir);
  }
  return ok();
}

}  // namespace zt::cni
