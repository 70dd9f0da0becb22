#include "cni/agent.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <span>

#include "cni/control.h"
#include "cni/log.h"
#include "cni/pods.h"
#include "cni/seqpacket.h"
#include "core/inpod/zds.h"

namespace zt::cni {
namespace {

namespace inpod = zt::core::inpod;

std::span<const uint8_t> bytes_of(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

class Agent {
 public:
  explicit Agent(const AgentConfig& config) : config_(config) {}
  ~Agent();

  Result<void> start();
  void run();

 private:
  Result<void> lock_state_dir();
  void accept_ztunnel();
  void send_snapshot();
  void on_ztunnel_readable();
  void serve_control();
  ControlReply handle(const ControlRequest& request);
  ControlReply handle_add(const std::string& name);
  ControlReply handle_del(const std::string& uid, const std::string& name);
  // Sends one request and waits for its ack. An error means the connection
  // failed and was dropped; a nack is a value.
  Result<inpod::Ack> exchange(const std::string& request, int fd_to_pass);
  // The add of one pod with its netns: the ack, or why it was not sent.
  Result<inpod::Ack> send_add(const PodRecord& pod);
  void drop_ztunnel(const std::string& why);

  AgentConfig config_;
  UniqueFd lock_, signals_, zds_listener_, control_listener_, ztunnel_;
  ino_t uds_inode_ = 0;
  uint64_t connections_ = 0;   // ztunnel connections accepted so far (log context)
  uint64_t current_ = 0;       // the number of the one in ztunnel_
  std::set<std::string> sent_;  // uids this connection has (acked adds not yet deleted)
};

Agent::~Agent() {
  // Remove the sockets only if they are still ours (not a successor's).
  struct stat st{};
  if (zds_listener_.valid() && ::stat(config_.uds_path.c_str(), &st) == 0 && st.st_ino == uds_inode_) {
    ::unlink(config_.uds_path.c_str());
  }
  if (control_listener_.valid()) ::unlink(control_socket_path(config_.state_dir).c_str());
}

Result<void> Agent::lock_state_dir() {
  std::error_code ec;
  std::filesystem::create_directories(config_.state_dir, ec);
  if (ec) return Error(Errc::io_error, "cannot create " + config_.state_dir + ": " + ec.message());
  const std::string path = agent_lock_path(config_.state_dir);
  lock_.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock_.valid()) return Error(Errc::io_error, "cannot open " + path + ": " + std::strerror(errno));
  if (::flock(lock_.get(), LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {};
    (void)!::pread(lock_.get(), pid, sizeof pid - 1, 0);
    return Error(Errc::address_in_use, "another agent already serves " + config_.state_dir + " (pid " +
                                           std::string(pid, strcspn(pid, "\n")) + ", from " + path + ")");
  }
  const std::string me = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_.get(), 0) != 0 || ::pwrite(lock_.get(), me.data(), me.size(), 0) != ssize_t(me.size())) {
    return Error(Errc::io_error, "cannot write " + path + ": " + std::strerror(errno));
  }
  return ok();
}

Result<void> Agent::start() {
  if (auto locked = lock_state_dir(); !locked) return locked;
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  if (::sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) return Error(Errc::io_error, "sigprocmask failed");
  signals_.reset(::signalfd(-1, &mask, SFD_CLOEXEC));
  if (!signals_.valid()) return Error(Errc::io_error, std::string("signalfd: ") + std::strerror(errno));
  ::signal(SIGPIPE, SIG_IGN);

  auto zds = listen_seqpacket(config_.uds_path);
  if (!zds) return Error(zds.code(), "the ZDS socket: " + zds.error().detail);
  zds_listener_ = std::move(*zds);
  struct stat st{};
  if (::stat(config_.uds_path.c_str(), &st) == 0) uds_inode_ = st.st_ino;
  auto control = listen_seqpacket(control_socket_path(config_.state_dir));
  if (!control) return Error(control.code(), "the control socket: " + control.error().detail);
  control_listener_ = std::move(*control);
  auto pods = list_pods(config_.state_dir);
  log_info("agent: listening for ztunnel on " + config_.uds_path + ", control on " +
           control_socket_path(config_.state_dir) + "; " +
           (pods ? std::to_string(pods->pods.size()) : std::string("?")) + " pod(s) in " + config_.state_dir);
  return ok();
}

void Agent::run() {
  for (;;) {
    pollfd fds[4] = {{signals_.get(), POLLIN, 0},
                     {zds_listener_.get(), POLLIN, 0},
                     {ztunnel_.get(), POLLIN, 0},  // -1 when none: poll skips it
                     {control_listener_.get(), POLLIN, 0}};
    if (::poll(fds, 4, -1) < 0) {
      if (errno == EINTR) continue;
      log_error(std::string("agent: poll: ") + std::strerror(errno));
      return;
    }
    if (fds[0].revents) {
      log_info("agent: stopping on a signal");
      return;
    }
    if (fds[1].revents) accept_ztunnel();
    else if (fds[2].revents && ztunnel_.valid()) on_ztunnel_readable();
    else if (fds[3].revents) serve_control();
  }
}

void Agent::drop_ztunnel(const std::string& why) {
  if (!ztunnel_.valid()) return;
  log_warn("agent: dropping ztunnel connection #" + std::to_string(current_) + ": " + why);
  ztunnel_.reset();
  sent_.clear();
}

void Agent::accept_ztunnel() {
  UniqueFd conn(::accept4(zds_listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!conn.valid()) {
    log_warn(std::string("agent: accept on the ZDS socket: ") + std::strerror(errno));
    return;
  }
  ++connections_;
  auto hello = recv_message(conn.get(), config_.hello_timeout_ms);
  std::string why;
  if (!hello) why = "no hello: " + hello.error().detail;
  else if (hello->eof) why = "it closed before its hello";
  else if (!hello->fds.empty()) why = "its hello carried descriptors";
  else if (auto h = inpod::decode_hello(bytes_of(hello->bytes)); !h) why = h.error().detail;
  if (!why.empty()) {
    log_warn("agent: ztunnel connection #" + std::to_string(connections_) + " refused: " + why);
    return;
  }
  // Only a connection that said hello replaces the one before it.
  drop_ztunnel("a new ztunnel connection (#" + std::to_string(connections_) + ") replaces it");
  ztunnel_ = std::move(conn);
  current_ = connections_;
  log_info("agent: ztunnel connection #" + std::to_string(connections_) + " said hello (V1); sending the snapshot");
  send_snapshot();
}

void Agent::send_snapshot() {
  auto list = list_pods(config_.state_dir);
  if (!list) {
    // Without the pods, snapshot_sent would remove them all from ztunnel.
    drop_ztunnel("cannot read the pods: " + list.error().detail);
    return;
  }
  for (const auto& problem : list->problems) log_warn("agent: a pod file left out of the snapshot: " + problem);
  size_t added = 0;
  for (const auto& pod : list->pods) {
    auto ack = send_add(pod);
    if (!ztunnel_.valid()) return;  // the connection failed: it gets a new snapshot when it comes back
    if (ack && ack->ok()) ++added;
  }
  auto ack = exchange(inpod::encode_request(inpod::SnapshotSent{}), -1);
  if (!ack) return;
  if (!ack->ok()) log_warn("agent: ztunnel refused snapshot_sent: " + ack->error);
  log_info("agent: snapshot sent: " + std::to_string(added) + " of " + std::to_string(list->pods.size()) +
           " pod(s) taken");
}

Result<inpod::Ack> Agent::exchange(const std::string& request, int fd_to_pass) {
  ZT_ASSERT(ztunnel_.valid());
  if (auto sent = send_message(ztunnel_.get(), request, fd_to_pass); !sent) {
    drop_ztunnel(sent.error().detail);
    return sent.error();
  }
  auto reply = recv_message(ztunnel_.get(), config_.ack_timeout_ms);
  Error failure(Errc::io_error);
  if (!reply) failure = Error(reply.code(), "no ack: " + reply.error().detail);
  else if (reply->eof) failure = Error(Errc::connection_reset, "ztunnel closed the connection instead of acking");
  else if (auto ack = inpod::decode_ack(bytes_of(reply->bytes)); !ack) failure = ack.error();
  else return *ack;
  drop_ztunnel(failure.detail);
  return failure;
}

Result<inpod::Ack> Agent::send_add(const PodRecord& pod) {
  UniqueFd netns(::open(netns_path(pod.name).c_str(), O_RDONLY | O_CLOEXEC));
  if (!netns.valid()) {
    const std::string why = "cannot open " + netns_path(pod.name) + ": " + std::strerror(errno);
    log_warn("agent: pod " + pod.ns + "/" + pod.name + " not sent: " + why);
    return Error(Errc::io_error, why);
  }
  const std::string request =
      inpod::encode_request(inpod::AddPod{pod.uid, {pod.name, pod.ns, pod.service_account}});
  auto ack = exchange(request, netns.get());
  if (!ack) return ack;
  if (ack->ok()) {
    sent_.insert(pod.uid);
    log_info("agent: add " + pod.ns + "/" + pod.name + " uid=" + pod.uid + ": acked");
  } else {
    log_warn("agent: add " + pod.ns + "/" + pod.name + " uid=" + pod.uid + ": ztunnel refused it: " + ack->error);
  }
  return ack;
}

void Agent::on_ztunnel_readable() {
  auto message = recv_message(ztunnel_.get(), 0);
  if (!message) return drop_ztunnel(message.error().detail);
  if (message->eof) return drop_ztunnel("ztunnel closed it");
  log_warn("agent: an unexpected message from ztunnel between requests (" + std::to_string(message->bytes.size()) +
           " bytes), ignored");
}

void Agent::serve_control() {
  UniqueFd conn(::accept4(control_listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!conn.valid()) return;
  auto message = recv_message(conn.get(), config_.control_timeout_ms);
  if (!message || message->eof) return;
  auto request = parse_control(message->bytes);
  ControlReply reply = request ? handle(*request) : ControlReply{true, false, request.error().detail};
  log_info("agent: control '" + message->bytes.substr(0, 200) + "': " + format_reply(reply));
  if (auto sent = send_message(conn.get(), format_reply(reply)); !sent) {
    log_warn("agent: could not answer a control request: " + sent.error().detail);
  }
}

ControlReply Agent::handle(const ControlRequest& request) {
  if (request.kind == ControlRequest::add) return handle_add(request.name);
  return handle_del(request.uid, request.name);
}

ControlReply Agent::handle_add(const std::string& name) {
  auto pod = read_pod(config_.state_dir, name);
  if (!pod) return {true, false, pod.error().detail};
  if (!ztunnel_.valid()) {
    return {true, true, "no ztunnel is connected; it gets pod " + name + " in its snapshot when it connects"};
  }
  if (sent_.contains(pod->uid)) return {true, true, "ztunnel already has pod " + name + " (from its snapshot)"};
  auto ack = send_add(*pod);
  if (!ack && !ztunnel_.valid()) {
    return {true, true, "the ztunnel connection failed (" + ack.error().detail + "); it gets pod " + name +
                            " in its snapshot when it reconnects"};
  }
  if (!ack) return {true, false, ack.error().detail};
  if (!ack->ok()) return {true, false, "ztunnel refused pod " + name + ": " + ack->error};
  return {true, true, "ztunnel took pod " + name + " (uid " + pod->uid + ")"};
}

ControlReply Agent::handle_del(const std::string& uid, const std::string& name) {
  if (!ztunnel_.valid()) return {true, true, "no ztunnel is connected"};
  if (!sent_.contains(uid)) return {true, true, "this ztunnel connection does not have pod " + name};
  auto ack = exchange(inpod::encode_request(inpod::DelPod{uid}), -1);
  if (!ack) {
    return {true, true, "the ztunnel connection failed (" + ack.error().detail +
                            "); its snapshot when it reconnects no longer has pod " + name};
  }
  sent_.erase(uid);
  if (!ack->ok()) {
    log_warn("agent: del " + name + " uid=" + uid + ": ztunnel refused it: " + ack->error);
    return {true, false, "ztunnel refused the del of pod " + name + ": " + ack->error};
  }
  log_info("agent: del " + name + " uid=" + uid + ": acked");
  return {true, true, "ztunnel let pod " + name + " go"};
}

}  // namespace

int run_agent(const AgentConfig& config) {
  Agent agent(config);
  if (auto started = agent.start(); !started) {
    log_error("agent: " + started.error().detail);
    return 1;
  }
  agent.run();
  return 0;
}

}  // namespace zt::cni
