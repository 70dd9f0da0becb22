// Delta ADS (envoy.service.discovery.v3.AggregatedDiscoveryService/
// DeltaAggregatedResources) as istiod serves it, on gRPC's callback API.
//
// Per stream and type URL: the first request subscribes (no names, or "*",
// is the wildcard; other names subscribe to just those) and is always
// answered, even with nothing, since clients wait for that first answer
// before they call themselves ready: every subscribed resource whose
// version differs from the request's initial_resource_versions, and
// removed_resources for names it claims that no longer exist. Later
// requests carrying response_nonce are ACKs, or NACKs when error_detail is
// set (journaled); subscription changes are answered with what the new
// names lack. push_all() sends every stream what changed in the mesh since
// that stream last heard. Each response has a fresh nonce.
//
//   AdsService ads(mesh_file, journal, token);
//   builder.RegisterService(&ads);
//   ... on a mesh change: ads.push_all();
//   ... POST /streams/reset: ads.reset_all(grpc::Status(grpc::StatusCode::UNAVAILABLE, "reset"));
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "e2e/fake_istiod/journal.h"
#include "e2e/fake_istiod/mesh_file.h"
#include "xds/proto/xds.grpc.pb.h"

namespace zt::e2e::fake_istiod {

class DeltaStream;

class AdsService final : public envoy::service::discovery::v3::AggregatedDiscoveryService::CallbackService {
 public:
  AdsService(const MeshFile& mesh, Journal& journal, std::string token);

  grpc::ServerBidiReactor<envoy::service::discovery::v3::DeltaDiscoveryRequest,
                          envoy::service::discovery::v3::DeltaDiscoveryResponse>*
  DeltaAggregatedResources(grpc::CallbackServerContext* ctx) override;

  void push_all();
  // Ends every open stream with `status`; returns how many it ended.
  size_t reset_all(const grpc::Status& status);

 private:
  friend class DeltaStream;
  void opened(const std::shared_ptr<DeltaStream>& stream);
  // Hands back the stream's ownership (null if it never opened).
  std::shared_ptr<DeltaStream> closed(DeltaStream* stream);
  std::string next_nonce();

  const MeshFile& mesh_;
  Journal& journal_;
  const std::string token_;
  std::mutex mu_;
  // Open streams own themselves through this map until gRPC is done with
  // them (OnDone); push_all and reset_all work on copies of it.
  std::map<DeltaStream*, std::shared_ptr<DeltaStream>> streams_;
  uint64_t nonces_ = 0;
  uint64_t stream_ids_ = 0;
};

}  // namespace zt::e2e::fake_istiod
