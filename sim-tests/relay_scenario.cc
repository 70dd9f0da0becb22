#include "sim-tests/relay_scenario.h"

#include <cstring>

#include "io/async.h"

namespace zt::sim_tests {

using namespace zt::testing;

using testing::pattern;
using testing::read_all;

namespace {

uint8_t up_salt(uint64_t id) { return uint8_t(id * 2); }
uint8_t down_salt(uint64_t id) { return uint8_t(id * 2 + 1); }

void put_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = uint8_t(v >> (8 * i));
}
uint64_t get_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

// Sends data in pauses+1 pieces with a pause between them, then FIN: slow
// clients keep connections open long enough for faults to land mid-stream.
Task<void> send_all_then_fin(Env& env, Stream& s, std::vector<uint8_t> data, int pauses, Duration pause,
                             Result<void>& out) {
  ConstBytes rest(data);
  for (int piece = pauses; piece >= 0 && out.ok(); --piece) {
    const size_t n = piece == 0 ? rest.size() : rest.size() / size_t(piece + 1);
    if (n > 0) out = co_await io::write_all(s, rest.first(n));
    rest = rest.subspan(n);
    if (piece > 0 && out.ok()) co_await io::sleep(env.loop, pause);
  }
  if (out.ok()) out = s.shutdown_write();
}

Task<void> receive(Stream& s, testing::ReadAll& out) { out = co_await read_all(s, 4096); }

}  // namespace

// --- the server process on a server host ---------------------------------

struct RelayScenario::ServerApp {
  std::unique_ptr<Listener> listener;
  std::map<uint64_t, EndView>& views;
  std::vector<uint64_t> active;  // ids whose handler runs
  Env& env;
  Scope scope;                   // last: handlers go before the rest

  ServerApp(std::map<uint64_t, EndView>& v, Env& e) : views(v), env(e) {}

  Task<void> accept_loop() {
    for (;;) {
      auto s = co_await io::accept(*listener);
      if (!s) co_return;
      scope.spawn(handle(std::move(*s)));
    }
  }

  Task<void> handle(StreamPtr s) {
    uint8_t header[kHeaderBytes];
    size_t got = 0;
    while (got < kHeaderBytes) {
      auto n = co_await io::read(*s, MutableBytes(header).subspan(got));
      if (!n || *n == 0) co_return;  // cut before the header: unattributable
      got += *n;
    }
    const uint64_t id = get_u64(header), down = get_u64(header + 8);
    EndView& v = views[id];
    v.started = true;
    active.push_back(id);
    co_await join(send_all_then_fin(env, *s, pattern(down, down_salt(id)), 0, {}, v.wrote), receive(*s, v.read));
    v.done = true;
    std::erase(active, id);
  }
};

// --- the relay process on the proxy host ---------------------------------

struct RelayScenario::RelayApp {
  std::unique_ptr<RelayServer> server;
};

RelayScenario::RelayScenario(uint64_t seed, io::sim::WorldOptions options) : world_(seed, options) {
  client_ = &world_.add_host("client", {IpAddr::v4(10, 0, 1, 1)});
  proxy_ = &world_.add_host("proxy", {IpAddr::v4(10, 0, 2, 1)});
  servers_[0] = &world_.add_host("server-0", {IpAddr::v4(10, 0, 3, 1)});
  servers_[1] = &world_.add_host("server-1", {IpAddr::v4(10, 0, 3, 2)});
  client_->capture_outbound_to(Endpoint{proxy_->addrs()[0], kRelayPort});
  start_relay();
  proxy_->on_crash([this] { relay_.reset(); });
  proxy_->on_restart([this] { start_relay(); });
  for (int i = 0; i < 2; ++i) {
    start_server(i);
    servers_[i]->on_crash([this, i] {
      for (uint64_t id : server_apps_[i]->active) server_views_[id].crashed = true;
      server_apps_[i].reset();
    });
    servers_[i]->on_restart([this, i] { start_server(i); });
  }
}

RelayScenario::~RelayScenario() = default;

void RelayScenario::start_relay() {
  auto l = proxy_->env().net.listen(Endpoint{proxy_->addrs()[0], kRelayPort}, {});
  ZT_ASSERT(l.ok());
  RelayConfig cfg;
  cfg.upstream.mark = 1337;
  relay_ = std::make_unique<RelayApp>();
  relay_->server = std::make_unique<RelayServer>(proxy_->env(), std::move(*l), cfg,
                                                       RelayServer::original_destination());
  relay_->server->start();
}

void RelayScenario::start_server(int i) {
  auto app = std::make_unique<ServerApp>(server_views_, servers_[i]->env());
  auto l = servers_[i]->env().net.listen(Endpoint{servers_[i]->addrs()[0], kServerPort}, {});
  ZT_ASSERT(l.ok());
  app->listener = std::move(*l);
  app->scope.spawn(app->accept_loop());
  server_apps_[i] = std::move(app);
}

void RelayScenario::open(const ConnSpec& spec) {
  ZT_ASSERT(!specs_.count(spec.id));
  specs_[spec.id] = spec;
  clients_.spawn(run_client(spec));
}

Task<void> RelayScenario::run_client(ConnSpec spec) {
  EndView& v = client_views_[spec.id];
  const Endpoint dst{servers_[spec.server]->addrs()[0], kServerPort};
  auto conn = co_await io::connect(client_->env(), dst, {}, std::chrono::seconds(30));
  if (!conn) {
    v.wrote = conn.error();
    v.done = true;
    co_return;
  }
  v.started = true;
  std::vector<uint8_t> out(kHeaderBytes);
  put_u64(out.data(), spec.id);
  put_u64(out.data() + 8, spec.down_bytes);
  auto body = pattern(spec.up_bytes, up_salt(spec.id));
  out.insert(out.end(), body.begin(), body.end());
  co_await join(send_all_then_fin(client_->env(), **conn, std::move(out), spec.pauses, spec.pause, v.wrote),
                receive(**conn, v.read));
  v.done = true;
}

void RelayScenario::heal() {
  world_.heal_all();
  world_.clear_blackholes();
  world_.options().faults = io::sim::FaultRates{};
  for (io::sim::Host* h : {proxy_, servers_[0], servers_[1]}) world_.restart(h->id());
}

bool RelayScenario::all_done() const {
  for (const auto& [id, v] : client_views_)
    if (!v.done) return false;
  for (const auto& app : server_apps_)
    if (app && !app->active.empty()) return false;
  return !relay_ || relay_->server->counters().active == 0;
}

void RelayScenario::check_connection(const ConnSpec& spec, std::vector<std::string>& out) const {
  const std::string name = "connection " + std::to_string(spec.id) + ": ";
  const EndView& c = client_views_.at(spec.id);
  // An end that read a clean EOF must have every byte the other end sent, in
  // order: a reset must never turn into a truncated "clean" stream.
  if (c.read.end.ok() && c.started) {
    if (c.read.bytes != pattern(spec.down_bytes, down_salt(spec.id)))
      out.push_back(name + "client read a clean EOF after " + std::to_string(c.read.bytes.size()) + " of " +
                    std::to_string(spec.down_bytes) + " bytes (or wrong bytes)");
  }
  auto it = server_views_.find(spec.id);
  if (it == server_views_.end()) {
    if (c.read.end.ok() && c.wrote.ok() && c.started)
      out.push_back(name + "client finished cleanly but the server never saw it");
    return;
  }
  const EndView& s = it->second;
  if (!s.crashed && s.done && s.read.end.ok() && s.read.bytes != pattern(spec.up_bytes, up_salt(spec.id)))
    out.push_back(name + "server read a clean EOF after " + std::to_string(s.read.bytes.size()) + " of " +
                  std::to_string(spec.up_bytes) + " bytes (or wrong bytes)");
}

std::vector<std::string> RelayScenario::finish(Duration liveness_limit) {
  std::vector<std::string> out;
  if (!world_.run_until([this] { return all_done(); }, liveness_limit)) {
    size_t stuck = 0;
    for (const auto& [id, v] : client_views_) stuck += !v.done;
    out.push_back("liveness: " + std::to_string(stuck) + " client connections still open " +
                  std::to_string(to_ms(liveness_limit) / 1000) + "s after the heal");
  }
  for (const auto& [id, spec] : specs_) check_connection(spec, out);
  if (relay_) {
    const auto& c = relay_->server->counters();
    if (c.active != 0) out.push_back("relay still has " + std::to_string(c.active) + " active connections");
  }
  // Tear the processes down, let the last FINs land, and look for leftovers.
  clients_.clear();
  relay_.reset();
  for (auto& app : server_apps_) app.reset();
  world_.run_for(std::chrono::seconds(5));
  if (world_.live_connections() != 0)
    out.push_back("leak: connections left after teardown:\n" + world_.describe_leftovers());
  if (world_.buffered_bytes() != 0) out.push_back("leak: " + std::to_string(world_.buffered_bytes()) + " bytes buffered");
  for (io::sim::Host* h : {client_, proxy_, servers_[0], servers_[1]}) {
    if (size_t n = world_.scheduler().pending_for(h->id()))
      out.push_back("leak: " + std::to_string(n) + " timers or callbacks pending on " + h->name());
  }
  return out;
}

}  // namespace zt::sim_tests
