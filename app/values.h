// Text-to-value parsers for configuration settings (durations, booleans,
// counts), written to accept what upstream ztunnel accepts in its
// environment variables. Each returns the bare reason on failure; the caller
// adds the setting's name and the bad text.
//
//   Result<Duration> ttl = parse_duration("24h");       // 24 hours
//   Result<bool> on = parse_bool("true");                // true
//   Result<uint64_t> n = parse_unsigned("100", 65535);   // 100
#pragma once

#include <cstdint>
#include <string_view>

#include "io/result.h"
#include "io/time.h"

namespace zt::app {

// Durations as upstream reads them (the duration_str crate): one or more
// terms of a number and a unit, e.g. "5m", "24h", "500ms", "1h30m", "1m 30s".
// Units: ns, us (or µs), ms, s, m, h, d. A bare number is seconds ("10").
// Fractions are allowed ("1.5h"). At most ten years, so sums cannot overflow.
Result<Duration> parse_duration(std::string_view text);

// Booleans as Rust's bool::from_str: exactly "true" or "false".
Result<bool> parse_bool(std::string_view text);

// A decimal integer in [0, value_max], digits only (no sign, no spaces).
Result<uint64_t> parse_unsigned(std::string_view text, uint64_t value_max);

}  // namespace zt::app
