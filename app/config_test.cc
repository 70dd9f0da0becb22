// Tests for the ztunnel binary's configuration: upstream defaults, each
// environment variable, flags overriding variables, and the error messages.
//
//   Result<Config> cfg = parse({{"FAKE_CA", "true"}}, {"--secret-ttl=1h"});
//   EXPECT_EQ(cfg->secret_ttl, 1h);
#include "app/config.h"

#include <gtest/gtest.h>

#include "app/flags.h"

namespace zt::app {
namespace {

using namespace std::chrono_literals;

constexpr uint32_t kCores = 8;

Result<Config> parse(const EnvMap& env, const std::vector<std::string>& args = {}, uint32_t cores = kCores) {
  return parse_config(env, args, cores);
}

// The error detail, or a marker that parsing unexpectedly succeeded.
std::string error_of(const EnvMap& env, const std::vector<std::string>& args = {}) {
  Result<Config> cfg = parse(env, args);
  if (cfg.ok()) return "<parsed fine>";
  EXPECT_EQ(cfg.code(), Errc::invalid_argument);
  return cfg.error().detail;
}

Config parse_ok(const EnvMap& env, const std::vector<std::string>& args = {}, uint32_t cores = kCores) {
  Result<Config> cfg = parse(env, args, cores);
  EXPECT_TRUE(cfg.ok()) << cfg.error().detail;
  return cfg.ok() ? *cfg : Config{};
}

TEST(Config, DefaultsMatchUpstream) {
  Config cfg = parse_ok({});
  EXPECT_EQ(cfg.xds_address, "https://localhost:15012");  // outside a cluster
  EXPECT_EQ(cfg.ca_address, "https://localhost:15012");
  EXPECT_EQ(cfg.xds_root_cert, (RootCert{RootCert::Kind::file, "./var/run/secrets/istio/root-cert.pem"}));
  EXPECT_EQ(cfg.ca_root_cert, cfg.xds_root_cert);
  EXPECT_FALSE(cfg.auth_token);
  EXPECT_FALSE(cfg.fake_ca);
  EXPECT_FALSE(cfg.local_xds_path);
  EXPECT_FALSE(cfg.xds_on_demand);
  EXPECT_FALSE(cfg.local_mode());
  EXPECT_EQ(cfg.secret_ttl, 24h);
  EXPECT_EQ(cfg.cluster_id, "Kubernetes");
  EXPECT_EQ(cfg.cluster_domain, "cluster.local");
  EXPECT_EQ(cfg.trust_domain, "cluster.local");
  EXPECT_EQ(cfg.network, "");
  EXPECT_FALSE(cfg.node_name);
  EXPECT_FALSE(cfg.instance_ip);
  EXPECT_EQ(cfg.proxy_mode, ProxyMode::shared);
  EXPECT_FALSE(cfg.proxy_workload_info);
  EXPECT_EQ(cfg.worker_threads, 2u);
  EXPECT_EQ(cfg.pool_max_streams_per_connection, 100);
  EXPECT_EQ(cfg.pool_unused_release_timeout, 5min);
  EXPECT_EQ(cfg.connection_termination_deadline, 5s);
  EXPECT_EQ(cfg.inpod_uds, "/var/run/ztunnel/ztunnel.sock");
  EXPECT_EQ(cfg.packet_mark, 1337u);
  EXPECT_FALSE(cfg.tls12_enabled);
  EXPECT_TRUE(cfg.ipv6_enabled);
  EXPECT_TRUE(cfg.proxy_enabled);
  EXPECT_TRUE(cfg.dns_proxy_enabled);
}

TEST(Config, DefaultListeners) {
  Config cfg = parse_ok({});
  EXPECT_EQ(cfg.outbound_addr.to_string(), "[::]:15001");
  EXPECT_EQ(cfg.inbound_plaintext_addr.to_string(), "[::]:15006");
  EXPECT_EQ(cfg.inbound_addr.to_string(), "[::]:15008");
  EXPECT_EQ(cfg.dns_proxy_addr.to_string(), "localhost:15053");
  EXPECT_EQ(cfg.dns_proxy_addr.kind, ListenAddr::Kind::localhost);
  EXPECT_FALSE(cfg.socks5_addr);
  EXPECT_EQ(cfg.admin_addr.to_string(), "localhost:15000");
  EXPECT_EQ(cfg.stats_addr.to_string(), "[::]:15020");
  EXPECT_EQ(cfg.readiness_addr.to_string(), "[::]:15021");
}

TEST(Config, InClusterDefaultsToIstiod) {
  Config cfg = parse_ok({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}});
  EXPECT_EQ(cfg.xds_address, "https://istiod.istio-system.svc:15012");
  EXPECT_EQ(cfg.ca_address, "https://istiod.istio-system.svc:15012");
}

TEST(Config, WorkerThreadsDefaultIsQuarterOfCoresAtLeastTwo) {
  EXPECT_EQ(default_worker_threads(0), 2u);
  EXPECT_EQ(default_worker_threads(1), 2u);
  EXPECT_EQ(default_worker_threads(8), 2u);
  EXPECT_EQ(default_worker_threads(9), 3u);
  EXPECT_EQ(default_worker_threads(16), 4u);
  EXPECT_EQ(default_worker_threads(64), 16u);
  EXPECT_EQ(parse_ok({}, {}, 32).worker_threads, 8u);
  EXPECT_EQ(parse_ok({{"ZTUNNEL_CPU_LIMIT", "12"}}, {}, 64).worker_threads, 3u);
}

TEST(Config, WorkerThreadsCountAndPercentage) {
  EXPECT_EQ(parse_ok({{"ZTUNNEL_WORKER_THREADS", "4"}}).worker_threads, 4u);
  EXPECT_EQ(parse_ok({{"ZTUNNEL_WORKER_THREADS", "50%"}}, {}, 8).worker_threads, 4u);
  EXPECT_EQ(parse_ok({{"ZTUNNEL_WORKER_THREADS", "30%"}, {"ZTUNNEL_CPU_LIMIT", "16"}}).worker_threads, 5u);
  EXPECT_EQ(parse_ok({{"ZTUNNEL_WORKER_THREADS", "10%"}, {"ZTUNNEL_CPU_LIMIT", "4"}}).worker_threads, 1u);
  EXPECT_EQ(parse_ok({{"ZTUNNEL_WORKER_THREADS", "12.5%"}}, {}, 16).worker_threads, 2u);
}

TEST(Config, LocalModeNeedsNoServers) {
  Config cfg = parse_ok({{"FAKE_CA", "true"}, {"LOCAL_XDS_PATH", "./examples/localhost.yaml"}});
  EXPECT_TRUE(cfg.local_mode());
  EXPECT_FALSE(cfg.xds_address);
  EXPECT_FALSE(cfg.ca_address);
  EXPECT_TRUE(cfg.fake_ca);
  EXPECT_EQ(cfg.local_xds_path, "./examples/localhost.yaml");
  // Upstream's documented spelling, XDS_ADDRESS="", means the same.
  EXPECT_TRUE(parse_ok({{"FAKE_CA", "true"}, {"XDS_ADDRESS", ""}, {"LOCAL_XDS_PATH", "w.yaml"}}).local_mode());
  // Inline YAML works too; an explicit xDS server alongside a file is allowed.
  EXPECT_TRUE(parse_ok({{"FAKE_CA", "true"}, {"LOCAL_XDS", "workloads: []"}}).local_mode());
  Config both = parse_ok({{"XDS_ADDRESS", "istiod:15012"}, {"LOCAL_XDS_PATH", "w.yaml"}});
  EXPECT_FALSE(both.local_mode());
  EXPECT_EQ(both.xds_address, "https://istiod:15012");
}

TEST(Config, IstiodNamesAndNodeMetadata) {
  Config cfg = parse_ok({{"XDS_ADDRESS", "https://127.0.0.1:15012"},
                         {"ALT_XDS_HOSTNAME", "istiod.istio-system.svc"},
                         {"ALT_CA_HOSTNAME", "ca.istio-system.svc"},
                         {"ISTIO_META_FOO", "foo"},
                         {"ISTIO_META_CLUSTER_ID", "east"},
                         {"ISTIO_METAX", "not metadata"}});
  EXPECT_EQ(cfg.alt_xds_hostname, "istiod.istio-system.svc");
  EXPECT_EQ(cfg.alt_ca_hostname, "ca.istio-system.svc");
  EXPECT_EQ(cfg.proxy_metadata, (std::map<std::string, std::string>{{"CLUSTER_ID", "east"}, {"FOO", "foo"}}));
  EXPECT_EQ(cfg.cluster_id, "east");
  EXPECT_FALSE(parse({{"XDS_ADDRESS", "https://istiod:15012"}, {"AUTH_TOKEN", ""}}));
}

TEST(Config, ControlPlaneVariables) {
  Config cfg = parse_ok({{"XDS_ADDRESS", "http://istiod.custom:15010"},
                         {"CA_ADDRESS", "ca.example:443"},
                         {"XDS_ROOT_CA", "SYSTEM"},
                         {"CA_ROOT_CA", "-----BEGIN CERTIFICATE-----\nMII...\n-----END CERTIFICATE-----\n"},
                         {"AUTH_TOKEN", "/var/run/token"},
                         {"SECRET_TTL", "12h"},
                         {"XDS_ON_DEMAND", "true"},
                         {"ISTIO_META_DNS_CAPTURE", "false"}});
  EXPECT_EQ(cfg.xds_address, "http://istiod.custom:15010");
  EXPECT_EQ(cfg.ca_address, "https://ca.example:443");  // scheme added, as upstream
  EXPECT_EQ(cfg.xds_root_cert.kind, RootCert::Kind::system);
  EXPECT_EQ(cfg.ca_root_cert.kind, RootCert::Kind::inline_pem);
  EXPECT_EQ(cfg.auth_token, "/var/run/token");
  EXPECT_EQ(cfg.secret_ttl, 12h);
  EXPECT_TRUE(cfg.xds_on_demand);
  EXPECT_FALSE(cfg.dns_proxy_enabled);
  // FAKE_CA wins over a CA address (upstream ignores CA_ADDRESS then).
  EXPECT_FALSE(parse_ok({{"FAKE_CA", "true"}, {"CA_ADDRESS", "ca:1"}}).ca_address);
}

TEST(Config, IdentityVariables) {
  Config cfg = parse_ok({{"CLUSTER_ID", "east"},
                         {"CLUSTER_DOMAIN", "corp.local"},
                         {"TRUST_DOMAIN", "example.org"},
                         {"NETWORK", "net-1"},
                         {"NODE_NAME", "node-a"},
                         {"POD_NAME", "ztunnel-abc"},
                         {"POD_NAMESPACE", "istio-system"},
                         {"SERVICE_ACCOUNT", "ztunnel"},
                         {"INSTANCE_IP", "fd00::7"}});
  EXPECT_EQ(cfg.cluster_id, "east");
  EXPECT_EQ(cfg.cluster_domain, "corp.local");
  EXPECT_EQ(cfg.trust_domain, "example.org");
  EXPECT_EQ(cfg.network, "net-1");
  EXPECT_EQ(cfg.node_name, "node-a");
  EXPECT_EQ(cfg.pod_name, "ztunnel-abc");
  EXPECT_EQ(cfg.pod_namespace, "istio-system");
  EXPECT_EQ(cfg.service_account, "ztunnel");
  ASSERT_TRUE(cfg.instance_ip);
  EXPECT_EQ(cfg.instance_ip->to_string(), "fd00::7");
  // ISTIO_META_CLUSTER_ID wins over CLUSTER_ID, as upstream; a flag wins over both.
  EXPECT_EQ(parse_ok({{"CLUSTER_ID", "a"}, {"ISTIO_META_CLUSTER_ID", "b"}}).cluster_id, "b");
  EXPECT_EQ(parse_ok({{"ISTIO_META_CLUSTER_ID", "b"}}, {"--cluster-id=c"}).cluster_id, "c");
}

TEST(Config, DedicatedMode) {
  Config cfg = parse_ok({{"PROXY_MODE", "dedicated"}, {"PROXY_WORKLOAD_INFO", "ns1/app/sa/with/slash"}});
  EXPECT_EQ(cfg.proxy_mode, ProxyMode::dedicated);
  ASSERT_TRUE(cfg.proxy_workload_info);
  EXPECT_EQ(*cfg.proxy_workload_info, (WorkloadInfo{"ns1", "app", "sa/with/slash"}));
  EXPECT_FALSE(cfg.packet_mark);  // the in-pod default mark is for shared mode only
  EXPECT_EQ(parse_ok({{"PROXY_MODE", "shared"}}).proxy_mode, ProxyMode::shared);
}

TEST(Config, RuntimeVariables) {
  Config cfg = parse_ok({{"POOL_MAX_STREAMS_PER_CONNECTION", "250"},
                         {"POOL_UNUSED_RELEASE_TIMEOUT", "30s"},
                         {"CONNECTION_TERMINATION_DEADLINE", "500ms"},
                         {"INPOD_UDS", "/tmp/zds.sock"},
                         {"PACKET_MARK", "42"},
                         {"TLS12_ENABLED", "true"}});
  EXPECT_EQ(cfg.pool_max_streams_per_connection, 250);
  EXPECT_EQ(cfg.pool_unused_release_timeout, 30s);
  EXPECT_EQ(cfg.connection_termination_deadline, 500ms);
  EXPECT_EQ(cfg.inpod_uds, "/tmp/zds.sock");
  EXPECT_EQ(cfg.packet_mark, 42u);
  EXPECT_TRUE(cfg.tls12_enabled);
}

TEST(Config, TerminationDeadlineFromGracePeriod) {
  auto deadline = [](const char* grace_s) {
    return parse_ok({{"TERMINATION_GRACE_PERIOD_SECONDS", grace_s}}).connection_termination_deadline;
  };
  EXPECT_EQ(deadline("30"), 25s);  // five seconds of margin above 10 s
  EXPECT_EQ(deadline("10"), 9s);   // one second at or below
  EXPECT_EQ(deadline("1"), 1s);    // never below one second
  EXPECT_EQ(deadline("0"), 1s);
  EXPECT_EQ(parse_ok({{"TERMINATION_GRACE_PERIOD_SECONDS", "30"}, {"CONNECTION_TERMINATION_DEADLINE", "2s"}})
                .connection_termination_deadline,
            2s);
}

TEST(Config, ListenerVariables) {
  Config cfg = parse_ok({{"IPV6_ENABLED", "false"},
                         {"UNSTABLE_ENABLE_SOCKS5", "true"},
                         {"ISTIO_META_DNS_PROXY_ADDR", "127.0.0.2:5353"}});
  EXPECT_FALSE(cfg.ipv6_enabled);
  EXPECT_EQ(cfg.outbound_addr.to_string(), "0.0.0.0:15001");
  EXPECT_EQ(cfg.inbound_addr.to_string(), "0.0.0.0:15008");
  EXPECT_EQ(cfg.stats_addr.to_string(), "0.0.0.0:15020");
  ASSERT_TRUE(cfg.socks5_addr);
  EXPECT_EQ(cfg.socks5_addr->to_string(), "127.0.0.1:15080");
  EXPECT_EQ(cfg.dns_proxy_addr, ListenAddr::socket(*Endpoint::parse("127.0.0.2:5353")));
  EXPECT_EQ(parse_ok({{"ISTIO_META_DNS_PROXY_ADDR", "localhost:53"}}).dns_proxy_addr, ListenAddr::localhost(53));
  EXPECT_FALSE(parse_ok({{"ENABLE_PROXY", "false"}}).proxy_enabled);
}

TEST(Config, FlagsOverrideEnvironment) {
  EnvMap env{{"XDS_ADDRESS", "env-istiod:15012"}, {"SECRET_TTL", "1h"}, {"ZTUNNEL_WORKER_THREADS", "3"},
             {"FAKE_CA", "false"}, {"PROXY_MODE", "dedicated"}, {"PROXY_WORKLOAD_INFO", "a/b/c"},
             {"TLS12_ENABLED", "true"}};
  Config cfg = parse_ok(env, {"--xds-address", "flag-istiod:15012", "--secret-ttl=2h", "--worker-threads=6",
                              "--fake-ca", "--proxy-mode=shared", "--tls12-enabled=false", "--admin-port=16000",
                              "--stats-port", "16020", "--trust-domain=td.example"});
  EXPECT_EQ(cfg.xds_address, "https://flag-istiod:15012");
  EXPECT_EQ(cfg.secret_ttl, 2h);
  EXPECT_EQ(cfg.worker_threads, 6u);
  EXPECT_TRUE(cfg.fake_ca);
  EXPECT_FALSE(cfg.ca_address);
  EXPECT_EQ(cfg.proxy_mode, ProxyMode::shared);
  EXPECT_FALSE(cfg.tls12_enabled);
  EXPECT_EQ(cfg.admin_addr, ListenAddr::localhost(16000));
  EXPECT_EQ(cfg.stats_addr.port(), 16020);
  EXPECT_FALSE(cfg.listen_on_workload_ips);
  EXPECT_EQ(cfg.trust_domain, "td.example");
}

TEST(Config, LocalModeByFlags) {
  Config cfg = parse_ok({}, {"--fake-ca", "--local-xds-path", "w.yaml"});
  EXPECT_TRUE(cfg.local_mode());
  EXPECT_FALSE(cfg.ca_address);
}

TEST(Config, BadValuesNameTheSettingAndValue) {
  struct Case {
    EnvMap env;
    std::vector<std::string> args;
    std::string error;
  };
  const std::vector<Case> cases = {
      {{{"ZTUNNEL_WORKER_THREADS", "abc"}}, {}, "ZTUNNEL_WORKER_THREADS=\"abc\": not a positive integer"},
      {{{"ZTUNNEL_WORKER_THREADS", "0"}}, {}, "ZTUNNEL_WORKER_THREADS=\"0\": out of range (1 to 1024)"},
      {{{"ZTUNNEL_WORKER_THREADS", "150%"}}, {}, "ZTUNNEL_WORKER_THREADS=\"150%\": percentage must be above 0 and at most 100"},
      {{{"ZTUNNEL_WORKER_THREADS", "x%"}}, {}, "ZTUNNEL_WORKER_THREADS=\"x%\": not a positive integer or percentage"},
      {{}, {"--worker-threads=-1"}, "--worker-threads=\"-1\": not a positive integer"},
      {{{"ZTUNNEL_CPU_LIMIT", "many"}}, {}, "ZTUNNEL_CPU_LIMIT=\"many\": not a positive integer"},
      {{{"SECRET_TTL", "1 day"}}, {}, "SECRET_TTL=\"1 day\": not a duration (examples: 500ms, 10s, 5m, 24h, 1h30m)"},
      {{{"SECRET_TTL", "0s"}}, {}, "SECRET_TTL=\"0s\": must be longer than zero"},
      {{}, {"--secret-ttl=forever"}, "--secret-ttl=\"forever\": not a duration (examples: 500ms, 10s, 5m, 24h, 1h30m)"},
      {{{"POOL_UNUSED_RELEASE_TIMEOUT", "5"}, {"CONNECTION_TERMINATION_DEADLINE", "soon"}}, {},
       "CONNECTION_TERMINATION_DEADLINE=\"soon\": not a duration (examples: 500ms, 10s, 5m, 24h, 1h30m)"},
      {{{"TERMINATION_GRACE_PERIOD_SECONDS", "30s"}}, {}, "TERMINATION_GRACE_PERIOD_SECONDS=\"30s\": not an integer"},
      {{{"FAKE_CA", "yes"}}, {}, "FAKE_CA=\"yes\": not a boolean (true or false)"},
      {{{"TLS12_ENABLED", "1"}}, {}, "TLS12_ENABLED=\"1\": not a boolean (true or false)"},
      {{{"XDS_ON_DEMAND", "True"}}, {}, "XDS_ON_DEMAND=\"True\": not a boolean (true or false)"},
      {{{"UNSTABLE_ENABLE_SOCKS5", "on"}}, {}, "UNSTABLE_ENABLE_SOCKS5=\"on\": not a boolean (true or false)"},
      {{}, {"--fake-ca=maybe"}, "--fake-ca=\"maybe\": not a boolean (true or false)"},
      {{{"POOL_MAX_STREAMS_PER_CONNECTION", "70000"}}, {},
       "POOL_MAX_STREAMS_PER_CONNECTION=\"70000\": out of range (1 to 65535)"},
      {{{"PROXY_MODE", "sidecar"}}, {}, "PROXY_MODE=\"sidecar\": must be shared or dedicated"},
      {{{"PROXY_MODE", "dedicated"}, {"PROXY_WORKLOAD_INFO", "ns/name"}}, {},
       "PROXY_WORKLOAD_INFO=\"ns/name\": expected namespace/name/service-account"},
      {{{"INSTANCE_IP", "10.0.0.300"}}, {}, "INSTANCE_IP=\"10.0.0.300\": not an IP address"},
      {{{"XDS_ADDRESS", "istiod :15012"}}, {}, "XDS_ADDRESS=\"istiod :15012\": not a URI (expected host:port or https://host:port)"},
      {{{"CA_ADDRESS", "https://"}}, {}, "CA_ADDRESS=\"https://\": not a URI (expected host:port or https://host:port)"},
      {{{"TRUST_DOMAIN", "a/b"}}, {}, "TRUST_DOMAIN=\"a/b\": not a trust domain (non-empty, no '/' or spaces)"},
      {{{"ISTIO_META_DNS_PROXY_ADDR", "localhost:0"}}, {}, "ISTIO_META_DNS_PROXY_ADDR=\"localhost:0\": not a port (1 to 65535)"},
      {{{"ISTIO_META_DNS_PROXY_ADDR", "dns:53"}}, {}, "ISTIO_META_DNS_PROXY_ADDR=\"dns:53\": expected localhost:PORT or IP:PORT"},
      {{}, {"--admin-port=0"}, "--admin-port=\"0\": out of range (1 to 65535)"},
      {{{"PACKET_MARK", "4294967296"}}, {}, "PACKET_MARK=\"4294967296\": out of range (0 to 4294967295)"},
      {{{"INPOD_UDS", ""}}, {}, "INPOD_UDS=\"\": empty path"},
      {{{"PROXY_CONFIG", "{\"proxyAdminPort\": 1}"}}, {},
       "PROXY_CONFIG=\"{\"proxyAdminPort\": 1}\": not supported; use --admin-port, --stats-port, XDS_ADDRESS"},
  };
  for (const Case& c : cases) EXPECT_EQ(error_of(c.env, c.args), c.error);
}

TEST(Config, SeveralNodeProxiesOnOneHost) {
  Config cfg = parse_ok({{"NODE_NAME", "node-b"}},
                        {"--listen-on-workload-ips", "--admin-port=16000", "--stats-port=16020", "--readiness-port=16021"});
  EXPECT_TRUE(cfg.listen_on_workload_ips);
  EXPECT_EQ(cfg.readiness_addr.port(), 16021);
  EXPECT_NE(cfg.summary().find("(ports on the IPs of node node-b's workloads)"), std::string::npos) << cfg.summary();
  EXPECT_EQ(error_of({}, {"--listen-on-workload-ips"}),
            "--listen-on-workload-ips needs NODE_NAME: it names whose workloads' IPs to bind");
  EXPECT_EQ(error_of({}, {"--readiness-port=15020"}), "--stats-port=\"15020\": same port as the readiness listener");
}

TEST(Config, InPodMode) {
  Config off = parse_ok({});
  EXPECT_FALSE(off.inpod_enabled);
  Config on = parse_ok({{"INPOD_ENABLED", "true"}, {"NODE_NAME", "node1"}, {"INPOD_UDS", "/run/agent.sock"}});
  EXPECT_TRUE(on.inpod_enabled);
  EXPECT_EQ(on.inpod_uds, "/run/agent.sock");
  EXPECT_EQ(on.packet_mark, 1337u);
  EXPECT_TRUE(on.not_supported_yet.empty() || on.not_supported_yet.front().find("INPOD") == std::string::npos);
  EXPECT_TRUE(parse_ok({{"NODE_NAME", "n"}}, {"--inpod-enabled"}).inpod_enabled);
  EXPECT_EQ(error_of({{"INPOD_ENABLED", "true"}}),
            "INPOD_ENABLED needs NODE_NAME: an enrolled pod is found in the state among this node's workloads");
  EXPECT_EQ(error_of({{"INPOD_ENABLED", "true"}, {"NODE_NAME", "n"}}, {"--listen-on-workload-ips"}),
            "INPOD_ENABLED and --listen-on-workload-ips: in-pod mode listens inside each pod, not on node addresses");
  EXPECT_EQ(error_of({{"INPOD_ENABLED", "maybe"}}).substr(0, 21), "INPOD_ENABLED=\"maybe\"");
}

TEST(Config, ConflictingSettingsAreErrors) {
  EXPECT_EQ(error_of({{"XDS_ADDRESS", ""}}),
            "XDS_ADDRESS is empty and neither LOCAL_XDS_PATH nor LOCAL_XDS is set: there would be no source of workloads");
  EXPECT_EQ(error_of({{"CA_ADDRESS", ""}}), "CA_ADDRESS is empty and FAKE_CA is not true: no way to get certificates");
  EXPECT_EQ(error_of({{"LOCAL_XDS_PATH", "a.yaml"}, {"LOCAL_XDS", "workloads: []"}}),
            "only one of LOCAL_XDS_PATH or LOCAL_XDS may be set");
  EXPECT_EQ(error_of({{"PROXY_MODE", "dedicated"}}), "PROXY_MODE=dedicated requires PROXY_WORKLOAD_INFO to be set");
  EXPECT_EQ(error_of({{"XDS_ON_DEMAND", "true"}}),
            "XDS_ON_DEMAND=true needs the DNS proxy off (ISTIO_META_DNS_CAPTURE=false): the DNS proxy does not "
            "support on-demand xDS");
  EXPECT_EQ(error_of({{"ENABLE_PROXY", "false"}, {"ISTIO_META_DNS_CAPTURE", "false"}}),
            "ENABLE_PROXY=false and ISTIO_META_DNS_CAPTURE=false: ztunnel would run without any servers");
  EXPECT_EQ(error_of({}, {"--admin-port=15020"}), "--admin-port=\"15020\": same port as the stats or readiness listener");
  EXPECT_EQ(error_of({}, {"--stats-port=15021"}), "--stats-port=\"15021\": same port as the readiness listener");
  // Flags are named as flags in conflicts too.
  EXPECT_EQ(error_of({}, {"--xds-address", ""}),
            "--xds-address is empty and neither LOCAL_XDS_PATH nor LOCAL_XDS is set: there would be no source of "
            "workloads");
}

TEST(Config, BadCommandLinesAreErrorsNotExceptions) {
  EXPECT_EQ(error_of({}, {"--no-such-flag"}).rfind("command line: ", 0), 0u);
  EXPECT_EQ(error_of({}, {"stray"}).rfind("command line: ", 0), 0u);
  EXPECT_EQ(error_of({}, {"--secret-ttl"}).rfind("command line: ", 0), 0u);  // value missing
  EXPECT_NE(error_of({}, {"--help"}), "<parsed fine>");
}

TEST(Config, HelpListsEveryFlagAndVariable) {
  EXPECT_TRUE(help_requested({"--fake-ca", "--help"}));
  EXPECT_TRUE(help_requested({"-h"}));
  EXPECT_FALSE(help_requested({"--fake-ca"}));
  EXPECT_FALSE(help_requested({"--", "--help"}));
  std::string help = help_text("ztunnel");
  EXPECT_NE(help.find("Usage: ztunnel"), std::string::npos) << help;
  for (const FlagSpec& spec : flag_specs()) {
    EXPECT_NE(help.find(spec.flag), std::string::npos) << spec.flag;
    EXPECT_NE(help.find(spec.key), std::string::npos) << spec.key;
    EXPECT_FALSE(spec.help.empty()) << spec.flag;
  }
}

TEST(Config, SummaryStatesTheStartupFacts) {
  Config xds = parse_ok({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}}, {}, 16);
  EXPECT_EQ(xds.summary(),
            "ztunnel config: mode=shared xds=https://istiod.istio-system.svc:15012 "
            "ca=https://istiod.istio-system.svc:15012 trust_domain=cluster.local cluster=Kubernetes "
            "worker_threads=4 listeners: outbound=[::]:15001 inbound=[::]:15008 inbound_plaintext=[::]:15006 "
            "dns=localhost:15053 admin=localhost:15000 stats=[::]:15020 readiness=[::]:15021");
  Config local = parse_ok({{"FAKE_CA", "true"}, {"LOCAL_XDS_PATH", "w.yaml"}, {"NETWORK", "n1"},
                           {"UNSTABLE_ENABLE_SOCKS5", "true"}});
  std::string line = local.summary();
  EXPECT_NE(line.find("local_xds=w.yaml ca=fake"), std::string::npos) << line;
  EXPECT_NE(line.find("network=n1"), std::string::npos) << line;
  EXPECT_NE(line.find("socks5=127.0.0.1:15080"), std::string::npos) << line;
  EXPECT_EQ(line.find(" xds="), std::string::npos) << line;
}

}  // namespace
}  // namespace zt::app
