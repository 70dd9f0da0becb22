// On-demand xDS from the data path (XDS_ON_DEMAND): a connection whose
// source or destination address the mesh state does not know asks the
// control plane for it and waits, for a bounded time, before it is routed
// with whatever the state then holds (unknown still: passthrough or
// refusal, as without on-demand).
//
//   OnDemand d{.ask = [&](std::string key, std::function<void()> answered) { ads.demand(key, answered); }};
//   bool answered = co_await fetch_on_demand(env, d, address_key(ip));
#pragma once

#include <functional>
#include <string>

#include "io/address.h"
#include "io/env.h"
#include "io/task.h"

namespace zt::core::proxy {

struct OnDemand {
  // Asks for `key` (an Address name); `answered` must run on the asking
  // loop once the answer is in the published state (or there is none).
  std::function<void(std::string key, std::function<void()> answered)> ask;
  Duration timeout = std::chrono::seconds(5);  // how long a connection waits at most
  explicit operator bool() const { return bool(ask); }
};

// The Address name of an IP on the default network: "/<ip>" (upstream's
// "network/ip" with the network empty).
std::string address_key(const IpAddr& ip);

// Asks for `key` and waits until it is answered or the bound passes.
// Returns whether it was answered in time.
Task<bool> fetch_on_demand(Env& env, const OnDemand& on_demand, std::string key);

}  // namespace zt::core::proxy
