// The control plane, timed on real sockets: how long a node takes from
// istiod's first answer to ready, and how fast it gets its certificates.
// istiod is the test istiod (testing/sim_istiod.h, our gRPC server; it runs
// on any Env) on its own thread and loop, over TLS on loopback; the node is
// the real AdsClient + CaClient + ControlPlane on another.
//
//   ./build/release/bench/control_bench                 # 100 identities, 5 runs
//   ./build/release/bench/control_bench 1000 3          # identities, runs
//
// Figures (medians): state applied after start, ready after the state, and
// certificates per second (each a fresh P-256 key, a CSR, a signature by
// istiod and a chain check; at most 8 in flight, as upstream).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "core/control/control_plane.h"
#include "io/real/runtime.h"
#include "testing/mesh_fixtures.h"
#include "testing/sim_istiod.h"
#include "testing/tls_test_util.h"
#include "xds/ads_client.h"
#include "xds/ca_client.h"

namespace zt::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Figures {
  double state_ms = 0, ready_after_state_ms = 0, certs_per_second = 0;
};

std::string ip_of(size_t i) { return "10.1." + std::to_string(i / 250) + "." + std::to_string(1 + i % 250); }

Figures run_once(size_t identities) {
  io::real::Runtime istiod_rt(1);
  io::real::Runtime node_rt(2);
  testing::TlsWorld tls(istiod_rt.env().clock.wall_now());
  auto listener = istiod_rt.env().net.listen(*Endpoint::parse("127.0.0.1:0"), {});
  if (!listener) {
    std::fprintf(stderr, "listen: %s\n", listener.error().message().c_str());
    std::exit(1);
  }
  const Endpoint at = (*listener)->local();
  auto istiod = std::make_unique<testing::SimIstiod>(istiod_rt.env(), std::move(*listener), tls.server());
  auto mesh_ca = tls::Ca::create({}, Rng(3), istiod_rt.env().clock.wall_now());
  std::vector<tls::Certificate> roots = mesh_ca->trust_bundle();
  istiod->serve_ca(std::move(*mesh_ca));
  for (size_t i = 0; i < identities; ++i) {
    istio::workload::Workload w = testing::workload_proto("uid-" + std::to_string(i), ip_of(i));
    w.set_service_account("sa-" + std::to_string(i));
    w.set_node("node-a");
    istiod->set(xds::kAddressType, w.uid(), testing::address_of(w).SerializeAsString());
  }
  istiod->start();
  istiod_rt.keep_alive(true);
  std::thread istiod_thread([&] { istiod_rt.run(); });

  Env& env = node_rt.env();
  xds::grpc::ChannelConfig cc;
  cc.address = at;
  cc.authority = "istiod.istio-system.svc:15012";
  cc.tls = tls.client();
  xds::grpc::Channel xds_channel(env, cc), ca_channel(env, cc);
  core::control::Readiness readiness;
  core::metrics::Registry metrics;
  xds::AdsConfig ads_cfg;
  ads_cfg.node = xds::node_info("10.0.0.1", "ztunnel", "istio-system", "node-a", {});
  ads_cfg.authority = cc.authority;
  ads_cfg.metadata = [] { return Result<h2::Headers>(h2::Headers{{"clusterid", "Kubernetes"}}); };
  xds::AdsClient ads(env, xds_channel, readiness, metrics, ads_cfg);
  xds::CaClientConfig ca_cfg;
  ca_cfg.authority = cc.authority;
  ca_cfg.metadata = ads_cfg.metadata;
  ca_cfg.roots = roots;
  xds::CaClient ca(env, ca_channel, ca_cfg);

  Clock::time_point state_at{}, ready_at{};
  size_t certificates = 0;
  core::control::ControlPlaneOutputs out;
  out.on_state = [&](std::shared_ptr<const core::mesh::StateSnapshot> s) {
    if (state_at == Clock::time_point{} && s->workloads().by_uid.size() == identities) state_at = Clock::now();
  };
  out.on_certificate = [&](const std::string&, std::shared_ptr<const tls::Credentials>) { ++certificates; };
  out.on_forget = [](const std::string&) {};
  core::control::ControlPlaneConfig cp_cfg;
  cp_cfg.node_name = "node-a";
  core::control::ControlPlane cp(env, ads, ca, readiness, cp_cfg, std::move(out));
  const Clock::time_point start = Clock::now();
  cp.start();
  node_rt.run_until([&] { return readiness.ready(); }, std::chrono::minutes(5));
  ready_at = Clock::now();
  if (!readiness.ready() || certificates < identities) {
    std::fprintf(stderr, "not ready after 5 minutes (%zu of %zu certificates)\n", certificates, identities);
    std::exit(1);
  }
  cp.stop();
  istiod_rt.stop();
  istiod_thread.join();
  auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  Figures f;
  f.state_ms = ms(state_at - start);
  f.ready_after_state_ms = ms(ready_at - state_at);
  f.certs_per_second = double(identities) / (ms(ready_at - state_at) / 1000.0);
  return f;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace
}  // namespace zt::bench

int main(int argc, char** argv) {
  const size_t identities = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100;
  const int runs = argc > 2 ? std::atoi(argv[2]) : 5;
  std::vector<double> state, ready, rate;
  for (int i = 0; i < runs; ++i) {
    zt::bench::Figures f = zt::bench::run_once(identities);
    state.push_back(f.state_ms);
    ready.push_back(f.ready_after_state_ms);
    rate.push_back(f.certs_per_second);
  }
  std::printf("control plane, %zu local identities, %d runs (medians)\n", identities, runs);
  std::printf("  xDS state applied after start:   %8.1f ms\n", zt::bench::median(state));
  std::printf("  ready after the state:           %8.1f ms\n", zt::bench::median(ready));
  std::printf("  certificates per second:         %8.1f\n", zt::bench::median(rate));
  return 0;
}
