// In-pod enrollment at scale: what a pod costs ztunnel (time to enroll, RSS
// and descriptors per idle enrolled pod). Needs root.
//
//   inpod_enroll ZTUNNEL_BIN [--pods N] [--workers W]
//
// Makes N network namespaces (unshare on a helper thread, each held by its
// descriptor, loopback up), writes a mesh file with a workload per pod on
// node "bench", starts ztunnel in in-pod mode (fake CA) and plays the CNI
// node agent: hello, an empty snapshot (ztunnel is then ready), then an add
// per pod with its namespace, each waiting for its ack. Prints the time to
// enroll all, and ztunnel's RSS and descriptors before and after, per pod.
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "cni/seqpacket.h"
#include "core/inpod/zds.h"

namespace {

using namespace zt;
using Clock = std::chrono::steady_clock;

// A new network namespace with its loopback up, held by the returned fd.
int make_namespace() {
  int fd = -1;
  std::thread t([&] {
    if (::unshare(CLONE_NEWNET) != 0) return;
    fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (::ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
      ifr.ifr_flags |= IFF_UP;
      (void)::ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    ::close(s);
  });  // the thread ends in the new namespace; the process stays where it was
  t.join();
  return fd;
}

long status_kb(pid_t pid, const char* key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::atol(line.c_str() + std::strlen(key));
  }
  return -1;
}

size_t descriptors(pid_t pid) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

// What the descriptors are, by the kind their link names ("socket",
// "net" for a namespace, "anon_inode:[eventfd]", a path...).
std::map<std::string, size_t> descriptor_kinds(pid_t pid) {
  std::map<std::string, size_t> kinds;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::string target = std::filesystem::read_symlink(it->path(), ec).string();
    if (ec) continue;
    const size_t colon = target.find(":[");
    if (colon != std::string::npos && target.rfind("anon_inode", 0) != 0) target.resize(colon);
    if (target.rfind("/", 0) == 0) target = "file";
    ++kinds[target];
  }
  return kinds;
}

bool exchange(int conn, const std::string& bytes, int fd, std::string& error) {
  if (auto r = cni::send_message(conn, bytes, fd); !r) {
    error = r.error().message();
    return false;
  }
  auto m = cni::recv_message(conn, 30000);
  if (!m || m->eof) {
    error = m ? "ztunnel closed" : m.error().message();
    return false;
  }
  auto ack = core::inpod::decode_ack(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(m->bytes.data()), m->bytes.size()));
  if (!ack) {
    error = ack.error().message();
    return false;
  }
  error = ack->error;
  return ack->ok();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s ZTUNNEL_BIN [--pods N] [--workers W]\n", argv[0]);
    return 2;
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "needs root (network namespaces)\n");
    return 2;
  }
  const std::string bin = argv[1];
  int pods = 1000, workers = 2;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--pods") pods = std::atoi(argv[i + 1]);
    if (std::string(argv[i]) == "--workers") workers = std::atoi(argv[i + 1]);
  }
  const std::string dir = "/tmp/zt-inpod-bench-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const std::string uds = dir + "/ztunnel.sock";

  // The mesh: a workload per pod (ten service accounts), all on node "bench".
  {
    std::ofstream mesh(dir + "/mesh.yaml");
    mesh << "workloads:\n";
    for (int i = 0; i < pods; ++i) {
      mesh << "- uid: cluster1//v1/Pod/default/pod-" << i << "\n  name: pod-" << i
           << "\n  namespace: default\n  serviceAccount: sa-" << (i % 10) << "\n  workloadIps: [\"10.200."
           << (i / 250) << "." << (i % 250 + 1) << "\"]\n  protocol: HBONE\n  node: bench\n";
    }
  }

  const auto t_ns = Clock::now();
  std::vector<int> namespaces;
  for (int i = 0; i < pods; ++i) {
    const int fd = make_namespace();
    if (fd < 0) {
      std::fprintf(stderr, "cannot create network namespace %d: %s\n", i, std::strerror(errno));
      return 1;
    }
    namespaces.push_back(fd);
  }
  const double ns_s = std::chrono::duration<double>(Clock::now() - t_ns).count();

  auto listener = cni::listen_seqpacket(uds);
  if (!listener) {
    std::fprintf(stderr, "listen %s: %s\n", uds.c_str(), listener.error().message().c_str());
    return 1;
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    for (int fd : namespaces) ::close(fd);
    const std::string admin = std::to_string(20000 + getpid() % 10000);
    const std::string stats = std::to_string(30000 + getpid() % 10000);
    const std::string ready = std::to_string(40000 + getpid() % 10000);
    setenv("INPOD_ENABLED", "true", 1);
    setenv("INPOD_UDS", uds.c_str(), 1);
    setenv("NODE_NAME", "bench", 1);
    setenv("FAKE_CA", "true", 1);
    setenv("XDS_ADDRESS", "", 1);
    setenv("CA_ADDRESS", "", 1);
    setenv("LOCAL_XDS_PATH", (dir + "/mesh.yaml").c_str(), 1);
    setenv("ZTUNNEL_WORKER_THREADS", std::to_string(workers).c_str(), 1);
    setenv("ISTIO_META_DNS_CAPTURE", "false", 1);
    setenv("RUST_LOG", "warn", 1);
    execl(bin.c_str(), bin.c_str(), "--admin-port", admin.c_str(), "--stats-port", stats.c_str(),
          "--readiness-port", ready.c_str(), nullptr);
    std::perror("exec ztunnel");
    _exit(127);
  }
  cni::UniqueFd conn(::accept4(listener->get(), nullptr, nullptr, SOCK_CLOEXEC));
  auto hello = cni::recv_message(conn.get(), 10000);
  std::string error;
  if (!hello || !exchange(conn.get(), core::inpod::encode_request(core::inpod::SnapshotSent{}), -1, error)) {
    std::fprintf(stderr, "no hello or snapshot: %s\n", error.c_str());
    ::kill(pid, SIGKILL);
    return 1;
  }
  usleep(500'000);  // certificates for the identities settle
  const long rss0 = status_kb(pid, "VmRSS:");
  const size_t fds0 = descriptors(pid);
  const std::map<std::string, size_t> kinds0 = descriptor_kinds(pid);

  const auto t0 = Clock::now();
  int failed = 0;
  for (int i = 0; i < pods; ++i) {
    core::inpod::AddPod add{"uid-" + std::to_string(i), {"pod-" + std::to_string(i), "default", "sa-" + std::to_string(i % 10)}, ""};
    if (!exchange(conn.get(), core::inpod::encode_request(add), namespaces[i], error)) {
      if (++failed <= 3) std::fprintf(stderr, "pod %d: %s\n", i, error.c_str());
    }
  }
  const double enroll_s = std::chrono::duration<double>(Clock::now() - t0).count();
  usleep(500'000);
  const long rss1 = status_kb(pid, "VmRSS:");
  const size_t fds1 = descriptors(pid);
  const std::map<std::string, size_t> kinds1 = descriptor_kinds(pid);

  std::printf("pods: %d (%d failed), workers: %d\n", pods, failed, workers);
  std::printf("namespaces made in %.2f s\n", ns_s);
  std::printf("enrolled in %.3f s: %.0f pods/s, %.3f ms per pod (add to ack)\n", enroll_s, pods / enroll_s,
              1000 * enroll_s / pods);
  std::printf("RSS %ld -> %ld kB: %.1f kB per idle enrolled pod\n", rss0, rss1, double(rss1 - rss0) / pods);
  std::printf("descriptors %zu -> %zu: %.2f per pod\n", fds0, fds1, double(fds1 - fds0) / pods);
  for (const auto& [kind, n] : kinds1) {
    const auto before = kinds0.find(kind);
    const size_t n0 = before == kinds0.end() ? 0 : before->second;
    if (n != n0) std::printf("  %-24s %zu -> %zu: %.2f per pod\n", kind.c_str(), n0, n, double(n) / pods - double(n0) / pods);
  }

  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  for (int fd : namespaces) ::close(fd);
  std::filesystem::remove_all(dir);
  return failed == 0 ? 0 : 1;
}
