// The command-line flags of the ztunnel binary: one table naming each flag,
// the environment variable it overrides, and its help line; parsing with
// CLI11 (exceptions caught here, never passed on).
//
//   Result<FlagValues> flags = parse_flags({"--fake-ca", "--secret-ttl=1h"});
//   // (*flags)["FAKE_CA"] == "true", (*flags)["SECRET_TTL"] == "1h"
//   std::string help = flags_help("ztunnel");
#pragma once

#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "io/result.h"

namespace zt::app {

struct FlagSpec {
  std::string_view flag;  // "--xds-address"
  // The setting's key: the upstream environment variable it stands for, or,
  // for settings upstream takes only from its mesh config, the flag itself.
  std::string_view key;
  std::string_view help;  // what it does, its default
  bool boolean = false;   // "--fake-ca" alone means true; "--fake-ca=false" allowed
};

std::span<const FlagSpec> flag_specs();
// The flag whose key is `key`, or nullptr.
const FlagSpec* flag_for_key(std::string_view key);

// Setting key -> text, for the flags present in `args` (argv without argv[0]).
using FlagValues = std::map<std::string, std::string, std::less<>>;
Result<FlagValues> parse_flags(const std::vector<std::string>& args);

std::string flags_help(std::string_view program_name);

}  // namespace zt::app
