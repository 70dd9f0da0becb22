// ZDS: how the CNI node agent (istio-cni) enrolls pods with ztunnel in
// in-pod mode (xds/proto/zds.proto; docs/PROTOCOL.md "ZDS"). ztunnel says
// hello; the agent sends one WorkloadRequest per SOCK_SEQPACKET message, an
// add carrying exactly one descriptor (the pod's network namespace); each is
// answered with an Ack whose error is empty on success.
//
// This file is the protocol's meaning, checked before anything acts on it,
// and free of the OS: the descriptors themselves stay with the transport
// (io/real), which passes only how many came with the message.
//
//   Result<ZdsRequest> r = decode_request(bytes, descriptors_received);
//   if (!r) send(encode_ack(r.error().message()));   // and close the descriptors
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <variant>

#include "io/result.h"

namespace zt::core::inpod {

// Who the pod is (WorkloadInfo), as the agent names it.
struct PodInfo {
  std::string name, ns, service_account;
  bool operator==(const PodInfo&) const = default;
};

struct AddPod {
  std::string uid;
  PodInfo info;  // empty when the agent sent none (older agents)
  // The pod's network namespace is the one descriptor that came with it;
  // the transport fills in its identity (NetNamespace::id) after decoding,
  // so a pod re-sent after a reconnect is told from a recreated sandbox.
  std::string netns_id;
};
struct KeepPod {
  std::string uid;
};
struct DelPod {
  std::string uid;
};
// The agent has sent every pod it knows (the end of a connection's
// snapshot): pods neither added nor kept since the connection began go.
struct SnapshotSent {};

using ZdsRequest = std::variant<AddPod, KeepPod, DelPod, SnapshotSent>;

// Decodes one message. Errors name what is wrong: bytes that do not parse,
// no payload, an empty uid, an add without exactly one descriptor, any
// other message with descriptors.
Result<ZdsRequest> decode_request(std::span<const uint8_t> bytes, size_t descriptors);

std::string encode_hello();                         // ZdsHello{version: V1}
std::string encode_ack(const std::string& error);   // WorkloadResponse{ack{error}}
// For peers in tests (the CNI stand-in): a request's bytes.
std::string encode_request(const ZdsRequest& request);

// The agent's side (the CNI stand-in, cni/): what ztunnel sends it.

// ZdsHello: ok only for V1; an error names the version received otherwise.
Result<void> decode_hello(std::span<const uint8_t> bytes);

// ztunnel's answer to one request: an empty error means it took the request.
struct Ack {
  std::string error;
  bool ok() const { return error.empty(); }
};
// WorkloadResponse{ack}: an error when the bytes do not parse or carry no ack.
Result<Ack> decode_ack(std::span<const uint8_t> bytes);

}  // namespace zt::core::inpod
