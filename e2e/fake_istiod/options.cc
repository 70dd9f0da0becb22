#include "e2e/fake_istiod/options.h"

#include <cstdint>
#include <map>
#include <optional>

namespace zt::e2e::fake_istiod {

namespace {

// "90", "90s", "30m", "24h", "3650d", "500ms".
std::optional<std::chrono::milliseconds> parse_duration(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 12) return std::nullopt;
  const int64_t n = std::stoll(text.substr(0, digits));
  const std::string unit = text.substr(digits);
  static const std::map<std::string, int64_t> ms_per = {
      {"", 1000}, {"s", 1000}, {"ms", 1}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}};
  auto it = ms_per.find(unit);
  if (it == ms_per.end()) return std::nullopt;
  return std::chrono::milliseconds(n * it->second);
}

}  // namespace

std::string usage() {
  return "usage: fake-istiod --listen IP:PORT --port-file FILE --state-dir DIR --mesh FILE\n"
         "                   --admin-listen IP:PORT --admin-port-file FILE\n"
         "                   [--token T] [--max-cert-lifetime 24h] [--root-lifetime 87600h]\n"
         "                   [--min-ping-interval 15s]\n"
         "Plays istiod for end-to-end tests: delta xDS of the mesh FILE (local-config YAML,\n"
         "watched), a CA (DIR/root-cert.pem), admin endpoints over HTTP. Port 0 picks a free\n"
         "port; the bound ports go to the port files (the admin one last).\n";
}

std::variant<Options, std::string> parse_options(int argc, char** argv) {
  Options o;
  std::map<std::string, std::string*> text_flags = {
      {"--listen", &o.listen},   {"--port-file", &o.port_file},       {"--state-dir", &o.state_dir},
      {"--mesh", &o.mesh},       {"--admin-listen", &o.admin_listen}, {"--admin-port-file", &o.admin_port_file},
      {"--token", &o.token}};
  std::map<std::string, std::chrono::milliseconds*> duration_flags;
  std::chrono::milliseconds max_cert_lifetime = o.max_cert_lifetime, root_lifetime = o.root_lifetime;
  duration_flags["--max-cert-lifetime"] = &max_cert_lifetime;
  duration_flags["--root-lifetime"] = &root_lifetime;
  duration_flags["--min-ping-interval"] = &o.min_ping_interval;

  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    if (arg == "--help" || arg == "-h") return std::string();
    if (size_t eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return arg + ": missing value";
    }
    if (auto t = text_flags.find(arg); t != text_flags.end()) {
      *t->second = value;
    } else if (auto d = duration_flags.find(arg); d != duration_flags.end()) {
      auto parsed = parse_duration(value);
      if (!parsed) return arg + ": '" + value + "' is not a duration (90s, 30m, 24h, 3650d)";
      *d->second = *parsed;
    } else {
      return "unknown flag " + arg;
    }
  }
  for (const char* required : {"--listen", "--port-file", "--state-dir", "--mesh", "--admin-listen",
                               "--admin-port-file"})
    if (text_flags[required]->empty()) return std::string(required) + " is required";
  o.max_cert_lifetime = std::chrono::duration_cast<std::chrono::seconds>(max_cert_lifetime);
  o.root_lifetime = std::chrono::duration_cast<std::chrono::seconds>(root_lifetime);
  if (o.max_cert_lifetime.count() <= 0) return "--max-cert-lifetime must be at least a second";
  if (o.root_lifetime.count() <= 0) return "--root-lifetime must be at least a second";
  return o;
}

}  // namespace zt::e2e::fake_istiod
