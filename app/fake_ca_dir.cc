#include "app/certificate_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace zt::app {
namespace {

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error(Errc::io_error, path + ": cannot be read");
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// Writes `text` to `path` (with `mode`) unless it exists: written aside,
// then link()ed, which fails if another process got there first.
Result<bool> write_exclusive(const std::string& path, const std::string& text, mode_t mode) {
  const std::string aside = path + ".tmp." + std::to_string(getpid());
  {
    const int fd = ::open(aside.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return Error(Errc::invalid_argument, aside + ": cannot be written: " + std::strerror(errno));
    // The mode asked for, whatever the umask.
    const bool written = fchmod(fd, mode) == 0 && ::write(fd, text.data(), text.size()) == ssize_t(text.size());
    ::close(fd);
    if (!written) {
      unlink(aside.c_str());
      return Error(Errc::invalid_argument, aside + ": cannot be written");
    }
  }
  const int rc = link(aside.c_str(), path.c_str());
  const int err = errno;
  unlink(aside.c_str());
  if (rc == 0) return true;
  if (err == EEXIST) return false;
  return Error(Errc::invalid_argument, path + ": " + std::strerror(err));
}

Result<tls::Ca> load(const std::string& dir, const tls::CaOptions& opts, Rng rng) {
  auto cert_pem = read_file(dir + "/ca-cert.pem");
  if (!cert_pem) return cert_pem.error();
  auto key_pem = read_file(dir + "/ca-key.pem");
  if (!key_pem) return key_pem.error();
  auto cert = tls::Certificate::from_pem(*cert_pem);
  if (!cert) return Error(Errc::invalid_argument, dir + "/ca-cert.pem: " + cert.error().detail);
  auto key = tls::KeyPair::from_pem(*key_pem);
  if (!key) return Error(Errc::invalid_argument, dir + "/ca-key.pem: " + key.error().detail);
  auto ca = tls::Ca::from_root(opts, rng, std::move(*key), std::move(*cert));
  if (!ca) return Error(Errc::invalid_argument, dir + ": " + ca.error().detail);
  return ca;
}

}  // namespace

Result<tls::Ca> open_fake_ca(const std::optional<std::string>& dir, const std::string& trust_domain, Rng rng,
                             WallTime now) {
  tls::CaOptions opts{trust_domain};
  if (!dir) return tls::Ca::create(opts, rng, now);
  // Created when missing, for its owner only: it holds the CA's key.
  std::error_code ec;
  if (!std::filesystem::exists(*dir, ec)) {
    std::filesystem::create_directories(*dir, ec);
    if (ec) return Error(Errc::invalid_argument, "--fake-ca-dir=\"" + *dir + "\": cannot be created: " + ec.message());
    if (chmod(dir->c_str(), 0700) != 0) {
      return Error(Errc::invalid_argument, "--fake-ca-dir=\"" + *dir + "\": " + std::strerror(errno));
    }
  } else if (!std::filesystem::is_directory(*dir, ec)) {
    return Error(Errc::invalid_argument, "--fake-ca-dir=\"" + *dir + "\": not a directory");
  }
  if (access((*dir + "/ca-cert.pem").c_str(), F_OK) == 0) return load(*dir, opts, rng);
  auto ca = tls::Ca::create(opts, rng, now);
  if (!ca) return ca;
  // The key first: a reader that finds the certificate finds its key too.
  auto key_written = write_exclusive(*dir + "/ca-key.pem", ca->root_key().to_pem(), 0600);
  if (!key_written) return key_written.error();
  if (!*key_written) {
    // Another process is creating the root; wait briefly for its certificate.
    for (int i = 0; i < 50 && access((*dir + "/ca-cert.pem").c_str(), F_OK) != 0; ++i) usleep(20'000);
    return load(*dir, opts, rng);
  }
  auto cert_written = write_exclusive(*dir + "/ca-cert.pem", ca->root().to_pem(), 0644);
  if (!cert_written) return cert_written.error();
  return ca;
}

}  // namespace zt::app
