// The ztunnel binary, assembled. build() puts the parts together in
// start-up order and fails with the reason to exit; run() serves until the
// node has drained.
//
//   The control thread (io/real Runtime): admin 15000, stats 15020,
//   readiness 15021, the control plane (core/control: the mesh source, the
//   certificate source, readiness), signals and the drain.
//   ZTUNNEL_WORKER_THREADS data workers (worker.h): the pod-facing
//   listeners, each on its own loop.
//
//   auto app = App::build(cfg, environment, log, logging);
//   if (!app) return exit_code_for(app.error());
//   return (*app)->run();
#pragma once

#include <memory>
#include <vector>

#include "app/certificate_store.h"
#include "app/descriptors.h"
#include "app/config.h"
#include "app/drain.h"
#include "app/istiod.h"
#include "app/local_mesh_source.h"
#include "app/logging.h"
#include "app/metrics_scrape.h"
#include "app/signals.h"
#include "app/worker.h"
#include "core/admin/admin.h"
#include "core/control/certificate_source.h"
#include "core/control/control_plane.h"
#include "core/control/readiness.h"
#include "core/inpod/zds_client.h"
#include "core/metrics/registry.h"
#include "io/real/process_log.h"
#include "io/real/runtime.h"
#include "xds/ads_client.h"
#include "xds/ca_client.h"

namespace zt::app {

// Exit statuses: a bad setting or file is 2 (as upstream's bad flags), any
// other failure to start 1.
inline constexpr int kExitBadConfig = 2;
inline constexpr int kExitFailed = 1;
int exit_code_for(const Error& e);

class App {
 public:
  static Result<std::unique_ptr<App>> build(const Config& cfg, const EnvMap& environment, io::real::ProcessLog& log,
                                            const Logging& logging);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  // Serves until drained; returns the exit status.
  int run();

 private:
  App(const Config& cfg, io::real::ProcessLog& log, const Logging& logging);
  Result<void> build_control();
  Result<void> build_mesh_source();
  Result<void> build_certificate_source();
  void watch_roots();
  void check_roots();
  Result<void> build_workers();
  tls::TlsConfig server_tls_config();
  Result<void> build_endpoints();
  void begin_drain(std::string_view reason);
  std::string config_dump() const;

  const Config& cfg_;
  io::real::ProcessLog& log_;
  const Logging& logging_;
  io::real::Runtime rt_;  // the control loop; first: everything below uses it
  core::control::Readiness readiness_;
  core::control::ReadyBlock listeners_block_;
  core::metrics::Registry control_metrics_;
  SharedState state_;
  CertificateStore certs_;
  // The mesh source: the local file, or istiod's xDS.
  std::unique_ptr<LocalMeshSource> local_mesh_;
  std::unique_ptr<xds::grpc::Channel> xds_channel_;
  std::unique_ptr<xds::AdsClient> ads_;
  core::control::MeshSource* mesh_ = nullptr;
  // The certificate source: the fake CA, or istiod's CA.
  std::unique_ptr<core::control::FakeCaSource> fake_ca_;
  std::unique_ptr<xds::grpc::Channel> ca_channel_;
  std::unique_ptr<xds::CaClient> ca_client_;
  core::control::CertificateSource* ca_ = nullptr;
  // Root files checked for changes (root rotation): path -> content last read.
  std::map<std::string, std::string> root_files_;
  std::optional<IstiodAddress> xds_address_, ca_address_;
  TimerId roots_timer_ = kNoTimer;
  std::unique_ptr<core::control::ControlPlane> control_;
  std::unique_ptr<DescriptorBudget> budget_;  // before the workers, which draw from it
  uint64_t budget_refused_seen_ = 0;
  TimerId budget_timer_ = kNoTimer;
  void count_budget_refusals();
  std::vector<std::unique_ptr<Worker>> workers_;  // joined before the control plane goes
  // In-pod mode: the ZDS client on this thread, and which worker runs each pod.
  class PodPlacement;
  std::unique_ptr<PodPlacement> placement_;
  std::unique_ptr<core::inpod::ZdsClient> zds_;
  core::control::ReadyBlock inpod_block_;
  Result<void> build_inpod();
  std::unique_ptr<MetricsScrape> scrape_;
  std::unique_ptr<Drain> drain_;
  std::vector<std::unique_ptr<core::admin::AdminServer>> servers_;
  std::unique_ptr<SignalWatcher> signals_;
};

}  // namespace zt::app
