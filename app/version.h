// What `ztunnel version` prints and the start-up log names: upstream's
// BuildInfo line, with our compiler in place of the Rust version.
//
//   version.BuildInfo{Version:"0.1.0", GitRevision:"d84704f", CompilerVersion:"GNU 12.2.0",
//     BuildProfile:"release", BuildStatus:"Clean", IstioVersion:"unknown", CryptoProvider:"boringssl"}
#pragma once

#include <string>

#include "app/config.h"

namespace zt::app {

const char* version();
// IstioVersion comes from ISTIO_META_ISTIO_VERSION, as upstream reads it.
std::string build_info(const EnvMap& env);

}  // namespace zt::app
