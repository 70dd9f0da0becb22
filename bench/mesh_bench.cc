// Mesh state benchmarks: endpoint choice over 10 / 1,000 / 10,000 endpoints,
// authorization against 10,000 applicable policies, applying 10,000
// workloads and 1,000 services from xDS bytes, and memory per workload.
//
//   ./build/release/bench/mesh_bench
//   ./build/release/bench/mesh_bench --benchmark_filter=Choose
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <new>

#include "core/mesh/lb.h"
#include "core/mesh/rbac.h"
#include "core/mesh/routing.h"
#include "core/mesh/store.h"

// Counts live heap bytes, so a benchmark can report memory per workload.
namespace {
size_t g_live_bytes = 0;
constexpr size_t kHeader = 16;  // keeps malloc's 16-byte alignment
}  // namespace

void* operator new(size_t n) {
  auto* p = static_cast<char*>(std::malloc(n + kHeader));
  if (!p) throw std::bad_alloc();
  *reinterpret_cast<size_t*>(p) = n;
  g_live_bytes += n;
  return p + kHeader;
}
void operator delete(void* p) noexcept {
  if (!p) return;
  char* base = static_cast<char*>(p) - kHeader;
  g_live_bytes -= *reinterpret_cast<size_t*>(base);
  std::free(base);
}
void* operator new[](size_t n) { return operator new(n); }
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete(void* p, size_t) noexcept { operator delete(p); }
void operator delete[](void* p, size_t) noexcept { operator delete(p); }

namespace zt::bench {
namespace {

using namespace core::mesh;

IpAddr nth_ip(uint32_t n, uint8_t first = 10) {
  return IpAddr::v4(first, uint8_t(n >> 16), uint8_t(n >> 8), uint8_t(n));
}

// A realistic pod: 40-odd character uid, one IP, one service.
Workload pod(uint32_t i, const NamespacedHostname& service) {
  Workload w;
  w.uid = "Kubernetes//Pod/namespace-" + std::to_string(i % 50) + "/deployment-7d4b9c-" + std::to_string(i);
  w.name = "deployment-7d4b9c-" + std::to_string(i);
  w.ns = "namespace-" + std::to_string(i % 50);
  w.service_account = "app-" + std::to_string(i % 100);
  w.node = "node-" + std::to_string(i % 200);
  w.canonical_name = "app";
  w.canonical_revision = "v1";
  w.workload_name = "deployment";
  w.ips = {nth_ip(i)};
  w.protocol = InboundProtocol::hbone;
  w.locality = {"region-" + std::to_string(i % 3), "zone-" + std::to_string(i % 9), ""};
  w.services[service] = {{80, 8080}};
  return w;
}

void BM_ChooseEndpoint(benchmark::State& state) {
  const auto endpoints = uint32_t(state.range(0));
  const bool failover = state.range(1) != 0;
  MeshStore store;
  NamespacedHostname key{"ns", "svc.ns.svc.cluster.local"};
  for (uint32_t i = 0; i < endpoints; ++i) store.upsert_workload(pod(i, key));
  Service svc;
  svc.ns = key.ns;
  svc.hostname = key.hostname;
  svc.ports = {{80, 8080}};
  if (failover) svc.load_balancer = LoadBalancer{{LbScope::region, LbScope::zone}, LbMode::failover, {}};
  auto snap = store.publish();
  Workload src = pod(1, key);
  Rng rng(1);
  for (auto _ : state) {
    auto choice = choose_endpoint(*snap, src, svc, 80, ResolutionMode::standard, rng);
    benchmark::DoNotOptimize(choice);
  }
  state.SetLabel(failover ? "failover region,zone" : "standard");
}
BENCHMARK(BM_ChooseEndpoint)->ArgsProduct({{10, 1000, 10000}, {0, 1}});

void BM_Authorize10kPolicies(benchmark::State& state) {
  MeshStore store;
  for (int i = 0; i < 10000; ++i) {
    Authorization a;
    a.name = "policy-" + std::to_string(i);
    a.ns = "apps";
    a.scope = RbacScope::ns;
    a.action = i % 10 == 0 ? RbacAction::deny : RbacAction::allow;
    RbacMatch m;
    m.principals = {{StringMatch::Kind::exact, "cluster.local/ns/other/sa/caller-" + std::to_string(i)}};
    m.destination_ports = {uint16_t(8000 + i % 100)};
    a.rules = {{{m}}};
    store.upsert_policy(a.key(), a);
  }
  auto snap = store.publish();
  Workload dst;
  dst.uid = "dst";
  dst.ns = "apps";
  // Matches only the last ALLOW policy: every policy is evaluated.
  Connection conn{{IpAddr::v4(10, 0, 0, 1), 40000}, {IpAddr::v4(10, 0, 0, 2), 8099},
                  Identity{"cluster.local", "other", "caller-9999"}, ""};
  for (auto _ : state) {
    auto policies = snap->policies_for(dst);
    Decision d = authorize(policies, conn);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_Authorize10kPolicies)->Unit(benchmark::kMicrosecond);

std::vector<NamedResource> encoded_mesh(uint32_t workloads, uint32_t services) {
  std::vector<NamedResource> out;
  for (uint32_t s = 0; s < services; ++s) {
    istio::workload::Address a;
    auto* svc = a.mutable_service();
    svc->set_name("svc-" + std::to_string(s));
    svc->set_namespace_("ns");
    svc->set_hostname("svc-" + std::to_string(s) + ".ns.svc.cluster.local");
    IpAddr vip = nth_ip(s, 172);
    svc->add_addresses()->set_address(std::string(reinterpret_cast<const char*>(vip.data()), 4));
    auto* port = svc->add_ports();
    port->set_service_port(80);
    port->set_target_port(8080);
    out.push_back({"ns/" + svc->hostname(), a.SerializeAsString()});
  }
  for (uint32_t i = 0; i < workloads; ++i) {
    Workload w = pod(i, {"ns", "svc-" + std::to_string(i % services) + ".ns.svc.cluster.local"});
    istio::workload::Address a;
    auto* p = a.mutable_workload();
    p->set_uid(w.uid);
    p->set_name(w.name);
    p->set_namespace_(w.ns);
    p->set_service_account(w.service_account);
    p->set_node(w.node);
    p->set_tunnel_protocol(istio::workload::HBONE);
    p->add_addresses(std::string(reinterpret_cast<const char*>(w.ips[0].data()), 4));
    auto* ports = (*p->mutable_services())[w.services.begin()->first.to_string()].add_ports();
    ports->set_service_port(80);
    ports->set_target_port(8080);
    out.push_back({w.uid, a.SerializeAsString()});
  }
  return out;
}

void BM_Apply10kWorkloads1kServices(benchmark::State& state) {
  auto resources = encoded_mesh(10000, 1000);
  for (auto _ : state) {
    MeshStore store;
    auto rejected = store.apply_address_delta(resources, {});
    auto snap = store.publish();
    benchmark::DoNotOptimize(snap);
    if (!rejected.empty()) state.SkipWithError("rejected resources");
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(resources.size()));
}
BENCHMARK(BM_Apply10kWorkloads1kServices)->Unit(benchmark::kMillisecond);

// One update after a full load: what a single xDS push costs (copy-on-write).
void BM_ApplyOneWorkloadAfter10k(benchmark::State& state) {
  auto resources = encoded_mesh(10000, 1000);
  MeshStore store;
  (void)store.apply_address_delta(resources, {});
  (void)store.publish();
  std::span<const NamedResource> one(&resources.back(), 1);
  for (auto _ : state) {
    (void)store.apply_address_delta(one, {});
    benchmark::DoNotOptimize(store.publish());
  }
}
BENCHMARK(BM_ApplyOneWorkloadAfter10k)->Unit(benchmark::kMicrosecond);

void BM_MemoryPerWorkload(benchmark::State& state) {
  for (auto _ : state) {
    size_t before = g_live_bytes;
    {
      MeshStore store;
      NamespacedHostname key{"ns", "svc.ns.svc.cluster.local"};
      for (uint32_t i = 0; i < 10000; ++i) store.upsert_workload(pod(i, key));
      auto snap = store.publish();
      state.counters["bytes_per_workload"] = double(g_live_bytes - before) / 10000.0;
    }
  }
}
BENCHMARK(BM_MemoryPerWorkload)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace zt::bench

BENCHMARK_MAIN();
