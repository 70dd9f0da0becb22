#include "app/istiod.h"

#include <cctype>
#include <fstream>
#include <sstream>

#include "tls/context.h"

namespace zt::app {
namespace {

// Debian's bundle of the operating system's trusted roots (ca-certificates).
constexpr const char* kSystemRoots = "/etc/ssl/certs/ca-certificates.crt";

Result<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(Errc::invalid_argument, "cannot read " + path);
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) return Error(Errc::invalid_argument, "cannot read " + path);
  return out.str();
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

}  // namespace

std::string IstiodAddress::authority() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<IstiodAddress> parse_istiod_address(const std::string& uri) {
  auto bad = [&](const std::string& why) { return Error(Errc::invalid_argument, "address " + uri + ": " + why); };
  IstiodAddress a;
  std::string_view rest = uri;
  if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    a.tls = false;
    rest.remove_prefix(7);
  } else {
    return bad("the scheme must be https or http");
  }
  rest = rest.substr(0, rest.find_first_of("/?#"));
  std::string_view port;
  if (rest.starts_with("[")) {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad("unclosed '['");
    a.host = std::string(rest.substr(1, close - 1));
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("junk after ']'");
      port = after.substr(1);
    }
    if (!IpAddr::parse(a.host)) return bad("not an IPv6 address in brackets");
  } else {
    const size_t colon = rest.rfind(':');
    a.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) port = rest.substr(colon + 1);
  }
  if (a.host.empty()) return bad("no host");
  if (port.empty()) {
    a.port = a.tls ? 443 : 80;
  } else {
    uint32_t p = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || (p = p * 10 + uint32_t(c - '0')) > 65535) return bad("bad port");
    }
    if (p == 0) return bad("bad port");
    a.port = uint16_t(p);
  }
  return a;
}

std::string root_file(const RootCert& root) {
  switch (root.kind) {
    case RootCert::Kind::file: return root.value;
    case RootCert::Kind::system: return kSystemRoots;
    case RootCert::Kind::inline_pem: return "";
  }
  return "";
}

Result<std::vector<tls::Certificate>> load_roots(const RootCert& root) {
  std::string pem = root.value;
  const std::string where = root.kind == RootCert::Kind::inline_pem ? std::string("inline PEM") : root_file(root);
  if (root.kind != RootCert::Kind::inline_pem) {
    auto text = read_text(root_file(root));
    if (!text) return Error(Errc::invalid_argument, "root certificates: " + text.error().detail);
    pem = std::move(*text);
  }
  auto certs = tls::parse_pem_chain(pem);
  if (!certs) return Error(Errc::invalid_argument, "root certificates in " + where + ": " + certs.error().message());
  if (certs->empty()) return Error(Errc::invalid_argument, "root certificates in " + where + ": none found");
  return std::move(*certs);
}

Result<h2::Headers> CallMetadata::operator()() const {
  h2::Headers h;
  if (token_path_) {
    auto text = read_text(*token_path_);
    if (!text) return Error(Errc::invalid_argument, "token: " + text.error().detail);
    std::string token = trim(std::move(*text));
    if (token.empty()) return Error(Errc::invalid_argument, "token: " + *token_path_ + " is empty");
    h.emplace_back("authorization", "Bearer " + token);
  }
  h.emplace_back("clusterid", cluster_id_);
  return h;
}

Result<std::optional<std::string>> check_token(const Config& cfg, Log& log) {
  if (!cfg.auth_token) {
    std::string path(defaults::auth_token_path);
    if (std::ifstream(path).good()) return std::optional<std::string>(path);
    ZT_LOG(log, warn, "xds", "no token file: calls to istiod carry no token", {"path", path});
    return std::optional<std::string>();
  }
  CallMetadata probe(cfg.auth_token, cfg.cluster_id);
  if (auto h = probe(); !h) return Error(Errc::invalid_argument, "AUTH_TOKEN: " + h.error().detail);
  return std::optional<std::string>(*cfg.auth_token);
}

Result<std::shared_ptr<const tls::TlsContext>> istiod_tls(const IstiodAddress& address,
                                                          const std::vector<tls::Certificate>& roots,
                                                          const std::optional<std::string>& alt_hostname) {
  tls::TlsConfig tc;
  tc.role = tls::TlsRole::client;
  tc.roots = roots;
  tc.expected_server_name = alt_hostname.value_or(address.host);
  return tls::TlsContext::create(tc);
}

Result<std::unique_ptr<xds::grpc::Channel>> make_istiod_channel(Env& env, const IstiodAddress& address,
                                                                const std::vector<tls::Certificate>& roots,
                                                                const std::optional<std::string>& alt_hostname) {
  xds::grpc::ChannelConfig cc;
  cc.host = address.host;
  cc.address.port = address.port;
  cc.authority = address.authority();
  if (address.tls) {
    auto ctx = istiod_tls(address, roots, alt_hostname);
    if (!ctx) return Error(Errc::invalid_argument, "TLS to " + address.authority() + ": " + ctx.error().message());
    cc.tls = std::move(*ctx);
  }
  return std::make_unique<xds::grpc::Channel>(env, std::move(cc));
}

}  // namespace zt::app
