#include "tls/identity.h"

namespace zt::tls {
namespace {

constexpr std::string_view kScheme = "spiffe://";

bool valid_segment(std::string_view s) {
  if (s.empty() || s == "." || s == "..") return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

Error malformed(std::string_view uri, std::string_view why) {
  std::string shown(uri.substr(0, 200));
  return Error(Errc::invalid_argument, "malformed SPIFFE identity '" + shown + "': " + std::string(why));
}

}  // namespace

bool valid_trust_domain(std::string_view td) {
  if (td.empty() || td.size() > 255) return false;
  for (char c : td) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

Identity::Identity(std::string trust_domain, std::string ns, std::string service_account)
    : trust_domain_(std::move(trust_domain)), ns_(std::move(ns)), service_account_(std::move(service_account)) {}

Result<Identity> Identity::parse(std::string_view uri) {
  if (uri.size() > uri_bytes_max) return malformed(uri, "longer than 2048 bytes");
  if (uri.substr(0, kScheme.size()) != kScheme) return malformed(uri, "does not start with spiffe://");
  std::string_view rest = uri.substr(kScheme.size());
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return malformed(uri, "no path after the trust domain");
  std::string_view td = rest.substr(0, slash);
  if (!valid_trust_domain(td)) return malformed(uri, "bad trust domain");
  std::string_view path = rest.substr(slash + 1);
  // Exactly four segments: ns/<ns>/sa/<sa>.
  std::string_view seg[4];
  for (int i = 0; i < 4; ++i) {
    const size_t next = path.find('/');
    if (i < 3 && next == std::string_view::npos) return malformed(uri, "path is not ns/<namespace>/sa/<account>");
    seg[i] = path.substr(0, next);
    path = next == std::string_view::npos ? std::string_view() : path.substr(next + 1);
    if (i == 3 && next != std::string_view::npos) return malformed(uri, "path has more than four segments");
  }
  if (seg[0] != "ns" || seg[2] != "sa") return malformed(uri, "path is not ns/<namespace>/sa/<account>");
  if (!valid_segment(seg[1])) return malformed(uri, "bad namespace");
  if (!valid_segment(seg[3])) return malformed(uri, "bad service account");
  return Identity(std::string(td), std::string(seg[1]), std::string(seg[3]));
}

std::string Identity::to_string() const { return std::string(kScheme) + without_scheme(); }

std::string Identity::without_scheme() const { return trust_domain_ + "/ns/" + ns_ + "/sa/" + service_account_; }

}  // namespace zt::tls
