// A tiny HTTP/1.1 server for the fake istiod's admin endpoints: plain
// blocking sockets, one thread, one request per connection (Connection:
// close). What each path does is the handler's business (main.cc).
//
//   AdminServer admin("127.0.0.1:0", [](const std::string& method, const std::string& path) {
//     return HttpResponse{200, "ok\n"};
//   });
//   write_port_file(file, admin.port());
//   admin.start();  ...  admin.stop();
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <thread>

namespace zt::e2e::fake_istiod {

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "text/plain";
};

using HttpHandler = std::function<HttpResponse(const std::string& method, const std::string& path)>;

class AdminServer {
 public:
  // Binds and listens at once ("ip:port", "[ipv6]:port"; port 0 picks one);
  // throws std::runtime_error naming the problem.
  AdminServer(const std::string& listen, HttpHandler handler);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  uint16_t port() const { return port_; }
  void start();
  void stop();  // unblocks the accept loop and waits for it

 private:
  void serve();
  void answer(int fd);

  HttpHandler handler_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace zt::e2e::fake_istiod
