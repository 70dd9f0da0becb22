#include "app/version.h"

#include "app/build_info.h"
#include "tls/context.h"

namespace zt::app {

const char* version() { return build::kVersion; }

std::string build_info(const EnvMap& env) {
  auto istio = env.find("ISTIO_META_ISTIO_VERSION");
  return std::string("version.BuildInfo{Version:\"") + build::kVersion + "\", GitRevision:\"" + build::kGitRevision +
         "\", CompilerVersion:\"" + build::kCompiler + "\", BuildProfile:\"" + build::kBuildProfile +
         "\", BuildStatus:\"" + build::kBuildStatus + "\", IstioVersion:\"" +
         (istio != env.end() ? istio->second : std::string("unknown")) + "\", CryptoProvider:\"boringssl" +
         (tls::fips_mode() ? "-fips" : "") + "\"}";
}

}  // namespace zt::app
