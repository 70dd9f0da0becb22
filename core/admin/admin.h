// The admin (15000), stats (15020) and readiness (15021) HTTP endpoints:
// one AdminServer per listener, each with its own route table.
//
//   AdminHandlers h;
//   h.config_dump = [&] { return state.config_dump_json(); };
//   h.change_log_filter = [&](std::string_view d, bool reset) { return logging.change(d, reset); };
//   h.shutdown = [&] { app.drain_and_exit(); };
//   AdminServer admin(env, std::move(listener_15000), admin_routes(h));
//   AdminServer stats(env, std::move(listener_15020), stats_routes(registry));
//   AdminServer ready(env, std::move(listener_15021), readiness_routes([&] { return app.pending(); }));
//   admin.start(); stats.start(); ready.start();
//
// Handlers run on the loop, synchronously, inside a request; they must not
// destroy the server they are called from (shutdown is posted to the loop
// for that reason, after the handler returns).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/admin/http.h"
#include "core/metrics/registry.h"
#include "io/acceptor.h"
#include "io/env.h"
#include "io/task.h"

namespace zt::core::admin {

struct Route {
  std::string path;                  // exact match, without the query
  std::vector<std::string> methods;  // e.g. {"GET", "POST"}
  HttpHandler handle;
};

using Routes = std::vector<Route>;

// Unknown path: 404; known path, other method: 405 with Allow.
Task<HttpResponse> dispatch(const Routes& routes, const HttpRequest& req);

struct AdminHandlers {
  std::function<std::string()> config_dump;  // JSON document
  // /logging: the current filter in RUST_LOG's syntax, and a change to it:
  // `directives` added on top of the current filter, or with `reset` on top
  // of the one the process started with (RUST_LOG). Directives reach the
  // handler only once they parse; an error is answered with 400.
  std::function<std::string()> log_filter;
  std::function<Result<void>(std::string_view directives, bool reset)> change_log_filter;
  std::function<void()> shutdown;  // POST /quitquitquit
};

// 15000: /config_dump (GET), /logging (POST, upstream's semantics:
// no query lists the filter, ?level=<directives> adds directives, ?reset
// returns to the start-up filter), /quitquitquit (POST). Missing handlers
// answer 501.
Routes admin_routes(Env& env, AdminHandlers handlers);
// 15020: /metrics and /stats/prometheus. The registry must outlive the routes.
Routes stats_routes(const metrics::Registry& registry);
// The same, with the text rendered by `render` on each scrape; it may wait
// (the binary asks each worker for a copy of its registry, without blocking
// the control loop).
Routes stats_routes(std::function<Task<std::string>()> render);
// 15021: /healthz/ready. `pending` lists what readiness still waits for;
// empty means ready.
Routes readiness_routes(std::function<std::vector<std::string>()> pending);

// Directives /logging accepts, as upstream checks them: each comma-separated
// clause is a level (off, error, warn, info, debug, trace) or target=level.
bool is_log_directives(std::string_view directives);

class AdminServer {
 public:
  // accepted, refused_busy (over kConnectionsMax: reset at once), accept_errors.
  using Counters = Acceptor::Counters;
  static constexpr size_t kConnectionsMax = 64;

  AdminServer(Env& env, std::unique_ptr<Listener> listener, Routes routes, HttpLimits limits = {});
  ~AdminServer();  // stops accepting, drops connections in progress
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  void start();
  Endpoint local() const { return acceptor_.local(); }
  const Counters& counters() const { return acceptor_.counters(); }

 private:
  Env& env_;
  Routes routes_;
  HttpLimits limits_;
  Acceptor acceptor_;  // last: its tasks go first
};

}  // namespace zt::core::admin
