// Test-only helpers: compact builders for xDS protos and model values.
//
//   auto w = make_workload("uid-a", "ns1", {ip("10.0.0.1")});
//   store.upsert_workload(w);
//   istio::workload::Address a = address_of(workload_proto("uid-a", "10.0.0.1"));
#pragma once

#include <string>
#include <vector>

#include "core/mesh/model.h"
#include "xds/proto/authorization.pb.h"
#include "xds/proto/workload.pb.h"

namespace zt::testing {

using core::mesh::Service;
using core::mesh::InboundProtocol;
using core::mesh::NetworkAddress;
using core::mesh::PortMap;
using core::mesh::Workload;

inline IpAddr ip(std::string_view text) { return *IpAddr::parse(text); }
inline zt::Endpoint ep(std::string_view text) { return *zt::Endpoint::parse(text); }

inline std::string raw(std::string_view ip_text) {
  IpAddr a = ip(ip_text);
  return std::string(reinterpret_cast<const char*>(a.data()), a.size());
}

inline Workload make_workload(std::string uid, std::string ns, std::vector<IpAddr> ips,
                              InboundProtocol protocol = InboundProtocol::hbone) {
  Workload w;
  w.uid = std::move(uid);
  w.name = w.uid;
  w.ns = std::move(ns);
  w.ips = std::move(ips);
  w.protocol = protocol;
  return w;
}

inline Service make_service(std::string ns, std::string hostname, std::vector<NetworkAddress> vips, PortMap ports) {
  Service s;
  s.name = hostname.substr(0, hostname.find('.'));
  s.ns = std::move(ns);
  s.hostname = std::move(hostname);
  s.vips = std::move(vips);
  s.ports = std::move(ports);
  return s;
}

inline istio::workload::Workload workload_proto(const std::string& uid, const std::string& ip_text) {
  istio::workload::Workload w;
  w.set_uid(uid);
  w.set_name(uid);
  w.set_namespace_("default");
  w.add_addresses(raw(ip_text));
  w.set_tunnel_protocol(istio::workload::HBONE);
  return w;
}

inline istio::workload::Service service_proto(const std::string& ns, const std::string& host,
                                              const std::string& vip, uint32_t port, uint32_t target) {
  istio::workload::Service s;
  s.set_name(host.substr(0, host.find('.')));
  s.set_namespace_(ns);
  s.set_hostname(host);
  auto* a = s.add_addresses();
  a->set_address(raw(vip));
  auto* p = s.add_ports();
  p->set_service_port(port);
  p->set_target_port(target);
  return s;
}

inline istio::workload::Address address_of(const istio::workload::Workload& w) {
  istio::workload::Address a;
  *a.mutable_workload() = w;
  return a;
}

inline istio::workload::Address address_of(const istio::workload::Service& s) {
  istio::workload::Address a;
  *a.mutable_service() = s;
  return a;
}

}  // namespace zt::testing
