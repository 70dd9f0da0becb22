// A two-node in-pod mesh on one Linux machine, for e2e tests (root only):
// two `ztunnel` processes in in-pod mode, each with its own `zt-cni agent`
// (state directory and INPOD_UDS in the harness's temporary directory) and
// its own admin, stats and readiness ports (ephemeral); pods are real
// network namespaces made by `zt-cni add-pod` (veth, addresses, the
// redirection script), and a pod's application is a thread of the test
// that entered the pod's namespace and serves there.
//
//   InpodMesh mesh;                         // nothing runs yet
//   Pod& a = mesh.define('a', 0, "e2e", "sa-a");
//   mesh.write_mesh_files();                // local-mode mesh file of each node
//   mesh.start_agent(0); mesh.add_pod(a);   // a real namespace, enrolled
//   mesh.start_ztunnel(0); mesh.wait_ready(0, 10s);
//   PodApp app(a, 8080);                    // "pod=<name> peer=<ip>\n", then echo
//   Reply r = exchange(a, c.ip, 8080);      // from inside a: captured, over HBONE
//
// Names carry the test's pid (namespaces zte<pid><key>, addresses
// 10.252.K.x with K from the pid), so runs do not collide; the destructor
// stops every process and removes every namespace, also after a failure.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace zt::e2e::inpod {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Why this machine cannot run the tests ("" when it can).
std::string cannot_run();

double seconds_since(Clock::time_point t0);

// --- processes ------------------------------------------------------------------

// A child process whose stdout and stderr go to a file.
struct Child {
  pid_t pid = -1;
  std::string log_path;

  bool running() const { return pid > 0; }
  // The exit code (128+signal when killed), or -1 on timeout.
  int wait(std::chrono::milliseconds timeout = 20s);
  // SIGTERM (or `sig`), then SIGKILL after `grace`; the exit code.
  int stop(int sig = 15, std::chrono::milliseconds grace = 10s);
  std::string output() const;
};

Child spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, const std::string& log_path);

struct Ran {
  int code = -1;
  std::string output;
};
Ran run(const std::vector<std::string>& argv, const std::string& log_path);

// --- pods and their applications ---------------------------------------------

struct Pod {
  char key = 0;
  std::string name;  // the pod's name and its network namespace's
  std::string ns, sa, ip;
  int node = 0;      // 0 or 1
  std::string identity() const { return "spiffe://cluster.local/ns/" + ns + "/sa/" + sa; }
};

// A pod's application: a thread that enters the pod's namespace, listens on
// `port` there and greets each connection with "pod=<name> peer=<ip>\n" (the
// address it sees the client at), then echoes what it reads.
class PodApp {
 public:
  PodApp(const Pod& pod, uint16_t port);
  ~PodApp();
  PodApp(const PodApp&) = delete;
  PodApp& operator=(const PodApp&) = delete;

  const std::string& error() const { return error_; }  // "" when listening
  size_t accepted() const { return accepted_.load(); }

 private:
  void serve();

  std::string name_, error_;
  int listener_ = -1, stop_[2] = {-1, -1};
  std::atomic<size_t> accepted_{0};
  std::thread thread_;
};

// What a connection from inside a pod got: the greeting of the application
// that answered, or why not.
struct Reply {
  bool ok = false;
  std::string pod, peer;    // from the greeting
  std::string error;
  uint16_t local_port = 0;  // the client's port (the source's access log names it)
  double seconds = 0;
};

// An open connection made from inside `from` (a socket of its namespace, no
// mark: the pod's redirection rules apply, as to its own application).
class PodConn {
 public:
  // `local_port`: bind the client to it (0: an ephemeral port).
  PodConn(const Pod& from, const std::string& ip, uint16_t port, std::chrono::milliseconds timeout = 3s,
          uint16_t local_port = 0);
  ~PodConn();
  PodConn(const PodConn&) = delete;
  PodConn& operator=(const PodConn&) = delete;
  const Reply& greeting() const { return greeting_; }
  // Sends `text` and reads it back.
  bool echo(const std::string& text, std::chrono::milliseconds timeout = 3s);

 private:
  int fd_ = -1;
  Reply greeting_;
};

// Connect, read the greeting, close.
Reply exchange(const Pod& from, const std::string& ip, uint16_t port, std::chrono::milliseconds timeout = 3s,
               uint16_t local_port = 0);

// --- the access log ------------------------------------------------------------

// One "connection complete" line of a ztunnel's log: its fields (unquoted).
using AccessRecord = std::map<std::string, std::string>;
std::vector<AccessRecord> access_records(const std::string& log);

// --- the two nodes ----------------------------------------------------------------

struct Node {
  std::string name;               // NODE_NAME
  std::string state, uds, mesh;   // agent state dir, INPOD_UDS, mesh file
  uint16_t admin = 0, stats = 0, ready = 0;
  Child agent, ztunnel;
  int ztunnel_runs = 0;
};

struct Http {
  int status = 0;
  std::string body;
};
Http http_get(uint16_t port, const std::string& path, std::chrono::milliseconds timeout = 2s);

class InpodMesh {
 public:
  InpodMesh();
  ~InpodMesh();
  InpodMesh(const InpodMesh&) = delete;
  InpodMesh& operator=(const InpodMesh&) = delete;

  const std::string& dir() const { return dir_; }
  Node& node(int i) { return nodes_[i]; }

  // A pod of the mesh file (not created yet); `ip_index` picks its address
  // (the key's position in the alphabet when 0).
  Pod& define(char key, int node, const std::string& ns, const std::string& sa, int ip_index = 0);
  Pod& pod(char key);
  std::string ip(int index) const;
  // The pods the mesh files name; a pod left out is gone from the mesh.
  void set_in_mesh(char key, bool in);
  // YAML under "policies:" (each item starting "- ").
  void set_policies(std::string yaml) { policies_ = std::move(yaml); }
  // Writes the mesh file of one node or both (atomically: a new file
  // renamed over the old); ztunnel checks it every second.
  void write_mesh_file(int node);
  void write_mesh_files() {
    write_mesh_file(0);
    write_mesh_file(1);
  }

  Ran add_pod(const Pod& p);
  Ran del_pod(const Pod& p);

  void start_agent(int node);
  int stop_agent(int node);
  void start_ztunnel(int node);
  int stop_ztunnel(int node, int sig = 15);
  bool wait_ready(int node, std::chrono::milliseconds timeout);
  std::optional<nlohmann::json> config_dump(int node);
  // The ztunnel's log, all its runs.
  std::string ztunnel_log(int node) const;

  // Listening TCP sockets inside the pod: "addr:port ino=N", sorted.
  std::vector<std::string> pod_listeners(const Pod& p);

 private:
  std::string dir_;
  int third_octet_ = 1;
  Node nodes_[2];
  std::deque<Pod> pods_;  // references stay valid as pods are defined
  std::vector<std::string> created_;  // netns names add_pod made
  std::map<char, bool> in_mesh_;
  std::string policies_;
};

}  // namespace zt::e2e::inpod
