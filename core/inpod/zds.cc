#include "core/inpod/zds.h"

#include "xds/proto/zds.pb.h"

namespace zt::core::inpod {
namespace {

namespace pb = istio::workload::zds;

Error invalid(std::string why) { return Error(Errc::invalid_argument, "ZDS: " + std::move(why)); }

}  // namespace

Result<ZdsRequest> decode_request(std::span<const uint8_t> bytes, size_t descriptors) {
  pb::WorkloadRequest req;
  if (!req.ParseFromArray(bytes.data(), int(bytes.size()))) return invalid("a WorkloadRequest that does not parse");
  const bool add = req.payload_case() == pb::WorkloadRequest::kAdd;
  if (add && descriptors != 1) {
    return invalid("an add must carry exactly one descriptor (the pod's network namespace), got " +
                   std::to_string(descriptors));
  }
  if (!add && descriptors != 0) {
    return invalid("only an add carries a descriptor, this message carried " + std::to_string(descriptors));
  }
  switch (req.payload_case()) {
    case pb::WorkloadRequest::kAdd: {
      if (req.add().uid().empty()) return invalid("an add without a uid");
      AddPod a{req.add().uid(), {}};
      if (req.add().has_workload_info()) {
        const auto& w = req.add().workload_info();
        a.info = {w.name(), w.namespace_(), w.service_account()};
      }
      return ZdsRequest(std::move(a));
    }
    case pb::WorkloadRequest::kKeep:
      if (req.keep().uid().empty()) return invalid("a keep without a uid");
      return ZdsRequest(KeepPod{req.keep().uid()});
    case pb::WorkloadRequest::kDel:
      if (req.del().uid().empty()) return invalid("a del without a uid");
      return ZdsRequest(DelPod{req.del().uid()});
    case pb::WorkloadRequest::kSnapshotSent: return ZdsRequest(SnapshotSent{});
    case pb::WorkloadRequest::PAYLOAD_NOT_SET: break;
  }
  return invalid("a WorkloadRequest without a payload");
}

std::string encode_hello() {
  pb::ZdsHello h;
  h.set_version(pb::V1);
  return h.SerializeAsString();
}

std::string encode_ack(const std::string& error) {
  pb::WorkloadResponse r;
  r.mutable_ack()->set_error(error);
  return r.SerializeAsString();
}

std::string encode_request(const ZdsRequest& request) {
  pb::WorkloadRequest req;
  if (const auto* a = std::get_if<AddPod>(&request)) {
    req.mutable_add()->set_uid(a->uid);
    if (a->info != PodInfo{}) {
      auto* w = req.mutable_add()->mutable_workload_info();
      w->set_name(a->info.name);
      w->set_namespace_(a->info.ns);
      w->set_service_account(a->info.service_account);
    }
  } else if (const auto* k = std::get_if<KeepPod>(&request)) {
    req.mutable_keep()->set_uid(k->uid);
  } else if (const auto* d = std::get_if<DelPod>(&request)) {
    req.mutable_del()->set_uid(d->uid);
  } else {
    req.mutable_snapshot_sent();
  }
  return req.SerializeAsString();
}

Result<void> decode_hello(std::span<const uint8_t> bytes) {
  pb::ZdsHello h;
  if (!h.ParseFromArray(bytes.data(), int(bytes.size()))) return invalid("a hello that does not parse");
  if (h.version() != pb::V1) {
    return invalid("hello with version " + std::to_string(int(h.version())) + ", only V1 (1) is spoken");
  }
  return ok();
}

Result<Ack> decode_ack(std::span<const uint8_t> bytes) {
  pb::WorkloadResponse r;
  if (!r.ParseFromArray(bytes.data(), int(bytes.size()))) return invalid("a WorkloadResponse that does not parse");
  if (!r.has_ack()) return invalid("a WorkloadResponse without an ack");
  return Ack{r.ack().error()};
}

}  // namespace zt::core::inpod
