// The delta xDS client (ADS): what tells a node proxy the mesh. One gRPC
// stream, DeltaAggregatedResources, to istiod over a grpc::Channel,
// subscribed to istio.workload.Address and istio.security.Authorization;
// each response is applied to the client's MeshStore and ACKed, or NACKed
// with every rejected resource's name and reason while the valid rest is
// applied; removals are applied; each change is published (MeshSource).
//
//   AdsClient ads(env, channel, readiness, registry, {.node = node_info(cfg), .metadata = token_and_cluster});
//   ads.start([&](auto snapshot) { publish(snapshot); });
//
// Reconnects (upstream's rules, plus jitter so a fleet does not reconnect
// in step): a connect that fails backs off 10 ms doubling to 15 s (measured
// from the start of the failed attempt, so a slow failure is not added to
// the wait); a stream
// that ends cleanly, or the way istiod ends streams to rebalance, reconnects
// at the first step; any other error backs off. While disconnected the last
// state keeps serving. On reconnect, initial_resource_versions names what is
// known, so istiod sends only what changed. Readiness waits for the first
// response of each type, and never again after that.
//
// On demand (XDS_ON_DEMAND, upstream's scheme): Address is subscribed to
// nothing at first ("*" subscribed and unsubscribed in one request) and
// readiness does not wait for it; demand(key) subscribes one name
// ("network/ip", a workload uid or "namespace/hostname") and tells the
// caller once a response names it (as a resource, an alias or a removal)
// or the state resolves it. A reconnect subscribes again to every name
// known or still awaited. Authorization stays a wildcard subscription.
//
// Metrics (upstream's names): istio_xds_connection_terminations_total{reason},
// istio_xds_message_total{url}, istio_xds_message_bytes_total{url}.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/control/mesh_source.h"
#include "core/control/readiness.h"
#include "core/mesh/store.h"
#include "core/metrics/registry.h"
#include "io/env.h"
#include "io/task.h"
#include "xds/grpc/call.h"
#include "xds/grpc/channel.h"

namespace envoy::service::discovery::v3 {
class DeltaDiscoveryResponse;
}

namespace zt::xds {

inline constexpr std::string_view kAddressType = "type.googleapis.com/istio.workload.Address";
inline constexpr std::string_view kAuthorizationType = "type.googleapis.com/istio.security.Authorization";
inline constexpr std::string_view kDeltaAdsPath =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

// Who we are to istiod: the node id and metadata upstream sends.
struct NodeInfo {
  std::string id;  // ztunnel~<ip>~<pod>.<ns>~<ns>.svc.cluster.local
  std::map<std::string, std::string> metadata;
};
NodeInfo node_info(const std::string& instance_ip, const std::string& pod_name, const std::string& pod_namespace,
                   const std::string& node_name, const std::map<std::string, std::string>& proxy_metadata);

struct AdsConfig {
  NodeInfo node;
  std::string authority;  // :authority (istiod's host:port)
  // The call's metadata, read on every connect (the token file rotates):
  // authorization, clusterid. An error skips the connect and backs off.
  std::function<Result<h2::Headers>()> metadata;
  Duration backoff_initial = std::chrono::milliseconds(10);
  Duration backoff_max = std::chrono::seconds(15);
  bool on_demand = false;  // XDS_ON_DEMAND
};

// What /config_dump shows of the client.
struct AdsStatus {
  bool connected = false;
  uint64_t connects = 0;
  std::string last_termination;  // why the last stream ended
  struct Nack {
    std::string type_url, nonce, detail;
    WallTime at;
  };
  std::optional<Nack> last_nack;
  uint64_t acks = 0, nacks = 0;
  std::map<std::string, size_t> known;  // type_url -> resources held
  uint64_t demanded = 0;                 // on-demand names asked for
  size_t demands_pending = 0;            // ... and not answered yet
};

class AdsClient final : public core::control::MeshSource {
 public:
  AdsClient(Env& env, grpc::Channel& channel, core::control::Readiness& readiness,
            core::metrics::Registry& metrics, AdsConfig config);
  ~AdsClient() override;

  void start(Publish publish) override;
  void stop() override;
  const AdsStatus& status() const { return status_; }
  const core::mesh::MeshStore& store() const { return store_; }

  // On demand only (AdsConfig::on_demand): asks istiod for one Address and
  // runs `answered` on this loop once it is here or istiod said it has none;
  // at once when the state resolves it already. The wait is not bounded
  // here (a disconnected client asks again on reconnect): callers bound it.
  // At most kMaxDemandsPending names wait at a time; beyond that `answered`
  // runs at once (the caller proceeds with what is known).
  void demand(std::string key, std::function<void()> answered);
  static constexpr size_t kMaxDemandsPending = 10000;

 private:
  enum class End : uint8_t { connection_error, error, reconnect, complete };
  Task<void> run();
  Task<End> session();
  std::string request_for(std::string_view type_url, bool first, const std::string& nonce,
                          const std::vector<core::mesh::Rejection>* rejected) const;
  // Applies one response; returns the rejections (empty: ACK).
  std::vector<core::mesh::Rejection> apply(const envoy::service::discovery::v3::DeltaDiscoveryResponse& r);
  // Sends queue here and leave one at a time (a gRPC call takes one send
  // at a time; ACKs and demands share the stream).
  struct Outbox;
  void enqueue(std::string message);
  Task<void> drain(grpc::ClientCall& call, Outbox& box);
  bool resolves(std::string_view key) const;
  void answer_demands(const envoy::service::discovery::v3::DeltaDiscoveryResponse& r);
  Duration jittered(Duration d);
  void count_termination(End end);

  Env& env_;
  grpc::Channel& channel_;
  core::metrics::Registry& metrics_;
  AdsConfig cfg_;
  Rng rng_;
  core::mesh::MeshStore store_;
  // type_url -> resource name -> version: what initial_resource_versions sends.
  std::map<std::string, std::map<std::string, std::string>, std::less<>> known_;
  std::map<std::string, core::control::ReadyBlock, std::less<>> first_response_;  // released on the first response
  Publish publish_;
  std::shared_ptr<const core::mesh::StateSnapshot> snapshot_;  // the last published
  // On demand: names asked for and not answered yet -> who waits.
  std::map<std::string, std::vector<std::function<void()>>, std::less<>> demanded_;
  Outbox* outbox_ = nullptr;  // the open stream's, or none
  AdsStatus status_;
  bool stopped_ = false;
  Scope scope_;  // last: the stream goes first
};

}  // namespace zt::xds
