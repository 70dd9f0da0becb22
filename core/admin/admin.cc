#include "core/admin/admin.h"

#include <algorithm>

#include "io/async.h"
#include "io/log.h"

namespace zt::core::admin {

namespace {

HttpResponse json(std::string body) {
  HttpResponse r = HttpResponse::text(200, std::move(body));
  r.content_type = "application/json";
  return r;
}

constexpr std::string_view kLoggingHelp =
    "usage: POST /logging                                  (list the current filter)\n"
    "usage: POST /logging?level=<level>                    (change the default level)\n"
    "usage: POST /logging?level=<target>=<level>[,...]     (change targets' levels, e.g. hbone=debug)\n"
    "usage: POST /logging?reset[&level=...]                (back to the start-up filter, RUST_LOG)\n"
    "levels: error, warn, info, debug, trace, off; targets: access, hbone, proxy, tls, h2, admin, app, ...\n";

HttpResponse current_filter(const AdminHandlers& h) {
  if (!h.log_filter) return HttpResponse::text(501, "log filter unavailable\n");
  return HttpResponse::text(200, "current log level is " + h.log_filter() + "\n");
}

HttpResponse logging(const AdminHandlers& h, const HttpRequest& req) {
  std::optional<std::string> level = req.query_param("level");
  const std::string_view q = req.query;
  const bool has_level = q.starts_with("level=") || q.find("&level=") != std::string_view::npos;
  // query_param() answers nullopt for a present but badly encoded value too.
  if (has_level && !level) return HttpResponse::text(400, "bad level: invalid percent-encoding\n");
  const bool reset = q == "reset" || q.starts_with("reset=") || q.starts_with("reset&") ||
                     q.find("&reset") != std::string_view::npos;
  const std::string directives = level.value_or("");
  if (!reset && directives.empty()) return current_filter(h);
  if (!directives.empty() && !is_log_directives(directives)) {
    return HttpResponse::text(400, "Invalid level provided: " + directives + "\n" + std::string(kLoggingHelp));
  }
  if (!h.change_log_filter) return HttpResponse::text(501, "log filter cannot be changed\n");
  if (Result<void> r = h.change_log_filter(directives, reset); !r) {
    return HttpResponse::text(400, "Failed to set new level: " + r.error().detail + "\n" + std::string(kLoggingHelp));
  }
  return current_filter(h);
}

Task<std::string> rendered(std::string text) { co_return text; }

// Takes `render` by value: the route's copy may go (its server with it)
// while a scrape waits.
Task<HttpResponse> prometheus(std::function<Task<std::string>()> render) {
  HttpResponse r = HttpResponse::text(200, co_await render());
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  co_return r;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

}  // namespace

bool is_log_directives(std::string_view directives) {
  if (directives.empty()) return false;
  std::string_view rest = directives;
  while (true) {
    const size_t comma = rest.find(',');
    const std::string_view clause = rest.substr(0, comma);
    const bool level_only = parse_log_level(clause).has_value();
    // A bare target (every level of it) is RUST_LOG syntax, but upstream's
    // /logging refuses it: a typo would turn on trace.
    if (!level_only && (clause.find('=') == std::string_view::npos || !LogFilter::parse(clause).ok())) return false;
    if (comma == std::string_view::npos) return true;
    rest.remove_prefix(comma + 1);
  }
}

Task<HttpResponse> dispatch(const Routes& routes, const HttpRequest& req) {
  for (const Route& route : routes) {
    if (route.path != req.path) continue;
    if (std::find(route.methods.begin(), route.methods.end(), req.method) == route.methods.end()) {
      HttpResponse r = HttpResponse::text(405, "method " + req.method + " not allowed on " + req.path + "\n");
      r.headers.emplace_back("Allow", join_names(route.methods));
      co_return r;
    }
    co_return co_await route.handle(req);
  }
  co_return HttpResponse::text(404, "not found: " + req.path + "\n");
}

Routes admin_routes(Env& env, AdminHandlers handlers) {
  auto h = std::make_shared<const AdminHandlers>(std::move(handlers));
  Routes routes;
  routes.push_back({"/config_dump", {"GET"}, answer_with([h](const HttpRequest&) {
                      if (!h->config_dump) return HttpResponse::text(501, "config dump unavailable\n");
                      return json(h->config_dump());
                    })});
  routes.push_back({"/logging", {"POST"}, answer_with([h](const HttpRequest& req) { return logging(*h, req); })});
  routes.push_back({"/quitquitquit", {"POST"}, answer_with([h, &env](const HttpRequest&) {
                      if (!h->shutdown) return HttpResponse::text(501, "shutdown unavailable\n");
                      // Posted: shutting down may destroy this server, which must
                      // not happen inside its own request handler.
                      env.loop.post([h] { h->shutdown(); });
                      return HttpResponse::text(200, "shutting down\n");
                    })});
  return routes;
}

Routes stats_routes(const metrics::Registry& registry) {
  return stats_routes([&registry] { return rendered(registry.render()); });
}

Routes stats_routes(std::function<Task<std::string>()> render) {
  ZT_ASSERT(render);
  HttpHandler metrics = [render = std::move(render)](const HttpRequest&) { return prometheus(render); };
  Routes routes;
  routes.push_back({"/metrics", {"GET"}, metrics});
  routes.push_back({"/stats/prometheus", {"GET"}, metrics});
  return routes;
}

Routes readiness_routes(std::function<std::vector<std::string>()> pending) {
  ZT_ASSERT(pending);
  Routes routes;
  routes.push_back({"/healthz/ready", {"GET"}, answer_with([pending = std::move(pending)](const HttpRequest&) {
                      std::vector<std::string> waiting = pending();
                      if (waiting.empty()) return HttpResponse::text(200, "ready\n");
                      return HttpResponse::text(500, "not ready, pending: " + join_names(waiting) + "\n");
                    })});
  return routes;
}

AdminServer::AdminServer(Env& env, std::unique_ptr<Listener> listener, Routes routes, HttpLimits limits)
    : env_(env),
      routes_(std::move(routes)),
      limits_(limits),
      acceptor_(
          env, std::move(listener),
          [this](StreamPtr s) {
            return serve_http_connection(env_, std::move(s),
                                         [this](const HttpRequest& req) { return dispatch(routes_, req); }, limits_);
          },
          kConnectionsMax) {}

AdminServer::~AdminServer() = default;

void AdminServer::start() { acceptor_.start(); }

}  // namespace zt::core::admin
