// The request headers an HBONE client sends with CONNECT (docs/PROTOCOL.md):
// forwarded (the original source), baggage (who the source is, for the
// destination's telemetry) and traceparent (W3C trace context).
//
//   h2::Headers hs = request_headers(src, rng);
//   // forwarded: for="10.0.0.1:51234"
//   // baggage: k8s.cluster.name=Kubernetes,k8s.namespace.name=default,...
//   // traceparent: 00-<32 hex>-<16 hex>-00
#pragma once

#include <map>
#include <optional>
#include <string>

#include "h2/connection.h"
#include "io/rng.h"

namespace zt::core::hbone {

struct SourceInfo {
  Endpoint address;                   // the client's ip:port
  std::optional<std::string> host;    // the service hostname, when known (forwarded;host=)
  std::string cluster;                // k8s.cluster.name
  std::string ns;                     // k8s.namespace.name
  std::string workload_type = "deployment";  // k8s.<type>.name
  std::string workload_name;
  std::string canonical_name;         // service.name
  std::string canonical_revision;     // service.version
  std::string region, zone;           // cloud.region, cloud.availability_zone
};

std::string forwarded(const SourceInfo& src);
std::string baggage(const SourceInfo& src);
// A fresh traceparent: version 00, random trace and span ids, flags 00.
std::string traceparent(Rng& rng);
h2::Headers request_headers(const SourceInfo& src, Rng& rng);

// Server side: the `for=` address of a forwarded header, and baggage as a map
// (malformed members are skipped, never fatal).
std::optional<Endpoint> forwarded_for(std::string_view header);
std::map<std::string, std::string> parse_baggage(std::string_view header);

}  // namespace zt::core::hbone
