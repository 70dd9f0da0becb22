#include "e2e/fake_istiod/mesh_file.h"

#include <openssl/evp.h>

#include <fstream>
#include <sstream>

#include "core/mesh/local_config.h"
#include "core/mesh/proto_encode.h"
#include "xds/proto/workload.pb.h"

namespace zt::e2e::fake_istiod {

namespace {

namespace mesh = zt::core::mesh;

// The first 16 hex digits of the SHA-256 of the bytes: equal bytes, equal
// version, in this process and the next.
std::string version_of(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr);
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < 8 && i < len; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 0xf];
  }
  return out;
}

// "network/ip" for each address of an Address resource.
std::vector<std::string> address_aliases(const std::string& bytes) {
  istio::workload::Address a;
  std::vector<std::string> out;
  if (!a.ParseFromString(bytes)) return out;
  auto add = [&](const std::string& network, const std::string& raw) {
    if (auto ip = IpAddr::from_raw(raw)) out.push_back(network + "/" + ip->to_string());
  };
  if (a.has_workload()) {
    for (const std::string& raw : a.workload().addresses()) add(a.workload().network(), raw);
  } else if (a.has_service()) {
    for (const auto& na : a.service().addresses()) add(na.network(), na.address());
  }
  return out;
}

ResourceMap versioned(const std::vector<mesh::NamedResource>& resources, bool addresses) {
  ResourceMap out;
  // A name given twice: the later one wins, as when the store applies them.
  for (const mesh::NamedResource& r : resources) {
    out[r.name] = Resource{version_of(r.bytes), r.bytes, addresses ? address_aliases(r.bytes) : std::vector<std::string>{}};
  }
  return out;
}

}  // namespace

const ResourceMap& MeshState::of(std::string_view type_url) const {
  static const ResourceMap none;
  auto it = by_type.find(type_url);
  return it == by_type.end() ? none : it->second;
}

MeshFile::MeshFile(std::string path) : path_(std::move(path)) {}

Result<bool> MeshFile::reload() {
  std::ifstream in(path_);
  std::stringstream text;
  if (in) text << in.rdbuf();
  if (!in) {
    const std::string marker = "\x01unreadable";  // differs from any content, so reported once
    if (seen_any_ && last_seen_ == marker) return false;
    seen_any_ = true;
    last_seen_ = marker;
    return Error(Errc::io_error, "cannot read " + path_);
  }
  if (seen_any_ && text.str() == last_seen_) return false;
  seen_any_ = true;
  last_seen_ = text.str();

  auto config = mesh::parse_local_config(last_seen_, path_);
  if (!config) return config.error();
  auto resources = mesh::encode_local_config(*config);
  if (!resources) return Error(Errc::invalid_argument, path_ + ": " + resources.error().detail);

  auto next = std::make_shared<MeshState>();
  next->by_type[std::string(mesh::address_type_url)] = versioned(resources->addresses, true);
  next->by_type[std::string(mesh::authorization_type_url)] = versioned(resources->authorizations, false);
  std::lock_guard lock(mu_);
  for (const auto& [type, resources] : raw_) {
    for (const auto& [name, r] : resources) next->by_type[type][name] = r;
  }
  if (current_ && current_->by_type == next->by_type) return false;  // only comments or order changed
  next->revision = current_ ? current_->revision + 1 : 1;
  current_ = std::move(next);
  return true;
}

void MeshFile::add_raw(const std::string& type_url, const std::string& name, std::string bytes) {
  std::lock_guard lock(mu_);
  Resource r{version_of(bytes), std::move(bytes)};
  raw_[type_url][name] = r;
  auto next = std::make_shared<MeshState>(current_ ? *current_ : MeshState{});
  next->by_type[type_url][name] = std::move(r);
  next->revision = next->revision + 1;
  current_ = std::move(next);
}

std::shared_ptr<const MeshState> MeshFile::current() const {
  std::lock_guard lock(mu_);
  return current_ ? current_ : std::make_shared<const MeshState>();
}

}  // namespace zt::e2e::fake_istiod
