#include "core/admin/admin.h"

#include <algorithm>

#include "io/async.h"

namespace zt::admin {

namespace {

HttpResponse json(std::string body) {
  HttpResponse r = HttpResponse::text(200, std::move(body));
  r.content_type = "application/json";
  return r;
}

// Upstream's filter syntax, restricted: comma-separated directives, each a
// level or `target=level` (e.g. "info", "hbone=debug,info").
bool is_log_level_spec(std::string_view spec) {
  if (spec.empty()) return false;
  while (true) {
    size_t comma = spec.find(',');
    std::string_view directive = spec.substr(0, comma);
    size_t eq = directive.find('=');
    if (eq != std::string_view::npos) {
      std::string_view target = directive.substr(0, eq);
      bool target_ok = !target.empty() && std::all_of(target.begin(), target.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == ':' ||
               c == '.' || c == '-';
      });
      if (!target_ok) return false;
      directive.remove_prefix(eq + 1);
    }
    if (!is_log_level(directive)) return false;
    if (comma == std::string_view::npos) return true;
    spec.remove_prefix(comma + 1);
  }
}

HttpResponse logging(const AdminHandlers& h, const HttpRequest& req) {
  std::optional<std::string> level = req.query_param("level");
  if (!level) {
    // query_param() also answers nullopt for a present but badly encoded value.
    std::string_view q = req.query;
    if (q.starts_with("level=") || q.find("&level=") != std::string_view::npos)
      return HttpResponse::text(400, "bad level: invalid percent-encoding\n");
    if (!h.log_level) return HttpResponse::text(400, "missing ?level=<level>\n");
    return HttpResponse::text(200, "current log level is " + h.log_level() + "\n");
  }
  if (!is_log_level_spec(*level))
    return HttpResponse::text(400, "bad level; expected trace, debug, info, warn, error or off\n");
  if (!h.set_log_level) return HttpResponse::text(501, "log level cannot be changed\n");
  Result<void> set = h.set_log_level(*level);
  if (!set) return HttpResponse::text(400, "bad level: " + set.error().detail + "\n");
  return HttpResponse::text(200, "log level set to " + *level + "\n");
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

bool is_log_level(std::string_view level) {
  return level == "trace" || level == "debug" || level == "info" || level == "warn" || level == "error" ||
         level == "off";
}

HttpResponse dispatch(const Routes& routes, const HttpRequest& req) {
  for (const Route& route : routes) {
    if (route.path != req.path) continue;
    if (std::find(route.methods.begin(), route.methods.end(), req.method) == route.methods.end()) {
      HttpResponse r = HttpResponse::text(405, "method " + req.method + " not allowed on " + req.path + "\n");
      r.headers.emplace_back("Allow", join_names(route.methods));
      return r;
    }
    return route.handle(req);
  }
  return HttpResponse::text(404, "not found: " + req.path + "\n");
}

Routes admin_routes(Env& env, AdminHandlers handlers) {
  auto h = std::make_shared<const AdminHandlers>(std::move(handlers));
  Routes routes;
  routes.push_back({"/config_dump", {"GET"}, [h](const HttpRequest&) {
                      if (!h->config_dump) return HttpResponse::text(501, "config dump unavailable\n");
                      return json(h->config_dump());
                    }});
  routes.push_back({"/logging", {"GET", "POST"}, [h](const HttpRequest& req) { return logging(*h, req); }});
  routes.push_back({"/quitquitquit", {"POST"}, [h, &env](const HttpRequest&) {
                      if (!h->shutdown) return HttpResponse::text(501, "shutdown unavailable\n");
                      // Posted: shutting down may destroy this server, which must
                      // not happen inside its own request handler.
                      env.loop.post([h] { h->shutdown(); });
                      return HttpResponse::text(200, "shutting down\n");
                    }});
  return routes;
}

Routes stats_routes(const Registry& registry) {
  return stats_routes([&registry] { return registry.render(); });
}

Routes stats_routes(std::function<std::string()> render) {
  ZT_ASSERT(render);
  HttpHandler metrics = [render = std::move(render)](const HttpRequest&) {
    HttpResponse r = HttpResponse::text(200, render());
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    return r;
  };
  Routes routes;
  routes.push_back({"/metrics", {"GET"}, metrics});
  routes.push_back({"/stats/prometheus", {"GET"}, metrics});
  return routes;
}

Routes readiness_routes(std::function<std::vector<std::string>()> pending) {
  ZT_ASSERT(pending);
  Routes routes;
  routes.push_back({"/healthz/ready", {"GET"}, [pending = std::move(pending)](const HttpRequest&) {
                      std::vector<std::string> waiting = pending();
                      if (waiting.empty()) return HttpResponse::text(200, "ready\n");
                      return HttpResponse::text(500, "not ready, pending: " + join_names(waiting) + "\n");
                    }});
  return routes;
}

AdminServer::AdminServer(Env& env, std::unique_ptr<Listener> listener, Routes routes, HttpLimits limits)
    : env_(env), listener_(std::move(listener)), routes_(std::move(routes)), limits_(limits) {
  ZT_ASSERT(listener_);
}

AdminServer::~AdminServer() = default;

void AdminServer::start() { scope_.spawn(accept_loop()); }

Task<void> AdminServer::accept_loop() {
  HttpHandler handler = [this](const HttpRequest& req) { return dispatch(routes_, req); };
  return io::accept_each(
      env_, *listener_,
      [this, handler](StreamPtr s) {
        ++counters_.accepted;
        if (active_ >= kConnectionsMax) {
          // A probe or scraper that opens connections faster than it finishes
          // them must not grow memory without bound.
          ++counters_.rejected_busy;
          s->abort();
          return;
        }
        scope_.spawn(serve(env_, std::move(s), handler, limits_, active_));
      },
      [this] { ++counters_.accept_errors; });
}

Task<void> AdminServer::serve(Env& env, StreamPtr stream, HttpHandler handler, HttpLimits limits, size_t& active) {
  ++active;
  co_await serve_http_connection(env, std::move(stream), std::move(handler), limits);
  --active;
}

}  // namespace zt::admin
