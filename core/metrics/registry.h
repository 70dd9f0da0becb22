// A small metrics registry: counter and gauge families with label sets,
// rendered in the Prometheus text exposition format (version 0.0.4). It
// knows nothing of Istio: the families ztunnel reports are declared where
// they are counted (core/proxy/traffic_metrics.h, the app's own).
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

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zt::core::metrics {

// Label name/value pairs. The registry sorts them by name, so the order a
// caller lists them in does not change the series they name.
using Labels = std::vector<std::pair<std::string, std::string>>;

enum class MetricType : uint8_t { counter, gauge };

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

  std::map<std::string, Family, std::less<>> families_;
};

// Prometheus escaping: label values escape backslash, double quote and
// newline; HELP text escapes backslash and newline.
std::string escape_label_value(std::string_view value);
std::string escape_help(std::string_view help);
bool is_valid_metric_name(std::string_view name);
bool is_valid_label_name(std::string_view name);

}  // namespace zt::core::metrics
