#include "e2e/fake_istiod/admin_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "e2e/fake_istiod/journal.h"

namespace zt::e2e::fake_istiod {

namespace {

// A request head larger than this is not one of ours.
constexpr size_t head_bytes_max = 64 * 1024;
constexpr size_t body_bytes_max = 1024 * 1024;

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 400: return "Bad Request";
    default: return "Internal Server Error";
  }
}

void send_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;  // the client left; nothing to tell
    off += size_t(n);
  }
}

// "ip:port" or "[ipv6]:port" -> (host, port).
std::pair<std::string, std::string> split_host_port(const std::string& listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("--admin-listen: expected ip:port, got '" + listen + "'");
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return {host, listen.substr(colon + 1)};
}

}  // namespace

AdminServer::AdminServer(const std::string& listen, HttpHandler handler) : handler_(std::move(handler)) {
  auto [host, port] = split_host_port(listen);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0)
    throw std::runtime_error("--admin-listen " + listen + ": " + gai_strerror(rc));
  listen_fd_ = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  bool ok = listen_fd_ >= 0 && setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
            ::bind(listen_fd_, found->ai_addr, found->ai_addrlen) == 0 && ::listen(listen_fd_, 16) == 0;
  freeaddrinfo(found);
  if (!ok) throw std::runtime_error("--admin-listen " + listen + ": " + std::strerror(errno));
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

AdminServer::~AdminServer() {
  stop();
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void AdminServer::start() { thread_ = std::thread([this] { serve(); }); }

void AdminServer::stop() {
  if (!thread_.joinable()) return;
  ::shutdown(listen_fd_, SHUT_RDWR);  // wakes the blocked accept()
  thread_.join();
}

void AdminServer::serve() {
  for (;;) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // the listener was shut down
    }
    // A client that never finishes its request must not hold the one thread.
    timeval timeout{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    answer(fd);
    ::close(fd);
  }
}

void AdminServer::answer(int fd) {
  std::string data;
  size_t head_end = std::string::npos;
  char buf[4096];
  while ((head_end = data.find("\r\n\r\n")) == std::string::npos && data.size() < head_bytes_max) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return;
    data.append(buf, size_t(n));
  }
  if (head_end == std::string::npos) return;
  const std::string head = data.substr(0, head_end);
  // Read the body, unused, so closing never resets the connection under the
  // client before it reads the answer.
  size_t body_bytes = 0;
  for (size_t at = head.find("\r\n"); at != std::string::npos; at = head.find("\r\n", at + 2)) {
    std::string line = head.substr(at + 2, head.find("\r\n", at + 2) - at - 2);
    if (strncasecmp(line.c_str(), "content-length:", 15) == 0)
      body_bytes = std::strtoul(line.c_str() + 15, nullptr, 10);
  }
  size_t have = data.size() - head_end - 4;
  while (have < body_bytes && body_bytes <= body_bytes_max) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    have += size_t(n);
  }

  HttpResponse response;
  size_t sp1 = head.find(' '), sp2 = head.find(' ', sp1 == std::string::npos ? 0 : sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos) {
    response = {400, "bad request line\n"};
  } else {
    std::string method = head.substr(0, sp1);
    std::string path = head.substr(sp1 + 1, sp2 - sp1 - 1);
    path = path.substr(0, path.find('?'));
    response = handler_(method, path);
    log_line("admin: ", method, " ", path, " -> ", response.status);
  }
  send_all(fd, "HTTP/1.1 " + std::to_string(response.status) + " " + reason(response.status) +
                   "\r\nContent-Type: " + response.content_type + "\r\nContent-Length: " +
                   std::to_string(response.body.size()) + "\r\nConnection: close\r\n\r\n" + response.body);
  ::shutdown(fd, SHUT_WR);
}

}  // namespace zt::e2e::fake_istiod
