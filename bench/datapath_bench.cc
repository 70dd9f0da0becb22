// Data-path micro benchmarks over in-memory pipes (bench/memory_pipe.h), so
// a regression shows at the function level: the relay's copy loop, and
// HTTP/2 tunnel framing with and without TLS underneath (the HBONE path
// minus sockets). Bytes/s are of payload through one connection.
//
//   ./build/release/bench/datapath_bench
//   ./build/release/bench/datapath_bench --benchmark_filter=H2
#include <benchmark/benchmark.h>

#include "bench/memory_pipe.h"
#include "core/copy.h"
#include "h2/connection.h"
#include "io/async.h"
#include "tls/ca.h"
#include "tls/stream.h"

namespace zt::bench {
namespace {

constexpr size_t kPayload = 4 << 20;

// Writes `n` bytes in chunks, then FIN.
Task<void> send_bytes(Stream& s, size_t n, size_t chunk) {
  std::vector<uint8_t> buf(chunk, 0x5a);
  size_t sent = 0;
  while (sent < n) {
    const size_t want = std::min(chunk, n - sent);
    if (!co_await io::write_all(s, ConstBytes(buf).first(want))) co_return;
    sent += want;
  }
  (void)s.shutdown_write();
}

// Reads to EOF, counting.
Task<void> drain(Stream& s, size_t& got) {
  std::vector<uint8_t> buf(256 * 1024);
  for (;;) {
    auto n = co_await io::read(s, buf);
    if (!n || *n == 0) co_return;
    got += *n;
  }
}

Task<void> copy(Env& env, Stream& a, Stream& b) {
  core::CopyStats stats;
  (void)co_await core::copy_bidirectional(env, a, b, stats);
}

// client -> [proxy: copy_bidirectional] -> server, one direction loaded.
void BM_CopyLoop(benchmark::State& state) {
  for (auto _ : state) {
    MemoryRuntime rt;
    auto [client, proxy_in] = rt.pipe();
    auto [proxy_out, server] = rt.pipe();
    size_t got = 0;
    Scope scope;
    scope.spawn(copy(rt.env(), *proxy_in, *proxy_out));
    scope.spawn(send_bytes(*client, kPayload, 64 * 1024));
    scope.spawn(drain(*server, got));
    scope.spawn([](Stream& s, size_t& sink) -> Task<void> { co_await drain(s, sink); }(*client, got));
    (void)server->shutdown_write();
    rt.run();
    if (got != kPayload) state.SkipWithError("bytes lost");
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kPayload));
}
BENCHMARK(BM_CopyLoop)->Unit(benchmark::kMillisecond);

struct TlsPair {
  StreamPtr client, server;
};

// Two TLS streams over a pipe, handshaken (P-256 certificates from one CA).
TlsPair tls_pair(MemoryRuntime& rt) {
  auto ca = tls::Ca::create(tls::CaOptions{}, Rng(7), rt.wall_now());
  tls::Identity a("cluster.local", "ns", "a"), b("cluster.local", "ns", "b");
  auto ia = ca->issue(a, std::chrono::hours(1), rt.wall_now());
  auto ib = ca->issue(b, std::chrono::hours(1), rt.wall_now());
  tls::TlsConfig cc, sc;
  cc.role = tls::TlsRole::client;
  cc.credentials = std::make_shared<tls::Credentials>(tls::Credentials{ia->chain, std::move(ia->key)});
  cc.roots = ca->trust_bundle();
  cc.expected_identities = {b};
  sc.role = tls::TlsRole::server;
  sc.credentials = std::make_shared<tls::Credentials>(tls::Credentials{ib->chain, std::move(ib->key)});
  sc.roots = ca->trust_bundle();
  auto [ta, tb] = rt.pipe();
  auto c = std::make_unique<tls::TlsStream>(rt.env(), *tls::TlsContext::create(cc), std::move(ta));
  auto s = std::make_unique<tls::TlsStream>(rt.env(), *tls::TlsContext::create(sc), std::move(tb));
  c->handshake([](Result<void>) {});
  s->handshake([](Result<void>) {});
  rt.run();
  return {std::move(c), std::move(s)};
}

// One CONNECT tunnel carrying kPayload bytes client -> server per iteration,
// over an HTTP/2 connection set up once (plain pipe, or TLS on the pipe).
void h2_tunnel(benchmark::State& state, bool with_tls) {
  MemoryRuntime rt(/*fire_timers=*/false);
  StreamPtr ct, st;
  if (with_tls) {
    TlsPair p = tls_pair(rt);
    ct = std::move(p.client);
    st = std::move(p.server);
  } else {
    std::tie(ct, st) = rt.pipe();
  }
  h2::Connection client(rt.env(), std::move(ct), h2::Role::client, h2::Settings::client());
  h2::Connection server(rt.env(), std::move(st), h2::Role::server, h2::Settings::server());
  size_t got = 0;
  Scope readers;
  server.on_request([&](std::unique_ptr<h2::Connection::Incoming> in) {
    StreamPtr tunnel = in->accept();
    Stream& t = *tunnel;
    readers.spawn([](StreamPtr, Stream& t, size_t& got) -> Task<void> { co_await drain(t, got); }(
        std::move(tunnel), t, got));
  });
  client.start();
  server.start();
  for (auto _ : state) {
    got = 0;
    StreamPtr tunnel;
    client.open(h2::Request{"CONNECT", "10.0.0.1:8080", {}, "", ""}, [&](Result<h2::Opened> o) {
      if (o && o->tunnel) tunnel = std::move(o->tunnel);
    });
    rt.run();
    if (!tunnel) {
      state.SkipWithError("tunnel refused");
      break;
    }
    Scope writer;
    writer.spawn(send_bytes(*tunnel, kPayload, 64 * 1024));
    rt.run();
    if (got != kPayload) state.SkipWithError("bytes lost");
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kPayload));
}
void BM_H2Tunnel(benchmark::State& state) { h2_tunnel(state, false); }
void BM_H2TunnelOverTls(benchmark::State& state) { h2_tunnel(state, true); }
BENCHMARK(BM_H2Tunnel)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_H2TunnelOverTls)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace zt::bench

BENCHMARK_MAIN();
