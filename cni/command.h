// Running the tools the CNI stand-in drives (ip, the redirection script):
// no shell, the argument vector as given, stdout and stderr captured so a
// failure says what the tool said.
//
//   auto r = run_command({"ip", "netns", "add", "sleep"});
//   if (!r) die(r.error().detail);   // "ip netns add sleep: Cannot create ..."
#pragma once

#include <string>
#include <vector>

#include "io/result.h"

namespace zt::cni {

// The command's output (stdout and stderr together) when it exits 0; else an
// io_error naming the command line, its exit status and what it printed.
Result<std::string> run_command(const std::vector<std::string>& argv);

// The command line as a person would type it (for messages).
std::string command_line(const std::vector<std::string>& argv);

}  // namespace zt::cni
