#include "core/metrics/registry.h"

#include <algorithm>

#include "io/assert.h"

namespace zt::core::metrics {

namespace {

bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }

const char* type_name(MetricType t) { return t == MetricType::counter ? "counter" : "gauge"; }

// Sorted by name so that {a,b} and {b,a} name one series; duplicate or
// malformed names are a caller's bug.
Labels canonical(Labels labels) {
  std::sort(labels.begin(), labels.end(),
            [](const auto& x, const auto& y) { return x.first < y.first; });
  for (size_t i = 0; i < labels.size(); ++i) {
    ZT_ASSERT(is_valid_label_name(labels[i].first));
    ZT_ASSERT(i == 0 || labels[i - 1].first != labels[i].first);
  }
  return labels;
}

void render_labels(std::string& out, const Labels& labels) {
  if (labels.empty()) return;
  out += '{';
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ',';
    out += labels[i].first;
    out += "=\"";
    out += escape_label_value(labels[i].second);
    out += '"';
  }
  out += '}';
}

}  // namespace

bool is_valid_metric_name(std::string_view name) {
  if (name.empty() || !(is_name_start(name[0]) || name[0] == ':')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return is_name_char(c) || c == ':'; });
}

bool is_valid_label_name(std::string_view name) {
  // Names starting with "__" are reserved for Prometheus itself.
  if (name.empty() || !is_name_start(name[0]) || name.starts_with("__")) return false;
  return std::all_of(name.begin(), name.end(), is_name_char);
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string escape_help(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void Registry::merge(const Registry& other) {
  for (const auto& [name, theirs] : other.families_) {
    Family& mine = family(name, theirs.type);
    if (mine.help.empty()) mine.help = theirs.help;
    for (const auto& [labels, s] : theirs.series) {
      Series& into = mine.series[labels];
      into.counter.inc(s.counter.value());
      into.gauge.add(s.gauge.value());
    }
  }
}

void Registry::declare(std::string_view name, MetricType type, std::string_view help) {
  family(name, type).help = std::string(help);
}

Registry::Family& Registry::family(std::string_view name, MetricType type) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    ZT_ASSERT(is_valid_metric_name(name));
    it = families_.emplace(std::string(name), Family{}).first;
    it->second.type = type;
  }
  ZT_ASSERT(it->second.type == type);  // one name, one type
  return it->second;
}

Registry::Series& Registry::series(std::string_view name, MetricType type, Labels labels) {
  return family(name, type).series[canonical(std::move(labels))];
}

Counter& Registry::counter(std::string_view family, Labels labels) {
  return series(family, MetricType::counter, std::move(labels)).counter;
}

Gauge& Registry::gauge(std::string_view family, Labels labels) {
  return series(family, MetricType::gauge, std::move(labels)).gauge;
}

size_t Registry::series_count(std::string_view family) const {
  auto it = families_.find(family);
  return it == families_.end() ? 0 : it->second.series.size();
}

std::string Registry::render() const {
  std::string out;
  for (const auto& [name, fam] : families_) {
    if (!fam.help.empty()) out += "# HELP " + name + " " + escape_help(fam.help) + "\n";
    out += "# TYPE " + name + " " + type_name(fam.type) + "\n";
    for (const auto& [labels, s] : fam.series) {
      out += name;
      render_labels(out, labels);
      out += ' ';
      out += fam.type == MetricType::counter ? std::to_string(s.counter.value()) : std::to_string(s.gauge.value());
      out += '\n';
    }
  }
  return out;
}

}  // namespace zt::core::metrics
