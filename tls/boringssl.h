// The one way tls/ includes BoringSSL, with the checks that keep OpenSSL out.
//
// BoringSSL and OpenSSL 3 export the same symbol names; a process that loads
// both crashes. This header refuses to compile against OpenSSL's headers, and
// the build points only at BoringSSL (Debian's android-libboringssl-dev, or a
// FIPS build dropped into vendor/boringssl-fips).
//
//   #include "tls/boringssl.h"
//   bssl::UniquePtr<X509> cert(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr));
#pragma once

#include <openssl/base.h>

#ifndef OPENSSL_IS_BORINGSSL
#error "tls/ is written against BoringSSL; OpenSSL headers were found first on the include path"
#endif

#include <openssl/bio.h>
#include <openssl/bytestring.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <string>

namespace zt::tls {

// The text of the oldest queued BoringSSL error (and clears the queue), for
// Error::detail.
inline std::string last_ssl_error(const char* what) {
  uint32_t code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return what;
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return std::string(what) + ": " + buf;
}

}  // namespace zt::tls
