// The istio_tcp_* families: upstream's label names, and the per-label-set
// series cache over a generic registry.
#include "core/proxy/traffic_metrics.h"

#include <gtest/gtest.h>

namespace zt::core::proxy {
namespace {

using metrics::Registry;

TEST(TrafficMetrics, RendersUpstreamsFamiliesAndLabels) {
  Registry reg;
  TrafficMetrics m(reg);
  TrafficLabels labels;
  labels.reporter = "source";
  labels.source_workload = "client";
  labels.destination_service = "server.ns.svc.cluster.local";
  labels.connection_security_policy = "mutual_tls";
  m.series(labels).counter(TrafficFamily::opened).inc();
  m.series(labels).counter(TrafficFamily::sent_bytes).inc(1024);
  const std::string text = reg.render();
  const std::string series =
      "{connection_security_policy=\"mutual_tls\",destination_app=\"unknown\",destination_canonical_revision="
      "\"unknown\",destination_canonical_service=\"unknown\",destination_cluster=\"unknown\",destination_principal="
      "\"unknown\",destination_service=\"server.ns.svc.cluster.local\",destination_service_name=\"unknown\","
      "destination_service_namespace=\"unknown\",destination_version=\"unknown\",destination_workload=\"unknown\","
      "destination_workload_namespace=\"unknown\",reporter=\"source\",request_protocol=\"tcp\",response_flags=\"-\","
      "source_app=\"unknown\",source_canonical_revision=\"unknown\",source_canonical_service=\"unknown\","
      "source_cluster=\"unknown\",source_principal=\"unknown\",source_version=\"unknown\",source_workload=\"client\","
      "source_workload_namespace=\"unknown\"}";
  EXPECT_NE(text.find("istio_tcp_connections_opened_total" + series + " 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("istio_tcp_sent_bytes_total" + series + " 1024\n"), std::string::npos) << text;
  // Declared families render their HELP/TYPE even with no series yet.
  EXPECT_NE(text.find("# TYPE istio_tcp_connections_failed_total counter\n"), std::string::npos);
  EXPECT_EQ(reg.series_count("istio_tcp_connections_failed_total"), 0u);
  // Families of features that do not exist are not declared here.
  EXPECT_EQ(text.find("istio_xds"), std::string::npos);
  EXPECT_EQ(text.find("istio_dns"), std::string::npos);
}

TEST(TrafficMetrics, ALabelSetNamesTheSameSeriesAsItsLabelList) {
  Registry reg;
  TrafficMetrics m(reg);
  TrafficLabels l;
  l.reporter = "source";
  l.source_workload = "sleep";
  const std::string opened(family_name(TrafficFamily::opened));
  m.series(l).counter(TrafficFamily::opened).inc(2);
  reg.counter(opened, l.to_labels()).inc(3);
  EXPECT_EQ(m.series(l).counter(TrafficFamily::opened).value(), 5u);
  EXPECT_EQ(reg.series_count(opened), 1u);
  // Another label value is another series.
  TrafficLabels denied = l;
  denied.response_flags = "DENY";
  m.series(denied).counter(TrafficFamily::opened).inc();
  EXPECT_EQ(reg.series_count(opened), 2u);
  EXPECT_EQ(m.series(denied).counter(TrafficFamily::opened).value(), 1u);
}

TEST(TrafficMetrics, EachFamilysSeriesIsCreatedOnFirstUse) {
  Registry reg;
  TrafficMetrics m(reg);
  TrafficLabels l;
  TrafficMetrics::Series& s = m.series(l);
  EXPECT_EQ(&m.series(l), &s);  // one entry per label set
  EXPECT_EQ(reg.series_count(family_name(TrafficFamily::opened)), 0u);
  s.counter(TrafficFamily::opened).inc(4);
  EXPECT_EQ(reg.series_count(family_name(TrafficFamily::opened)), 1u);
  EXPECT_EQ(reg.series_count(family_name(TrafficFamily::closed)), 0u);  // not rendered as a 0 series
  EXPECT_EQ(reg.counter(family_name(TrafficFamily::opened), l.to_labels()).value(), 4u);
}

TEST(TrafficMetrics, ACopyOfTheRegistryIsNotCounted) {
  // How the binary scrapes a worker: it copies the registry; counting goes
  // on into the worker's own.
  Registry reg;
  TrafficMetrics m(reg);
  TrafficLabels l;
  m.series(l).counter(TrafficFamily::opened).inc();
  Registry copy = reg;
  m.series(l).counter(TrafficFamily::opened).inc(10);
  EXPECT_EQ(copy.counter(family_name(TrafficFamily::opened), l.to_labels()).value(), 1u);
  EXPECT_EQ(reg.counter(family_name(TrafficFamily::opened), l.to_labels()).value(), 11u);
}

}  // namespace
}  // namespace zt::core::proxy
