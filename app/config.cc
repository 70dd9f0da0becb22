#include "app/config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "app/flags.h"
#include "app/values.h"

namespace zt::app {
namespace {

constexpr uint64_t kWorkerThreadsMax = 1024;

// Settings as the parser sees them: flags first, then the environment, and
// the name to quote in an error (the flag if it came from one).
class Settings {
 public:
  Settings(const EnvMap& env, FlagValues flags) : env_(env), flags_(std::move(flags)) {}

  const std::string* find(std::string_view key) const {
    if (auto it = flags_.find(key); it != flags_.end()) return &it->second;
    if (auto it = env_.find(std::string(key)); it != env_.end()) return &it->second;
    return nullptr;
  }
  std::optional<std::string> text(std::string_view key) const {
    const std::string* value = find(key);
    return value ? std::optional<std::string>(*value) : std::nullopt;
  }
  bool from_flag(std::string_view key) const { return flags_.count(key) > 0; }
  // Environment variables whose names start with `prefix`.
  std::map<std::string, std::string> with_prefix(std::string_view prefix) const {
    std::map<std::string, std::string> out;
    for (auto it = env_.lower_bound(std::string(prefix)); it != env_.end() && it->first.starts_with(prefix); ++it) {
      out.emplace(it->first, it->second);
    }
    return out;
  }

  std::string label(std::string_view key) const {
    const FlagSpec* spec = from_flag(key) ? flag_for_key(key) : nullptr;
    return std::string(spec ? spec->flag : key);
  }
  Error invalid(std::string_view key, std::string_view value, std::string_view reason) const {
    return Error(Errc::invalid_argument,
                 label(key) + "=\"" + std::string(value) + "\": " + std::string(reason));
  }

  Result<bool> boolean(std::string_view key, bool fallback) const {
    const std::string* value = find(key);
    if (!value) return fallback;
    Result<bool> parsed = parse_bool(*value);
    if (!parsed) return invalid(key, *value, parsed.error().detail);
    return *parsed;
  }

  Result<Duration> duration(std::string_view key, Duration fallback, bool zero_ok) const {
    const std::string* value = find(key);
    if (!value) return fallback;
    Result<Duration> parsed = parse_duration(*value);
    if (!parsed) return invalid(key, *value, parsed.error().detail);
    if (!zero_ok && *parsed <= Duration::zero()) return invalid(key, *value, "must be longer than zero");
    return *parsed;
  }

  Result<uint64_t> number(std::string_view key, uint64_t fallback, uint64_t min, uint64_t max) const {
    const std::string* value = find(key);
    if (!value) return fallback;
    Result<uint64_t> parsed = parse_unsigned(*value, std::numeric_limits<uint64_t>::max());
    if (parsed && *parsed >= min && *parsed <= max) return *parsed;
    if (!parsed && parsed.error().detail == "not an integer") {
      return invalid(key, *value, min >= 1 ? "not a positive integer" : "not an integer");
    }
    return invalid(key, *value, "out of range (" + std::to_string(min) + " to " + std::to_string(max) + ")");
  }

 private:
  const EnvMap& env_;
  FlagValues flags_;
};

bool has_control_or_space(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) <= ' ' || c == 0x7f; });
}

// Upstream checks the URI early and adds "https://" when there is no scheme.
Result<std::string> read_uri(const Settings& settings, std::string_view key, std::string value) {
  const char* reason = "not a URI (expected host:port or https://host:port)";
  if (has_control_or_space(value)) return settings.invalid(key, value, reason);
  size_t scheme_end = value.find("://");
  if (scheme_end == std::string::npos) {
    value = "https://" + value;
    scheme_end = 5;
  }
  std::string_view scheme = std::string_view(value).substr(0, scheme_end);
  bool scheme_ok = !scheme.empty() && std::all_of(scheme.begin(), scheme.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
  });
  std::string_view rest = std::string_view(value).substr(scheme_end + 3);
  std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (!scheme_ok || authority.empty()) return settings.invalid(key, value, reason);
  return value;
}

RootCert read_root_cert(const Settings& settings, std::string_view key) {
  std::string value = settings.text(key).value_or(std::string(defaults::root_cert_path));
  if (value == "SYSTEM") return RootCert{RootCert::Kind::system, ""};
  if (value.find("-----BEGIN") != std::string::npos) return RootCert{RootCert::Kind::inline_pem, value};
  return RootCert{RootCert::Kind::file, value};
}

// Where workloads come from: LOCAL_XDS_PATH or LOCAL_XDS (one at most).
Result<void> read_local_xds(const Settings& settings, Config& cfg) {
  cfg.local_xds_path = settings.text("LOCAL_XDS_PATH");
  cfg.local_xds_yaml = settings.text("LOCAL_XDS");
  if (cfg.local_xds_path && cfg.local_xds_path->empty()) {
    return settings.invalid("LOCAL_XDS_PATH", "", "empty path");
  }
  if (cfg.local_xds_path && cfg.local_xds_yaml) {
    return Error(Errc::invalid_argument, "only one of " + settings.label("LOCAL_XDS_PATH") + " or " +
                                             settings.label("LOCAL_XDS") + " may be set");
  }
  return ok();
}

// xDS and CA endpoints. Upstream defaults both to istiod; an empty value
// turns xDS off, and FAKE_CA turns the CA client off.
Result<void> read_control_plane(const Settings& settings, Config& cfg) {
  std::string istiod(settings.find("KUBERNETES_SERVICE_HOST") ? defaults::istiod_address_in_cluster
                                                              : defaults::istiod_address_outside_cluster);
  Result<bool> fake_ca = settings.boolean("FAKE_CA", false);
  if (!fake_ca) return fake_ca.error();
  cfg.fake_ca = *fake_ca;
  if (Result<void> local = read_local_xds(settings, cfg); !local) return local;
  bool has_local_xds = cfg.local_xds_path || cfg.local_xds_yaml;

  // Unset with a local file means local mode; upstream would also dial istiod.
  std::optional<std::string> xds = settings.text("XDS_ADDRESS");
  if (!xds && !has_local_xds) xds = istiod;
  if (xds && !xds->empty()) {
    Result<std::string> uri = read_uri(settings, "XDS_ADDRESS", *xds);
    if (!uri) return uri.error();
    cfg.xds_address = *uri;
  } else if (!has_local_xds) {
    return Error(Errc::invalid_argument, settings.label("XDS_ADDRESS") +
                                             " is empty and neither LOCAL_XDS_PATH nor LOCAL_XDS is set: "
                                             "there would be no source of workloads");
  }

  if (!cfg.fake_ca) {
    std::string ca = settings.text("CA_ADDRESS").value_or(istiod);
    if (ca.empty()) {
      return Error(Errc::invalid_argument,
                   settings.label("CA_ADDRESS") + " is empty and FAKE_CA is not true: no way to get certificates");
    }
    Result<std::string> uri = read_uri(settings, "CA_ADDRESS", ca);
    if (!uri) return uri.error();
    cfg.ca_address = *uri;
  }
  cfg.xds_root_cert = read_root_cert(settings, "XDS_ROOT_CA");
  cfg.ca_root_cert = read_root_cert(settings, "CA_ROOT_CA");
  cfg.auth_token = settings.text("AUTH_TOKEN");
  if (cfg.auth_token && cfg.auth_token->empty()) return settings.invalid("AUTH_TOKEN", "", "empty path");
  cfg.alt_xds_hostname = settings.text("ALT_XDS_HOSTNAME");
  cfg.alt_ca_hostname = settings.text("ALT_CA_HOSTNAME");
  // Node metadata for istiod: every ISTIO_META_X=v as X=v (upstream's rule).
  for (const auto& [name, value] : settings.with_prefix("ISTIO_META_")) {
    cfg.proxy_metadata[name.substr(std::string_view("ISTIO_META_").size())] = value;
  }
  cfg.fake_ca_dir = settings.text("--fake-ca-dir");
  if (cfg.fake_ca_dir && cfg.fake_ca_dir->empty()) return settings.invalid("--fake-ca-dir", "", "empty path");

  Result<bool> on_demand = settings.boolean("XDS_ON_DEMAND", false);
  if (!on_demand) return on_demand.error();
  cfg.xds_on_demand = *on_demand;
  Result<Duration> ttl = settings.duration("SECRET_TTL", defaults::secret_ttl, false);
  if (!ttl) return ttl.error();
  cfg.secret_ttl = *ttl;
  return ok();
}

// "namespace/name/service-account"; the service account may hold slashes,
// as upstream splits at the first two only.
Result<WorkloadInfo> read_workload_info(const Settings& settings) {
  const char* key = "PROXY_WORKLOAD_INFO";
  std::optional<std::string> raw = settings.text(key);
  if (!raw) {
    return Error(Errc::invalid_argument, settings.label("PROXY_MODE") + "=dedicated requires " +
                                             settings.label(key) + " to be set");
  }
  size_t first = raw->find('/');
  size_t second = first == std::string::npos ? first : raw->find('/', first + 1);
  if (second == std::string::npos || first == 0 || second == first + 1 || second + 1 == raw->size()) {
    return settings.invalid(key, *raw, "expected namespace/name/service-account");
  }
  return WorkloadInfo{raw->substr(0, first), raw->substr(first + 1, second - first - 1), raw->substr(second + 1)};
}

Result<void> read_proxy_mode(const Settings& settings, Config& cfg) {
  std::optional<std::string> mode = settings.text("PROXY_MODE");
  if (!mode || *mode == "shared") {
    cfg.proxy_mode = ProxyMode::shared;
    return ok();
  }
  if (*mode != "dedicated") return settings.invalid("PROXY_MODE", *mode, "must be shared or dedicated");
  cfg.proxy_mode = ProxyMode::dedicated;
  Result<WorkloadInfo> info = read_workload_info(settings);
  if (!info) return info.error();
  cfg.proxy_workload_info = *info;
  return ok();
}

Result<void> read_identity(const Settings& settings, Config& cfg) {
  // Upstream lets ISTIO_META_CLUSTER_ID win over CLUSTER_ID; a flag wins over both.
  std::optional<std::string> meta_cluster_id = settings.text("ISTIO_META_CLUSTER_ID");
  if (meta_cluster_id && !settings.from_flag("CLUSTER_ID")) {
    cfg.cluster_id = *meta_cluster_id;
  } else {
    cfg.cluster_id = settings.text("CLUSTER_ID").value_or(std::string(defaults::cluster_id));
  }
  cfg.cluster_domain = settings.text("CLUSTER_DOMAIN").value_or(std::string(defaults::cluster_domain));
  cfg.trust_domain = settings.text("TRUST_DOMAIN").value_or(std::string(defaults::trust_domain));
  if (cfg.trust_domain.empty() || has_control_or_space(cfg.trust_domain) ||
      cfg.trust_domain.find('/') != std::string::npos) {
    return settings.invalid("TRUST_DOMAIN", cfg.trust_domain, "not a trust domain (non-empty, no '/' or spaces)");
  }
  cfg.network = settings.text("NETWORK").value_or("");
  cfg.node_name = settings.text("NODE_NAME");
  cfg.pod_name = settings.text("POD_NAME");
  cfg.pod_namespace = settings.text("POD_NAMESPACE");
  cfg.service_account = settings.text("SERVICE_ACCOUNT");
  if (std::optional<std::string> ip = settings.text("INSTANCE_IP")) {
    Result<IpAddr> parsed = IpAddr::parse(*ip);
    if (!parsed) return settings.invalid("INSTANCE_IP", *ip, "not an IP address");
    cfg.instance_ip = *parsed;
  }
  return read_proxy_mode(settings, cfg);
}

// "P%" of the cores (upstream rounds up, at least one thread).
Result<uint32_t> read_worker_percentage(const Settings& settings, const std::string& value, uint32_t cpu_cores) {
  const char* key = "ZTUNNEL_WORKER_THREADS";
  std::string_view number = std::string_view(value).substr(0, value.size() - 1);
  bool digits_ok = !number.empty() && number.find_first_not_of("0123456789.") == std::string_view::npos &&
                   std::count(number.begin(), number.end(), '.') <= 1 && number != ".";
  double percent = digits_ok ? std::strtod(std::string(number).c_str(), nullptr) : -1;
  if (!digits_ok) return settings.invalid(key, value, "not a positive integer or percentage");
  if (percent <= 0 || percent > 100) return settings.invalid(key, value, "percentage must be above 0 and at most 100");
  Result<uint64_t> cores = settings.number("ZTUNNEL_CPU_LIMIT", std::max<uint32_t>(cpu_cores, 1), 1, 1u << 16);
  if (!cores) return cores.error();
  double threads = std::ceil(static_cast<double>(*cores) * percent / 100.0);
  return static_cast<uint32_t>(std::clamp<double>(threads, 1, kWorkerThreadsMax));
}

Result<uint32_t> read_worker_threads(const Settings& settings, uint32_t cpu_cores) {
  const char* key = "ZTUNNEL_WORKER_THREADS";
  const std::string* value = settings.find(key);
  if (value && !value->empty() && value->back() == '%') {
    return read_worker_percentage(settings, *value, cpu_cores);
  }
  // The default still honours ZTUNNEL_CPU_LIMIT (a pod's CPU limit).
  Result<uint64_t> cores = settings.number("ZTUNNEL_CPU_LIMIT", cpu_cores, 1, 1u << 16);
  if (!cores) return cores.error();
  Result<uint64_t> threads =
      settings.number(key, default_worker_threads(static_cast<uint32_t>(*cores)), 1, kWorkerThreadsMax);
  if (!threads) return threads.error();
  return static_cast<uint32_t>(*threads);
}

// Upstream: CONNECTION_TERMINATION_DEADLINE, else a little less than
// Kubernetes' grace period so we close connections before SIGKILL, else 5s.
Result<Duration> read_termination_deadline(const Settings& settings) {
  if (settings.find("CONNECTION_TERMINATION_DEADLINE")) {
    return settings.duration("CONNECTION_TERMINATION_DEADLINE", defaults::connection_termination_deadline, true);
  }
  if (!settings.find("TERMINATION_GRACE_PERIOD_SECONDS")) return defaults::connection_termination_deadline;
  Result<uint64_t> grace_s = settings.number("TERMINATION_GRACE_PERIOD_SECONDS", 0, 0, 1u << 30);
  if (!grace_s) return grace_s.error();
  uint64_t margin_s = *grace_s > 10 ? 5 : 1;
  uint64_t deadline_s = *grace_s > margin_s ? *grace_s - margin_s : 0;
  return Duration(std::chrono::seconds(std::max<uint64_t>(deadline_s, 1)));
}

Result<void> read_runtime(const Settings& settings, uint32_t cpu_cores, Config& cfg) {
  Result<uint32_t> threads = read_worker_threads(settings, cpu_cores);
  if (!threads) return threads.error();
  cfg.worker_threads = *threads;
  Result<uint64_t> streams = settings.number("POOL_MAX_STREAMS_PER_CONNECTION",
                                             defaults::pool_max_streams_per_connection, 1, 65535);
  if (!streams) return streams.error();
  cfg.pool_max_streams_per_connection = static_cast<uint16_t>(*streams);
  Result<Duration> release =
      settings.duration("POOL_UNUSED_RELEASE_TIMEOUT", defaults::pool_unused_release_timeout, false);
  if (!release) return release.error();
  cfg.pool_unused_release_timeout = *release;
  Result<Duration> deadline = read_termination_deadline(settings);
  if (!deadline) return deadline.error();
  cfg.connection_termination_deadline = *deadline;

  Result<bool> inpod = settings.boolean("INPOD_ENABLED", false);
  if (!inpod) return inpod.error();
  cfg.inpod_enabled = *inpod;
  if (settings.find("ENABLE_ORIG_SRC")) {
    Result<bool> orig = settings.boolean("ENABLE_ORIG_SRC", false);
    if (!orig) return orig.error();
    cfg.enable_orig_src = *orig;
  }
  cfg.inpod_uds = settings.text("INPOD_UDS").value_or(std::string(defaults::inpod_uds));
  if (cfg.inpod_uds.empty()) return settings.invalid("INPOD_UDS", "", "empty path");
  if (settings.find("PACKET_MARK")) {
    Result<uint64_t> mark = settings.number("PACKET_MARK", 0, 0, std::numeric_limits<uint32_t>::max());
    if (!mark) return mark.error();
    cfg.packet_mark = static_cast<uint32_t>(*mark);
  } else if (cfg.proxy_mode == ProxyMode::shared) {
    cfg.packet_mark = defaults::inpod_packet_mark;  // in-pod mode needs a mark
  }
  Result<bool> tls12 = settings.boolean("TLS12_ENABLED", false);
  if (!tls12) return tls12.error();
  cfg.tls12_enabled = *tls12;
  return ok();
}

// "localhost:PORT" (both loopbacks) or an explicit "IP:PORT".
Result<ListenAddr> read_dns_proxy_addr(const Settings& settings) {
  const char* key = "ISTIO_META_DNS_PROXY_ADDR";
  std::optional<std::string> value = settings.text(key);
  if (!value) return ListenAddr::localhost(defaults::dns_proxy_port);
  constexpr std::string_view localhost = "localhost:";
  if (value->rfind(localhost, 0) == 0) {
    Result<uint64_t> port = parse_unsigned(std::string_view(*value).substr(localhost.size()), 65535);
    if (!port || *port == 0) return settings.invalid(key, *value, "not a port (1 to 65535)");
    return ListenAddr::localhost(static_cast<uint16_t>(*port));
  }
  Result<Endpoint> endpoint = Endpoint::parse(*value);
  if (!endpoint) return settings.invalid(key, *value, "expected localhost:PORT or IP:PORT");
  return ListenAddr::socket(*endpoint);
}

Result<void> read_switches(const Settings& settings, Config& cfg) {
  Result<bool> ipv6 = settings.boolean("IPV6_ENABLED", true);
  Result<bool> proxy = settings.boolean("ENABLE_PROXY", true);
  Result<bool> socks5 = settings.boolean("UNSTABLE_ENABLE_SOCKS5", false);
  for (const Result<bool>* r : {&ipv6, &proxy, &socks5}) {
    if (!*r) return r->error();
  }
  cfg.ipv6_enabled = *ipv6;
  cfg.proxy_enabled = *proxy;
  if (*socks5) cfg.socks5_addr = ListenAddr::socket(Endpoint{IpAddr::loopback(IpAddr::Family::v4), defaults::socks5_port});
  // Upstream compares lower-cased "true"; we also insist on a boolean.
  if (std::optional<std::string> capture = settings.text("ISTIO_META_DNS_CAPTURE")) {
    std::string lower = *capture;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    Result<bool> on = parse_bool(lower);
    if (!on) return settings.invalid("ISTIO_META_DNS_CAPTURE", *capture, on.error().detail);
    cfg.dns_proxy_enabled = *on;
  }
  return ok();
}

Result<void> read_listeners(const Settings& settings, Config& cfg) {
  if (Result<void> r = read_switches(settings, cfg); !r) return r;
  IpAddr wildcard = IpAddr::unspecified(cfg.ipv6_enabled ? IpAddr::Family::v6 : IpAddr::Family::v4);
  cfg.outbound_addr = ListenAddr::socket(Endpoint{wildcard, defaults::outbound_port});
  cfg.inbound_plaintext_addr = ListenAddr::socket(Endpoint{wildcard, defaults::inbound_plaintext_port});
  cfg.inbound_addr = ListenAddr::socket(Endpoint{wildcard, defaults::inbound_port});
  Result<ListenAddr> dns = read_dns_proxy_addr(settings);
  if (!dns) return dns.error();
  cfg.dns_proxy_addr = *dns;
  Result<uint64_t> admin_port = settings.number("--admin-port", defaults::admin_port, 1, 65535);
  if (!admin_port) return admin_port.error();
  cfg.admin_addr = ListenAddr::localhost(static_cast<uint16_t>(*admin_port));
  Result<uint64_t> stats_port = settings.number("--stats-port", defaults::stats_port, 1, 65535);
  if (!stats_port) return stats_port.error();
  cfg.stats_addr = ListenAddr::socket(Endpoint{wildcard, static_cast<uint16_t>(*stats_port)});
  Result<uint64_t> ready_port = settings.number("--readiness-port", defaults::readiness_port, 1, 65535);
  if (!ready_port) return ready_port.error();
  cfg.readiness_addr = ListenAddr::socket(Endpoint{wildcard, static_cast<uint16_t>(*ready_port)});
  Result<bool> per_workload = settings.boolean("--listen-on-workload-ips", false);
  if (!per_workload) return per_workload.error();
  cfg.listen_on_workload_ips = *per_workload;
  return ok();
}

// Combinations upstream rejects, plus listener ports that would collide in
// ztunnel's own network namespace.
Result<void> validate(const Settings& settings, const Config& cfg) {
  if (cfg.dns_proxy_enabled && cfg.xds_on_demand) {
    return Error(Errc::invalid_argument, settings.label("XDS_ON_DEMAND") +
                                             "=true needs the DNS proxy off (" +
                                             settings.label("ISTIO_META_DNS_CAPTURE") +
                                             "=false): the DNS proxy does not support on-demand xDS");
  }
  if (!cfg.proxy_enabled && !cfg.dns_proxy_enabled) {
    return Error(Errc::invalid_argument, settings.label("ENABLE_PROXY") + "=false and " +
                                             settings.label("ISTIO_META_DNS_CAPTURE") +
                                             "=false: ztunnel would run without any servers");
  }
  if (cfg.inpod_enabled && cfg.listen_on_workload_ips) {
    return Error(Errc::invalid_argument, settings.label("INPOD_ENABLED") + " and " +
                                             settings.label("--listen-on-workload-ips") +
                                             ": in-pod mode listens inside each pod, not on node addresses");
  }
  if (cfg.inpod_enabled && !cfg.node_name) {
    return Error(Errc::invalid_argument, settings.label("INPOD_ENABLED") + " needs " + settings.label("NODE_NAME") +
                                             ": an enrolled pod is found in the state among this node's workloads");
  }
  if (cfg.listen_on_workload_ips && !cfg.node_name) {
    return Error(Errc::invalid_argument, settings.label("--listen-on-workload-ips") + " needs " +
                                             settings.label("NODE_NAME") + ": it names whose workloads' IPs to bind");
  }
  uint16_t admin = cfg.admin_addr.port(), stats = cfg.stats_addr.port(), ready = cfg.readiness_addr.port();
  if (admin == stats || admin == ready) {
    return settings.invalid("--admin-port", std::to_string(admin), "same port as the stats or readiness listener");
  }
  if (stats == ready) {
    return settings.invalid("--stats-port", std::to_string(stats), "same port as the readiness listener");
  }
  return ok();
}

}  // namespace

std::string_view proxy_mode_name(ProxyMode mode) {
  return mode == ProxyMode::shared ? "shared" : "dedicated";
}

ListenAddr ListenAddr::localhost(uint16_t port) {
  return ListenAddr{Kind::localhost, Endpoint{IpAddr::loopback(IpAddr::Family::v4), port}};
}

ListenAddr ListenAddr::socket(Endpoint endpoint) { return ListenAddr{Kind::socket, endpoint}; }

std::string ListenAddr::to_string() const {
  if (kind == Kind::localhost) return "localhost:" + std::to_string(endpoint.port);
  return endpoint.to_string();
}

uint32_t default_worker_threads(uint32_t cpu_cores) {
  return std::max(defaults::worker_threads_min, (cpu_cores + 3) / 4);
}

bool Config::local_mode() const { return !xds_address && (local_xds_path || local_xds_yaml); }

std::string Config::summary() const {
  std::string out = "ztunnel config: mode=" + std::string(proxy_mode_name(proxy_mode));
  if (proxy_workload_info) {
    out += " workload=" + proxy_workload_info->namespace_name + "/" + proxy_workload_info->name;
  }
  if (xds_address) out += " xds=" + *xds_address;
  if (local_xds_path) out += " local_xds=" + *local_xds_path;
  if (local_xds_yaml) out += " local_xds=(inline)";
  out += fake_ca ? " ca=fake" : " ca=" + ca_address.value_or("");
  out += " trust_domain=" + trust_domain + " cluster=" + cluster_id;
  if (!network.empty()) out += " network=" + network;
  out += " worker_threads=" + std::to_string(worker_threads);
  out += " listeners:";
  if (proxy_enabled) {
    out += " outbound=" + outbound_addr.to_string() + " inbound=" + inbound_addr.to_string() +
           " inbound_plaintext=" + inbound_plaintext_addr.to_string();
    if (listen_on_workload_ips) out += " (ports on the IPs of node " + node_name.value_or("") + "'s workloads)";
    if (inpod_enabled) out += " (in-pod: inside each enrolled pod; agent " + inpod_uds + ")";
  }
  if (dns_proxy_enabled) out += " dns=" + dns_proxy_addr.to_string();
  if (socks5_addr) out += " socks5=" + socks5_addr->to_string();
  out += " admin=" + admin_addr.to_string() + " stats=" + stats_addr.to_string() +
         " readiness=" + readiness_addr.to_string();
  return out;
}

Result<Config> parse_config(const EnvMap& env, const std::vector<std::string>& args, uint32_t cpu_cores) {
  Result<FlagValues> flags = parse_flags(args);
  if (!flags) return flags.error();
  Settings settings(env, std::move(*flags));
  if (const std::string* pc = settings.find("PROXY_CONFIG"); pc && !pc->empty()) {
    // Silently ignoring ports or a discovery address given there would be worse.
    return settings.invalid("PROXY_CONFIG", *pc, "not supported; use --admin-port, --stats-port, XDS_ADDRESS");
  }
  Config cfg;
  if (Result<void> r = read_control_plane(settings, cfg); !r) return r.error();
  if (Result<void> r = read_identity(settings, cfg); !r) return r.error();
  if (Result<void> r = read_runtime(settings, cpu_cores, cfg); !r) return r.error();
  if (Result<void> r = read_listeners(settings, cfg); !r) return r.error();
  if (Result<void> r = validate(settings, cfg); !r) return r.error();
  for (const PendingSetting& p : pending_settings()) {
    const std::string* value = settings.find(p.key);
    if (!value || value->empty()) continue;
    // A boolean that is off asks for nothing.
    if (p.key == "ISTIO_META_DNS_CAPTURE" && !cfg.dns_proxy_enabled) continue;
    cfg.not_supported_yet.push_back(settings.label(p.key) + ": needs " + std::string(p.needs) + ", not built yet");
  }
  if (cfg.dns_proxy_enabled && !settings.find("ISTIO_META_DNS_CAPTURE")) {
    cfg.not_supported_yet.push_back("ISTIO_META_DNS_CAPTURE (default true): needs the DNS proxy, not built yet");
  }
  return cfg;
}

std::span<const PendingSetting> pending_settings() {
  static constexpr PendingSetting kPending[] = {
      {"CLUSTER_DOMAIN", "the DNS proxy"},
      {"NETWORK", "multi-network routing"},
      {"SERVICE_ACCOUNT", "the CA client"},
      {"ISTIO_META_DNS_CAPTURE", "the DNS proxy"},
      {"ISTIO_META_DNS_PROXY_ADDR", "the DNS proxy"},
  };
  return kPending;
}

bool help_requested(const std::vector<std::string>& args) {
  for (const std::string& arg : args) {
    if (arg == "--") return false;
    if (arg == "-h" || arg == "--help") return true;
  }
  return false;
}

std::string help_text(std::string_view program_name) { return flags_help(program_name); }

}  // namespace zt::app
