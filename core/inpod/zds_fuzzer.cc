// libFuzzer: any bytes and descriptor count decode to a request or an
// error; a request re-encodes and decodes to the same kind and uid.
#include <cstddef>
#include <cstdint>

#include "core/inpod/zds.h"
#include "io/assert.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t descriptors = data[0] % 3;
  auto r = zt::core::inpod::decode_request({data + 1, size - 1}, descriptors);
  if (!r) return 0;
  const std::string again = zt::core::inpod::encode_request(*r);
  auto r2 = zt::core::inpod::decode_request({reinterpret_cast<const uint8_t*>(again.data()), again.size()}, descriptors);
  ZT_ASSERT(r2.ok());
  ZT_ASSERT(r2->index() == r->index());
  return 0;
}
