// HBONE end to end on real loopback, in one process and one thread (so the
// figures include both ends): tunnels opened per second through a warm pool,
// and bulk throughput through one tunnel and through eight, each printed
// beside plain TCP loopback measured the same way in the same run.
//
//   ./build/release/bench/hbone_benchmark [MiB per run, default 512]
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "core/hbone/pool.h"
#include "core/hbone/server.h"
#include "io/async.h"
#include "io/real/runtime.h"
#include "tls/ca.h"

namespace zt::bench {
namespace {

using namespace zt::core::hbone;
using WallClock = std::chrono::steady_clock;

double seconds_since(WallClock::time_point t) { return std::chrono::duration<double>(WallClock::now() - t).count(); }

struct Setup {
  io::real::Runtime rt{uint64_t{1}};
  std::optional<tls::Ca> ca;
  std::shared_ptr<const tls::TlsContext> client_ctx, server_ctx;
  std::unique_ptr<Server> server;
  std::unique_ptr<Pool> pool;
  Scope sinks;
  uint64_t sunk = 0;

  Setup() {
    const WallTime now = rt.env().clock.wall_now();
    ca.emplace(*tls::Ca::create(tls::CaOptions{}, Rng(1), now));
    auto creds = [&](const char* sa) {
      auto issued = ca->issue(tls::Identity("cluster.local", "default", sa), std::chrono::hours(24), now);
      return std::make_shared<tls::Credentials>(tls::Credentials{std::move(issued->chain), std::move(issued->key)});
    };
    tls::TlsConfig c;
    c.role = tls::TlsRole::client;
    c.credentials = creds("client");
    c.roots = ca->trust_bundle();
    tls::TlsConfig s = c;
    s.role = tls::TlsRole::server;
    s.credentials = creds("server");
    client_ctx = *tls::TlsContext::create(c);
    server_ctx = *tls::TlsContext::create(s);
    auto l = rt.env().net.listen(Endpoint{IpAddr::loopback(IpAddr::Family::v4), 0}, {});
    server = std::make_unique<Server>(rt.env(), std::move(*l), server_ctx, [this](InboundRequest, Answer a) {
      sinks.spawn(sink(a->accept()));
    });
    server->start();
    pool = std::make_unique<Pool>(rt.env(), PoolConfig{}, [this](const PoolKey&) -> Result<std::shared_ptr<const tls::TlsContext>> {
      return client_ctx;
    });
  }
  ~Setup() {
    sinks.clear();
    pool.reset();
    server.reset();
  }

  PoolKey key() const {
    return PoolKey{"spiffe://cluster.local/ns/default/sa/client",
                   {"spiffe://cluster.local/ns/default/sa/server"},
                   server->local(),
                   IpAddr::loopback(IpAddr::Family::v4)};
  }

  // Reads everything, answers one byte at the end (so the sender knows).
  Task<void> sink(StreamPtr t) {
    if (!t) co_return;
    std::vector<uint8_t> buf(256 * 1024);
    for (;;) {
      auto n = co_await io::read(*t, buf);
      if (!n || *n == 0) break;
      sunk += *n;
    }
    const uint8_t done[] = {1};
    (void)co_await io::write_all(*t, done);
    (void)t->shutdown_write();
  }
};

// Sends `bytes` down a stream, half-closes, waits for the receiver's answer.
Task<void> push(Stream& s, uint64_t bytes, bool& ok) {
  std::vector<uint8_t> chunk(256 * 1024, 0x5a);
  uint64_t left = bytes;
  while (left > 0) {
    const size_t n = size_t(std::min<uint64_t>(left, chunk.size()));
    if (!co_await io::write_all(s, ConstBytes(chunk).first(n))) co_return;
    left -= n;
  }
  if (!s.shutdown_write()) co_return;
  uint8_t ack[1];
  auto r = co_await io::read(s, ack);
  ok = r && *r == 1;
}

Task<void> hbone_bulk(Setup& st, int tunnels, uint64_t bytes_each, int& ok_count) {
  std::vector<Task<void>> work;
  for (int i = 0; i < tunnels; ++i) {
    work.push_back([](Setup& st, uint64_t bytes, int& ok_count) -> Task<void> {
      h2::Request req{"CONNECT", "127.0.0.1:8080", {}};
      auto t = co_await st.pool->open(st.key(), req);
      if (!t || !t->tunnel) co_return;
      bool ok = false;
      co_await push(*t->tunnel, bytes, ok);
      ok_count += ok;
    }(st, bytes_each, ok_count));
  }
  co_await join(std::move(work));
}

// The same over plain loopback TCP (connections set up one by one: one
// accept at a time on the listener).
Task<void> tcp_bulk(Env& env, Listener& l, int conns, uint64_t bytes_each, int& ok_count) {
  std::vector<StreamPtr> clients, servers;
  for (int i = 0; i < conns; ++i) {
    auto c = co_await io::connect(env, l.local(), {}, std::chrono::seconds(5));
    auto s = co_await io::accept(l);
    if (!c || !s) co_return;
    clients.push_back(std::move(*c));
    servers.push_back(std::move(*s));
  }
  std::vector<bool> oks(size_t(conns), false);
  std::vector<Task<void>> work;
  for (int i = 0; i < conns; ++i) {
    work.push_back([](Stream& c, uint64_t bytes, std::vector<bool>& oks, size_t i) -> Task<void> {
      bool ok = false;
      co_await push(c, bytes, ok);
      oks[i] = ok;
    }(*clients[size_t(i)], bytes_each, oks, size_t(i)));
    work.push_back([](Stream& s) -> Task<void> {
      std::vector<uint8_t> buf(256 * 1024);
      for (;;) {
        auto n = co_await io::read(s, buf);
        if (!n || *n == 0) break;
      }
      const uint8_t done[] = {1};
      (void)co_await io::write_all(s, done);
    }(*servers[size_t(i)]));
  }
  co_await join(std::move(work));
  for (bool ok : oks) ok_count += ok;
}

double run_gbit(io::real::Runtime& rt, Task<void> t, uint64_t total_bytes) {
  bool done = false;
  Scope s;
  s.spawn([](Task<void> t, bool& done) -> Task<void> {
    co_await t;
    done = true;
  }(std::move(t), done));
  const auto start = WallClock::now();
  rt.run_until([&] { return done; }, std::chrono::minutes(5));
  return double(total_bytes) * 8 / seconds_since(start) / 1e9;
}

}  // namespace
}  // namespace zt::bench

int main(int argc, char** argv) {
  using namespace zt;
  using namespace zt::bench;
  const uint64_t mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 512;
  const uint64_t total = mib << 20;
  Setup st;
  Env& env = st.rt.env();
  auto tcp_listener = env.net.listen(Endpoint{IpAddr::loopback(IpAddr::Family::v4), 0}, {});

  // Warm the pool (one connection up), then open tunnels one after another.
  int ok = 0;
  run_gbit(st.rt, hbone_bulk(st, 1, 1, ok), 1);
  const int kTunnels = 2000;
  int opened = 0;
  const auto t0 = WallClock::now();
  run_gbit(st.rt, hbone_bulk(st, 1, 1, ok), 1);  // one more to be sure the pool is warm
  const auto start = WallClock::now();
  for (int i = 0; i < kTunnels; ++i) run_gbit(st.rt, hbone_bulk(st, 1, 1, opened), 1);
  const double tunnels_per_s = kTunnels / seconds_since(start);
  if (std::getenv("ZT_BENCH_DEBUG"))
    std::printf("after tunnels: %llu connections, %llu retries, %llu failures\n",
                (unsigned long long)st.pool->counters().connections_opened,
                (unsigned long long)st.pool->counters().retries,
                (unsigned long long)st.pool->counters().connection_failures);
  (void)t0;
  int tcp_conns = 0;
  const auto tcp_start = WallClock::now();
  for (int i = 0; i < kTunnels; ++i) run_gbit(st.rt, tcp_bulk(env, **tcp_listener, 1, 1, tcp_conns), 1);
  const double tcp_per_s = kTunnels / seconds_since(tcp_start);

  std::printf("%-34s %12s %12s %8s\n", "figure (one process, one core)", "HBONE", "plain TCP", "ratio");
  std::printf("%-34s %12.0f %12.0f %8.2f   (%d/%d tunnels ok)\n", "new tunnel + 1 B echo per s (warm)",
              tunnels_per_s, tcp_per_s, tunnels_per_s / tcp_per_s, opened, kTunnels);
  for (int streams : {1, 8}) {
    int hb_ok = 0, tcp_ok = 0;
    const double hb = run_gbit(st.rt, hbone_bulk(st, streams, total / uint64_t(streams), hb_ok), total);
    const double tcp = run_gbit(st.rt, tcp_bulk(env, **tcp_listener, streams, total / uint64_t(streams), tcp_ok), total);
    char name[64];
    std::snprintf(name, sizeof(name), "bulk Gbit/s, %d stream%s", streams, streams > 1 ? "s" : "");
    std::printf("%-34s %12.2f %12.2f %8.2f   (%d/%d ok)\n", name, hb, tcp, hb / tcp, hb_ok + tcp_ok, 2 * streams);
  }
  std::printf("pool: %llu connections opened, %llu retries, %llu tunnels\n",
              (unsigned long long)st.pool->counters().connections_opened,
              (unsigned long long)st.pool->counters().retries,
              (unsigned long long)st.pool->counters().tunnels_opened);
  tcp_listener->reset();
  return 0;
}
