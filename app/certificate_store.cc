#include "app/certificate_store.h"

namespace zt::app {

void CertificateStore::put(const std::string& identity, std::shared_ptr<const tls::Credentials> creds) {
  std::lock_guard lock(mu_);
  creds_[identity] = std::move(creds);
}

void CertificateStore::forget(const std::string& identity) {
  std::lock_guard lock(mu_);
  creds_.erase(identity);
}

void CertificateStore::set_roots(std::vector<tls::Certificate> roots) {
  std::lock_guard lock(mu_);
  roots_ = std::move(roots);
}

std::shared_ptr<const tls::Credentials> CertificateStore::get(const std::string& identity) const {
  {
    std::lock_guard lock(mu_);
    if (auto it = creds_.find(identity); it != creds_.end()) return it->second;
  }
  if (on_miss_) on_miss_(identity);
  return nullptr;
}

std::vector<tls::Certificate> CertificateStore::roots() const {
  std::lock_guard lock(mu_);
  return roots_;
}

}  // namespace zt::app
