// fake-istiod: plays istiod for end-to-end tests of the ztunnel binary, on
// the real gRPC C++ library (so our own gRPC, HTTP/2 and TLS meet an
// independent implementation) and OpenSSL. It serves, over TLS:
//   - delta xDS (istio.workload.Address, istio.security.Authorization) of a
//     mesh file in the local-config format, pushing edits as they happen;
//   - IstioCertificateService/CreateCertificate from its own CA;
// and plain-HTTP admin endpoints for tests to observe and disturb it:
//   GET  /status          {"streams_open","streams_opened","acks","nacks":[...],
//                          "certificates_signed","last_node_id","last_node_metadata",
//                          "last_clusterid","ca_up"}
//   POST /ca/stop          CreateCertificate fails UNAVAILABLE until /ca/start
//   POST /ca/start
//   POST /streams/reset    every open ADS stream ends UNAVAILABLE
//   POST /root/rotate      a new root signs from now on; root-cert.pem holds old + new
//                          (oldest first); istiod's own server certificate stays
//   POST /root/drop-old    root-cert.pem holds the newest root only (a client that
//                          reloads it no longer trusts istiod's server certificate)
//   POST /xds/add-invalid  serves an Address resource "invalid-resource" that is not
//                          a protobuf, besides the file's (the client must NACK it)
//
//   fake-istiod --listen 127.0.0.1:0 --port-file $D/port --state-dir $D --mesh $D/mesh.yaml
//               --admin-listen 127.0.0.1:0 --admin-port-file $D/admin-port [--token T]
//   (then, for ztunnel) XDS_ADDRESS=https://127.0.0.1:$(cat $D/port)
//   ALT_XDS_HOSTNAME=istiod.istio-system.svc XDS_ROOT_CA=$D/root-cert.pem
//
// Never links BoringSSL (zt_tls and what uses it): gRPC brings OpenSSL, and
// the two cannot share a process. SIGTERM or SIGINT: exits 0.
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>
#include <signal.h>
#include <sys/stat.h>

#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include "e2e/fake_istiod/admin_server.h"
#include "e2e/fake_istiod/ads_service.h"
#include "e2e/fake_istiod/ca.h"
#include "e2e/fake_istiod/ca_service.h"
#include "e2e/fake_istiod/journal.h"
#include "e2e/fake_istiod/mesh_file.h"
#include "e2e/fake_istiod/options.h"
#include "core/mesh/proto_encode.h"

namespace zt::e2e::fake_istiod {
namespace {

constexpr const char* istiod_dns_name = "istiod.istio-system.svc";
constexpr const char* istiod_ip = "127.0.0.1";
constexpr auto mesh_poll_interval = std::chrono::milliseconds(200);

// Readers never see a half-written file: write aside, then rename.
void write_file_atomically(const std::string& path, const std::string& content, mode_t mode) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content;
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp);
  }
  if (::chmod(tmp.c_str(), mode) != 0 || std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error("cannot move " + tmp + " to " + path);
}

void write_bundle(const Options& o, const FakeCa& ca) {
  write_file_atomically(o.state_dir + "/root-cert.pem", ca.trust_bundle_pem(), 0644);
}

// Re-reads the mesh file every mesh_poll_interval and pushes what changed.
class MeshWatcher {
 public:
  MeshWatcher(MeshFile& mesh, AdsService& ads) : mesh_(mesh), ads_(ads), thread_([this] { run(); }) {}
  ~MeshWatcher() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

 private:
  void run() {
    std::unique_lock lock(mu_);
    while (!wake_.wait_for(lock, mesh_poll_interval, [this] { return stop_; })) {
      lock.unlock();
      auto changed = mesh_.reload();
      if (!changed) {
        log_line("mesh: ", changed.error().detail, " (still serving revision ", mesh_.current()->revision, ")");
      } else if (*changed) {
        log_line("mesh: ", mesh_.path(), " changed, revision ", mesh_.current()->revision, "; pushing");
        ads_.push_all();
      }
      lock.lock();
    }
  }

  MeshFile& mesh_;
  AdsService& ads_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the rest is built
};

HttpResponse route(const std::string& method, const std::string& path, FakeCa& ca, CaService& ca_service,
                   AdsService& ads, MeshFile& mesh, Journal& journal, const Options& o) {
  if (path == "/status") {
    if (method != "GET") return {405, "GET only\n"};
    return {200, journal.status_json(ca_service.up()), "application/json"};
  }
  if (method != "POST") {
    bool known = path == "/ca/stop" || path == "/ca/start" || path == "/streams/reset" || path == "/root/rotate" ||
                 path == "/root/drop-old" || path == "/xds/add-invalid";
    return known ? HttpResponse{405, "POST only\n"} : HttpResponse{404, "no such endpoint\n"};
  }
  if (path == "/ca/stop" || path == "/ca/start") {
    ca_service.set_up(path == "/ca/start");
    log_line("ca: ", ca_service.up() ? "started" : "stopped");
    return {200, ca_service.up() ? "ca up\n" : "ca down\n"};
  }
  if (path == "/streams/reset") {
    size_t n = ads.reset_all(grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake-istiod: streams reset"));
    log_line("ads: reset ", n, " streams");
    return {200, "reset " + std::to_string(n) + " streams\n"};
  }
  if (path == "/root/rotate") {
    ca.rotate();
    write_bundle(o, ca);
    log_line("ca: rotated to root ", ca.newest_root_number(), "; trusting ", ca.trusted_roots(), " roots");
    return {200, "root " + std::to_string(ca.newest_root_number()) + " signs\n"};
  }
  if (path == "/xds/add-invalid") {
    mesh.add_raw(std::string(zt::core::mesh::address_type_url), "invalid-resource", std::string("\xff\xff\xff", 3));
    ads.push_all();
    log_line("ads: serving an invalid resource");
    return {200, "serving invalid-resource\n"};
  }
  if (path == "/root/drop-old") {
    ca.drop_old_roots();
    write_bundle(o, ca);
    log_line("ca: trusting root ", ca.newest_root_number(), " only");
    return {200, "trusting root " + std::to_string(ca.newest_root_number()) + " only\n"};
  }
  return {404, "no such endpoint\n"};
}

std::unique_ptr<grpc::Server> start_grpc(const Options& o, FakeCa& ca, AdsService& ads, CaService& ca_service,
                                         int& port) {
  FakeCa::KeyAndChain server_cert = ca.issue_server(istiod_dns_name, istiod_ip);
  grpc::SslServerCredentialsOptions tls(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  tls.pem_key_cert_pairs.push_back({server_cert.key_pem, server_cert.chain_pem});
  grpc::ServerBuilder builder;
  builder.AddListeningPort(o.listen, grpc::SslServerCredentials(tls), &port);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, int(o.min_ping_interval.count()));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.RegisterService(&ads);
  builder.RegisterService(&ca_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) throw std::runtime_error("cannot serve gRPC on " + o.listen);
  return server;
}

int wait_for_signal(const sigset_t& signals) {
  int signal = 0;
  while (sigwait(&signals, &signal) != 0) {
  }
  return signal;
}

int run(const Options& o, const sigset_t& signals) {
  MeshFile mesh(o.mesh);
  if (auto loaded = mesh.reload(); !loaded) {
    log_line("mesh: ", loaded.error().detail);
    return 2;
  }
  ::mkdir(o.state_dir.c_str(), 0755);  // may exist; writing the bundle reports real trouble
  FakeCa ca(o.root_lifetime);
  write_bundle(o, ca);
  Journal journal;
  AdsService ads(mesh, journal, o.token);
  CaService ca_service(ca, journal, o.token, o.max_cert_lifetime);
  int port = 0;
  std::unique_ptr<grpc::Server> server = start_grpc(o, ca, ads, ca_service, port);
  write_file_atomically(o.port_file, std::to_string(port) + "\n", 0644);
  AdminServer admin(o.admin_listen, [&](const std::string& method, const std::string& path) {
    return route(method, path, ca, ca_service, ads, mesh, journal, o);
  });
  admin.start();
  MeshWatcher watcher(mesh, ads);
  write_file_atomically(o.admin_port_file, std::to_string(admin.port()) + "\n", 0644);
  log_line("serving xDS and CA on ", o.listen.substr(0, o.listen.rfind(':')), ":", port, " (", istiod_dns_name,
           "), admin on port ", admin.port(), ", mesh revision ", mesh.current()->revision,
           o.token.empty() ? "" : ", bearer token required");

  int signal = wait_for_signal(signals);
  log_line("exiting on ", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  admin.stop();
  ads.reset_all(grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake-istiod: shutting down"));
  // Waits for clients to close their connections after the GOAWAY (gRPC
  // finishes shutting down only when none is left), then cuts them.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}

}  // namespace
}  // namespace zt::e2e::fake_istiod

int main(int argc, char** argv) {
  using namespace zt::e2e::fake_istiod;
  // Blocked before any thread starts, so every thread inherits the mask and
  // only sigwait() sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  auto parsed = parse_options(argc, argv);
  if (const auto* error = std::get_if<std::string>(&parsed)) {
    if (error->empty()) {
      std::cout << usage();
      return 0;
    }
    std::cerr << "fake-istiod: " << *error << "\n" << usage();
    return 2;
  }
  try {
    return run(std::get<Options>(parsed), signals);
  } catch (const std::exception& e) {
    log_line("fatal: ", e.what());
    return 1;
  }
}
