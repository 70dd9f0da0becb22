#include "app/flags.h"

#include "app/config.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <exception>
#include <memory>

namespace zt::app {
namespace {

// Help lines end with the default; "[env NAME]" is added by the builder.
constexpr std::array kFlags = {
    FlagSpec{"--xds-address", "XDS_ADDRESS",
             "xDS server URI (https:// added if no scheme); empty disables xDS. Default: "
             "istiod (https://istiod.istio-system.svc:15012 in a cluster, else https://localhost:15012), "
             "none when a local xDS file is given"},
    FlagSpec{"--ca-address", "CA_ADDRESS",
             "Certificate authority URI. Default: istiod, as for --xds-address; ignored with --fake-ca"},
    FlagSpec{"--xds-root-ca", "XDS_ROOT_CA",
             "Roots for the xDS TLS connection: a PEM file, inline PEM, or SYSTEM. "
             "Default: ./var/run/secrets/istio/root-cert.pem"},
    FlagSpec{"--ca-root-ca", "CA_ROOT_CA",
             "Roots for the CA TLS connection: a PEM file, inline PEM, or SYSTEM. "
             "Default: ./var/run/secrets/istio/root-cert.pem"},
    FlagSpec{"--auth-token", "AUTH_TOKEN",
             "File holding the token sent to xDS and CA, read on every connect. "
             "Default: ./var/run/secrets/tokens/istio-token if it exists"},
    FlagSpec{"--alt-xds-hostname", "ALT_XDS_HOSTNAME",
             "Name the xDS server's certificate must carry, instead of the address's host"},
    FlagSpec{"--alt-ca-hostname", "ALT_CA_HOSTNAME",
             "Name the CA server's certificate must carry, instead of the address's host"},
    FlagSpec{"--fake-ca", "FAKE_CA", "Issue certificates from a built-in self-signed CA (testing only). Default: false",
             true},
    FlagSpec{"--local-xds-path", "LOCAL_XDS_PATH", "YAML file of workloads and services to load instead of (or besides) xDS"},
    FlagSpec{"--local-xds", "LOCAL_XDS", "The same YAML as --local-xds-path, inline; only one of the two"},
    FlagSpec{"--xds-on-demand", "XDS_ON_DEMAND",
             "Fetch workloads from xDS on demand (needs the DNS proxy off). Default: false", true},
    FlagSpec{"--secret-ttl", "SECRET_TTL", "Lifetime requested for workload certificates, e.g. 12h. Default: 24h"},
    FlagSpec{"--cluster-id", "CLUSTER_ID", "This cluster's ID (ISTIO_META_CLUSTER_ID wins over CLUSTER_ID). Default: Kubernetes"},
    FlagSpec{"--cluster-domain", "CLUSTER_DOMAIN", "DNS domain of the cluster. Default: cluster.local"},
    FlagSpec{"--trust-domain", "TRUST_DOMAIN", "SPIFFE trust domain of identities. Default: cluster.local"},
    FlagSpec{"--network", "NETWORK", "Network this node is on. Default: empty (the default network)"},
    FlagSpec{"--node-name", "NODE_NAME", "Name of the Kubernetes node ztunnel runs on"},
    FlagSpec{"--pod-name", "POD_NAME", "ztunnel's own pod name"},
    FlagSpec{"--pod-namespace", "POD_NAMESPACE", "ztunnel's own pod namespace"},
    FlagSpec{"--service-account", "SERVICE_ACCOUNT", "ztunnel's own service account"},
    FlagSpec{"--instance-ip", "INSTANCE_IP", "ztunnel's own pod IP"},
    FlagSpec{"--proxy-mode", "PROXY_MODE",
             "shared (one ztunnel per node) or dedicated (one workload; NOT SUPPORTED YET: refused at start). "
             "Default: shared"},
    FlagSpec{"--proxy-workload-info", "PROXY_WORKLOAD_INFO",
             "namespace/name/service-account of the workload; required when --proxy-mode=dedicated"},
    FlagSpec{"--worker-threads", "ZTUNNEL_WORKER_THREADS",
             "Data-plane worker threads: a count, or a percentage of cores like 50%. "
             "Default: a quarter of the cores, rounded up, at least 2"},
    FlagSpec{"--cpu-limit", "ZTUNNEL_CPU_LIMIT", "Core count that percentages refer to. Default: the machine's"},
    FlagSpec{"--pool-max-streams-per-connection", "POOL_MAX_STREAMS_PER_CONNECTION",
             "Most streams on one pooled HBONE connection before another is opened. Default: 100"},
    FlagSpec{"--pool-unused-release-timeout", "POOL_UNUSED_RELEASE_TIMEOUT",
             "Idle time after which a pooled HBONE connection is closed. Default: 5m"},
    FlagSpec{"--connection-termination-deadline", "CONNECTION_TERMINATION_DEADLINE",
             "How long draining waits for connections before closing them. "
             "Default: 5s, or from TERMINATION_GRACE_PERIOD_SECONDS"},
    FlagSpec{"--inpod-enabled", "INPOD_ENABLED",
             "In-pod mode: the CNI node agent enrolls pods over INPOD_UDS and each pod is proxied inside its own "
             "network namespace. Default: false",
             true},
    FlagSpec{"--enable-orig-src", "ENABLE_ORIG_SRC",
             "In-pod: a pod's application sees its clients' addresses (IP_TRANSPARENT). Default: when permitted",
             true},
    FlagSpec{"--inpod-uds", "INPOD_UDS", "Unix socket of the CNI node agent (ZDS). Default: /var/run/ztunnel/ztunnel.sock"},
    FlagSpec{"--packet-mark", "PACKET_MARK", "SO_MARK for proxied traffic. Default: 1337 in shared mode, none in dedicated"},
    FlagSpec{"--tls12-enabled", "TLS12_ENABLED", "Also allow TLS 1.2 (TLS 1.3 only otherwise). Default: false", true},
    FlagSpec{"--ipv6-enabled", "IPV6_ENABLED", "Bind IPv6 wildcards and localhost. Default: true", true},
    FlagSpec{"--enable-proxy", "ENABLE_PROXY", "Run the traffic-capture and HBONE listeners. Default: true", true},
    FlagSpec{"--dns-capture", "ISTIO_META_DNS_CAPTURE", "Run the DNS proxy. Default: true", true},
    FlagSpec{"--dns-proxy-addr", "ISTIO_META_DNS_PROXY_ADDR",
             "DNS proxy address: localhost:PORT or IP:PORT. Default: localhost:15053"},
    FlagSpec{"--enable-socks5", "UNSTABLE_ENABLE_SOCKS5", "Run the SOCKS5 listener on 127.0.0.1:15080. Default: false",
             true},
    // Upstream takes these two from the mesh/proxy config (proxyAdminPort,
    // statsPort), not from a variable of their own, so they are flags only.
    FlagSpec{"--admin-port", "--admin-port", "Admin listener port (localhost only). Default: 15000"},
    FlagSpec{"--stats-port", "--stats-port", "Prometheus stats listener port. Default: 15020"},
    FlagSpec{"--fake-ca-dir", "--fake-ca-dir",
             "With --fake-ca: keep the CA's root in this directory (ca-cert.pem, ca-key.pem), created on first "
             "use, so several local ztunnels trust each other. Default: a new root per process"},
    FlagSpec{"--readiness-port", "--readiness-port", "Readiness listener port. Default: 15021"},
    // Ours, not upstream's: several node proxies on one host (the demo, e2e
    // tests) each bind the pod-facing ports on their own workloads' IPs.
    FlagSpec{"--listen-on-workload-ips", "--listen-on-workload-ips",
             "Bind 15001/15006/15008/15080 on the IPs of this node's workloads (--node-name) instead of the "
             "wildcard, so several ztunnels can share one host, e.g. on 127.0.0.0/8. Default: false",
             true},
};

std::string flag_description(const FlagSpec& spec) {
  std::string text(spec.help);
  for (const PendingSetting& p : pending_settings()) {
    if (p.key == spec.key) {
      text += " NOT SUPPORTED YET (needs ";
      text += p.needs;
      text += ")";
    }
  }
  if (spec.key != spec.flag) {
    text += " [env ";
    text += spec.key;
    text += "]";
  }
  return text;
}

// Builds the CLI11 app; `values` must hold one string per table entry and
// outlive the app (CLI11 writes through references).
std::unique_ptr<CLI::App> make_app(std::string_view program_name, std::vector<std::string>& values) {
  auto app = std::make_unique<CLI::App>(
      "ztunnel: the Istio ambient node proxy. Settings come from the environment variables\n"
      "named below (upstream ztunnel's names); a flag overrides its variable.",
      std::string(program_name));
  app->get_formatter()->column_width(42);
  for (size_t i = 0; i < kFlags.size(); ++i) {
    const FlagSpec& spec = kFlags[i];
    if (spec.boolean) {
      app->add_flag(std::string(spec.flag) + "{true}", values[i], flag_description(spec));
    } else {
      app->add_option(std::string(spec.flag), values[i], flag_description(spec));
    }
  }
  app->footer(
      "Durations: 500ms, 10s, 5m, 24h, 1h30m. Booleans: true or false.\n"
      "Local mode: FAKE_CA=true LOCAL_XDS_PATH=workloads.yaml (no xDS server needed).");
  return app;
}

}  // namespace

std::span<const FlagSpec> flag_specs() { return kFlags; }

const FlagSpec* flag_for_key(std::string_view key) {
  auto it = std::find_if(kFlags.begin(), kFlags.end(), [key](const FlagSpec& s) { return s.key == key; });
  return it == kFlags.end() ? nullptr : &*it;
}

Result<FlagValues> parse_flags(const std::vector<std::string>& args) {
  // CLI11 reports bad input by throwing; nothing of it leaves this function.
  try {
    std::vector<std::string> values(kFlags.size());
    std::unique_ptr<CLI::App> app = make_app("ztunnel", values);
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them last-first
    app->parse(reversed);
    FlagValues given;
    for (size_t i = 0; i < kFlags.size(); ++i) {
      if (app->get_option(std::string(kFlags[i].flag))->count() > 0) {
        given[std::string(kFlags[i].key)] = values[i];
      }
    }
    return given;
  } catch (const CLI::CallForHelp&) {
    return Error(Errc::invalid_argument, "--help asked for: print help_text() instead of parsing");
  } catch (const std::exception& e) {
    return Error(Errc::invalid_argument, std::string("command line: ") + e.what());
  }
}

std::string flags_help(std::string_view program_name) {
  try {
    std::vector<std::string> values(kFlags.size());
    return make_app(program_name, values)->help();
  } catch (const std::exception& e) {
    return std::string("help unavailable: ") + e.what();
  }
}

}  // namespace zt::app
