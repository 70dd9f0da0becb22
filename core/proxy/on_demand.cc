#include "core/proxy/on_demand.h"

#include <memory>

#include "core/mesh/model.h"
#include "io/async.h"
#include "io/event.h"

namespace zt::core::proxy {

std::string address_key(const IpAddr& ip) { return mesh::NetworkAddress{"", ip}.to_string(); }

Task<bool> fetch_on_demand(Env& env, const OnDemand& on_demand, std::string key) {
  // Shared with the callbacks, which may outlive this frame: an answer
  // after the bound, or a bound after the answer, finds a set event.
  auto answered = std::make_shared<bool>(false);
  Event done(env.loop);
  on_demand.ask(std::move(key), [answered, done]() mutable {
    *answered = true;
    done.set();
  });
  io::ScopedTimer bound(env.loop, on_demand.timeout, [done]() mutable { done.set(); });
  co_await done.wait();
  co_return *answered;
}

}  // namespace zt::core::proxy
