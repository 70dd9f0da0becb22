// A small metrics registry: counter and gauge families with label sets,
// rendered in the Prometheus text exposition format (version 0.0.4).
//
// Output is deterministic: families sorted by name, series by their labels
// (label names sorted, then values), so equal states render byte for byte
// equal, in io/sim traces as in tests.
//
//   Registry reg;
//   reg.declare("istio_tcp_connections_opened_total", MetricType::counter, "Connections opened");
//   Labels labels = {{"reporter", "source"}, {"request_protocol", "tcp"}};
//   reg.counter("istio_tcp_connections_opened_total", labels).inc();
//   std::string text = reg.render();
//
// Metric and label names come from code, so a malformed one is a broken
// contract (ZT_ASSERT); label values may come from peers and are escaped.
// Counter/Gauge references stay valid for the registry's lifetime.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zt::admin {

// Label name/value pairs. The registry sorts them by name, so the order a
// caller lists them in does not change the series they name.
using Labels = std::vector<std::pair<std::string, std::string>>;

enum class MetricType : uint8_t { counter, gauge };

// The labels of the istio_tcp_* series, as upstream names them. Unknown
// values are "unknown", as upstream reports them.
struct TrafficLabels {
  std::string reporter = "unknown";  // "source" (outbound) or "destination" (inbound)
  std::string source_workload = "unknown";
  std::string source_canonical_service = "unknown";
  std::string source_canonical_revision = "unknown";
  std::string source_workload_namespace = "unknown";
  std::string source_principal = "unknown";
  std::string source_app = "unknown";
  std::string source_version = "unknown";
  std::string source_cluster = "unknown";
  std::string destination_service = "unknown";
  std::string destination_service_namespace = "unknown";
  std::string destination_service_name = "unknown";
  std::string destination_workload = "unknown";
  std::string destination_canonical_service = "unknown";
  std::string destination_canonical_revision = "unknown";
  std::string destination_workload_namespace = "unknown";
  std::string destination_principal = "unknown";
  std::string destination_app = "unknown";
  std::string destination_version = "unknown";
  std::string destination_cluster = "unknown";
  std::string request_protocol = "tcp";
  std::string response_flags = "-";
  std::string connection_security_policy = "unknown";  // or "mutual_tls"

  Labels to_labels() const;
  auto operator<=>(const TrafficLabels&) const = default;
  bool operator==(const TrafficLabels&) const = default;
};

class Counter {
 public:
  void inc(uint64_t n = 1) { value_ += n; }
  uint64_t value() const { return value_; }

 private:
  uint64_t value_ = 0;
};

class Gauge {
 public:
  void set(int64_t v) { value_ = v; }
  void add(int64_t delta) { value_ += delta; }
  int64_t value() const { return value_; }

 private:
  int64_t value_ = 0;
};

class Registry {
 public:
  // Declares a family with its help text. Declaring it again with the same
  // type updates the help; with another type is a broken contract.
  void declare(std::string_view name, MetricType type, std::string_view help);

  // The series of `family` with these labels, created at 0 on first use (the
  // family too, with no help text, when it was never declared).
  Counter& counter(std::string_view family, Labels labels);
  Gauge& gauge(std::string_view family, Labels labels);
  // The same series as counter(family, labels.to_labels()), remembered per
  // label set: the data path reports every connection with 23 labels, and
  // building, sorting and comparing them cost more than the rest of the
  // report. The first use for a family and label set creates the series,
  // as counter() does.
  Counter& traffic_counter(std::string_view family, const TrafficLabels& labels);

  // The series of one traffic label set, for every family: found with one
  // lookup and kept by a connection's report, which counts in up to four
  // families (opened, closed, bytes both ways), so the 23 labels are
  // compared once per connection, not once per family. A family's series
  // is still created on its first use. The reference stays valid for the
  // registry's lifetime (not into a copy of it).
  class TrafficSeries {
   public:
    Counter& counter(std::string_view family);

   private:
    friend class Registry;
    TrafficSeries(Registry& registry, const TrafficLabels& labels) : registry_(&registry), labels_(&labels) {}
    Registry* registry_;
    const TrafficLabels* labels_;  // the cache's key, a map node: stable
    std::vector<std::pair<std::string, Counter*>> by_family_;
  };
  TrafficSeries& traffic_series(const TrafficLabels& labels);

  // Number of series in a family (0 when unknown); for tests and limits.
  size_t series_count(std::string_view family) const;

  // The whole registry as Prometheus text (text/plain; version=0.0.4).
  std::string render() const;

  // Adds `other`'s series into this one (counters and gauges summed,
  // families and help taken over when missing): how the binary reports one
  // set of metrics from per-thread registries.
  void merge(const Registry& other);

 private:
  struct Series {
    Counter counter;
    Gauge gauge;
  };
  struct Family {
    MetricType type = MetricType::counter;
    std::string help;
    std::map<Labels, Series> series;
  };

  Family& family(std::string_view name, MetricType type);
  Series& series(std::string_view family, MetricType type, Labels labels);

  // Series of families_ by traffic label set and family name. Pointers
  // into families_ are stable (map nodes, never erased), but they are this
  // registry's own: a copy or a move starts with an empty cache.
  struct TrafficCache {
    TrafficCache() = default;
    TrafficCache(const TrafficCache&) {}
    TrafficCache& operator=(const TrafficCache&) {
      by_labels.clear();
      return *this;
    }
    std::map<TrafficLabels, TrafficSeries> by_labels;
  };

  std::map<std::string, Family, std::less<>> families_;
  TrafficCache traffic_cache_;
};

// Prometheus escaping: label values escape backslash, double quote and
// newline; HELP text escapes backslash and newline.
std::string escape_label_value(std::string_view value);
std::string escape_help(std::string_view help);
bool is_valid_metric_name(std::string_view name);
bool is_valid_label_name(std::string_view name);

// --- ztunnel's metrics (PROTOCOL.md, Metrics) ---

inline constexpr std::string_view kTcpConnectionsOpened = "istio_tcp_connections_opened_total";
inline constexpr std::string_view kTcpConnectionsClosed = "istio_tcp_connections_closed_total";
inline constexpr std::string_view kTcpConnectionsFailed = "istio_tcp_connections_failed_total";
inline constexpr std::string_view kTcpSentBytes = "istio_tcp_sent_bytes_total";
inline constexpr std::string_view kTcpReceivedBytes = "istio_tcp_received_bytes_total";
inline constexpr std::string_view kXdsConnectionTerminations = "istio_xds_connection_terminations_total";
inline constexpr std::string_view kXdsMessages = "istio_xds_message_total";
inline constexpr std::string_view kDnsRequests = "istio_dns_requests_total";
inline constexpr std::string_view kBuild = "istio_build";

// Declares every family above with its type and help text.
void declare_istio_metrics(Registry& reg);

// istio_build{component="ztunnel",tag="<tag>"} 1
void set_build_info(Registry& reg, std::string_view tag);


}  // namespace zt::admin
