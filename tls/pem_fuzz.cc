// libFuzzer target: PEM bundles, private keys, CSRs, DER certificates and
// SPIFFE identities from arbitrary bytes must parse or fail cleanly, never
// crash or leak.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tls/cert.h"
#include "tls/identity.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zt::tls;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)Identity::parse(text);
  if (auto chain = parse_pem_chain(text)) {
    for (const auto& c : *chain) {
      (void)c.identity();
      (void)c.uri_sans();
      (void)c.valid_at(from_unix_seconds(1'780'000'000));
      (void)Certificate::from_der(c.to_der());
    }
  }
  (void)KeyPair::from_pem(text);
  (void)parse_csr(text);
  (void)Certificate::from_der({data, size});
  ERR_clear_error();
  return 0;
}
