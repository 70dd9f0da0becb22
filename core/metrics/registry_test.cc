// Exact Prometheus text output of the metrics registry.
#include "core/metrics/registry.h"

#include <gtest/gtest.h>

namespace zt::core::metrics {
namespace {

TEST(Metrics, RendersFamiliesByNameAndSeriesByLabels) {
  Registry reg;
  reg.declare("zz_total", MetricType::counter, "Last family.");
  reg.declare("aa_gauge", MetricType::gauge, "First family.");
  Labels b = {{"k", "b"}};
  Labels a = {{"k", "a"}};
  reg.counter("zz_total", b).inc(2);
  reg.counter("zz_total", a).inc();
  reg.gauge("aa_gauge", {}).set(-4);
  EXPECT_EQ(reg.render(),
            "# HELP aa_gauge First family.\n"
            "# TYPE aa_gauge gauge\n"
            "aa_gauge -4\n"
            "# HELP zz_total Last family.\n"
            "# TYPE zz_total counter\n"
            "zz_total{k=\"a\"} 1\n"
            "zz_total{k=\"b\"} 2\n");
}

TEST(Metrics, MergeSumsSeriesAndKeepsFamiliesOfBoth) {
  Registry worker1, worker2, total;
  worker1.declare("conns_total", MetricType::counter, "Connections.");
  worker1.counter("conns_total", {{"k", "a"}}).inc(2);
  worker2.counter("conns_total", {{"k", "a"}}).inc(3);
  worker2.counter("conns_total", {{"k", "b"}}).inc();
  worker2.gauge("open", {}).set(4);
  total.merge(worker1);
  total.merge(worker2);
  EXPECT_EQ(total.render(),
            "# HELP conns_total Connections.\n"
            "# TYPE conns_total counter\n"
            "conns_total{k=\"a\"} 5\n"
            "conns_total{k=\"b\"} 1\n"
            "# TYPE open gauge\n"
            "open 4\n");
}

TEST(Metrics, LabelOrderDoesNotMakeANewSeries) {
  Registry reg;
  Labels xy = {{"x", "1"}, {"y", "2"}};
  Labels yx = {{"y", "2"}, {"x", "1"}};
  reg.counter("c_total", xy).inc();
  reg.counter("c_total", yx).inc(4);
  EXPECT_EQ(reg.series_count("c_total"), 1u);
  EXPECT_EQ(reg.counter("c_total", xy).value(), 5u);
  EXPECT_EQ(reg.render(), "# TYPE c_total counter\nc_total{x=\"1\",y=\"2\"} 5\n");
}

TEST(Metrics, EscapesLabelValuesAndHelp) {
  Registry reg;
  reg.declare("e_total", MetricType::counter, "Help with \\ and\nnewline \"quoted\".");
  Labels tricky = {{"v", "a\\b\"c\nd"}};
  reg.counter("e_total", tricky).inc();
  EXPECT_EQ(reg.render(),
            "# HELP e_total Help with \\\\ and\\nnewline \"quoted\".\n"
            "# TYPE e_total counter\n"
            "e_total{v=\"a\\\\b\\\"c\\nd\"} 1\n");
}

TEST(Metrics, GaugesMoveBothWays) {
  Registry reg;
  Gauge& g = reg.gauge("g", {});
  g.add(5);
  g.add(-2);
  EXPECT_EQ(g.value(), 3);
  EXPECT_EQ(&g, &reg.gauge("g", {}));  // references are stable
}

TEST(Metrics, NameValidation) {
  EXPECT_TRUE(is_valid_metric_name("istio_tcp_sent_bytes_total"));
  EXPECT_TRUE(is_valid_metric_name("a:b"));
  EXPECT_FALSE(is_valid_metric_name(""));
  EXPECT_FALSE(is_valid_metric_name("1abc"));
  EXPECT_FALSE(is_valid_metric_name("a-b"));
  EXPECT_TRUE(is_valid_label_name("source_workload"));
  EXPECT_FALSE(is_valid_label_name("__reserved"));
  EXPECT_FALSE(is_valid_label_name("a:b"));
}

}  // namespace
}  // namespace zt::core::metrics
