// TLS layer micro benchmarks over an in-memory pipe: full P-256 mutual
// handshakes per second, and bulk throughput through one TLS pair, printed
// beside `openssl speed -evp aes-128-gcm` (16 KiB blocks) measured on the
// same machine in the same run: the crypto limit, so the ratio is the figure.
//
//   ./build/release/bench/tls_benchmark
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench/memory_pipe.h"
#include "io/async.h"
#include <openssl/aead.h>
#include "tls/ca.h"
#include "tls/stream.h"

namespace zt::bench {
namespace {

using namespace zt::tls;

struct Contexts {
  std::shared_ptr<const TlsContext> client, server;
};

Contexts make_contexts(MemoryRuntime& rt) {
  const WallTime now = rt.wall_now();
  auto ca = Ca::create(CaOptions{}, Rng(1), now);
  auto creds = [&](const char* sa) {
    auto issued = ca->issue(Identity("cluster.local", "default", sa), std::chrono::hours(24), now);
    return std::make_shared<Credentials>(Credentials{std::move(issued->chain), std::move(issued->key)});
  };
  TlsConfig c;
  c.role = TlsRole::client;
  c.credentials = creds("client");
  c.roots = ca->trust_bundle();
  c.expected_identities = {Identity("cluster.local", "default", "server")};
  TlsConfig s = c;
  s.role = TlsRole::server;
  s.credentials = creds("server");
  return {*TlsContext::create(c), *TlsContext::create(s)};
}

struct Pair {
  std::unique_ptr<TlsStream> client, server;
};

Pair handshake_pair(MemoryRuntime& rt, const Contexts& ctx) {
  auto [a, b] = rt.pipe();
  Pair p{std::make_unique<TlsStream>(rt.env(), ctx.client, std::move(a)),
         std::make_unique<TlsStream>(rt.env(), ctx.server, std::move(b))};
  bool ok_c = false, ok_s = false;
  p.client->handshake([&](Result<void> r) { ok_c = r.ok(); });
  p.server->handshake([&](Result<void> r) { ok_s = r.ok(); });
  rt.run();
  if (!ok_c || !ok_s) std::abort();
  return p;
}

void BM_MutualHandshake(benchmark::State& state) {
  MemoryRuntime rt;
  Contexts ctx = make_contexts(rt);
  for (auto _ : state) benchmark::DoNotOptimize(handshake_pair(rt, ctx));
  state.counters["handshakes/s"] = benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_MutualHandshake)->Unit(benchmark::kMicrosecond);

void BM_BulkThroughput(benchmark::State& state) {
  MemoryRuntime rt;
  Contexts ctx = make_contexts(rt);
  Pair p = handshake_pair(rt, ctx);
  const size_t chunk = size_t(state.range(0));
  std::vector<uint8_t> out(chunk, 0x5a), in(chunk);
  for (auto _ : state) {
    size_t sent = 0, got = 0;
    std::function<void()> write_more, read_more;
    write_more = [&] {
      p.client->write(ConstBytes(out).subspan(sent), [&](Result<size_t> n) {
        sent += *n;
        if (sent < chunk) write_more();
      });
    };
    read_more = [&] {
      p.server->read(in, [&](Result<size_t> n) {
        got += *n;
        if (got < chunk) read_more();
      });
    };
    write_more();
    read_more();
    rt.run();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(chunk));
}
BENCHMARK(BM_BulkThroughput)->Arg(16384)->Arg(1 << 20);

// The crypto floor inside BoringSSL itself: AES-128-GCM seal then open of
// one 16 KiB record (what the TLS pair does per record, minus everything else).
void BM_RawAeadSealOpen(benchmark::State& state) {
  const uint8_t key[16] = {1, 2, 3};
  bssl::ScopedEVP_AEAD_CTX seal, open;
  EVP_AEAD_CTX_init(seal.get(), EVP_aead_aes_128_gcm(), key, sizeof(key), 16, nullptr);
  EVP_AEAD_CTX_init(open.get(), EVP_aead_aes_128_gcm(), key, sizeof(key), 16, nullptr);
  std::vector<uint8_t> plain(16384, 0x5a), sealed(16384 + 16), back(16384);
  uint8_t nonce[12] = {};
  for (auto _ : state) {
    size_t n = 0, m = 0;
    ++nonce[0];
    EVP_AEAD_CTX_seal(seal.get(), sealed.data(), &n, sealed.size(), nonce, 12, plain.data(), plain.size(), nullptr, 0);
    EVP_AEAD_CTX_open(open.get(), back.data(), &m, back.size(), nonce, 12, sealed.data(), n, nullptr, 0);
    benchmark::DoNotOptimize(m);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * 16384);
}
BENCHMARK(BM_RawAeadSealOpen);

// openssl speed's 16384-byte figure for AES-128-GCM, in bytes/s (0 if unavailable).
double openssl_aes128gcm_bytes_per_s() {
  FILE* p = popen("openssl speed -evp aes-128-gcm -bytes 16384 -seconds 2 2>/dev/null", "r");
  if (!p) return 0;
  char line[512];
  double kbytes = 0;
  while (fgets(line, sizeof(line), p)) {
    std::string s(line);
    if (s.rfind("AES-128-GCM", 0) == 0 || s.rfind("aes-128-gcm", 0) == 0) {
      const size_t last = s.find_last_of(' ', s.find_last_not_of(" \nk") );
      kbytes = std::strtod(s.c_str() + last + 1, nullptr);  // "...  1234567.89k"
    }
  }
  pclose(p);
  return kbytes * 1000;
}

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs)
      if (r.benchmark_name() == "BM_BulkThroughput/1048576") bulk_ = r.counters.at("bytes_per_second");
      else if (r.benchmark_name() == "BM_RawAeadSealOpen") aead_ = r.counters.at("bytes_per_second");
  }
  double bulk_ = 0;
  double aead_ = 0;
};

}  // namespace
}  // namespace zt::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  zt::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  if (reporter.aead_ > 0)
    std::printf("\nTLS bulk vs BoringSSL's own AES-128-GCM seal+open: %.2f / %.2f GB/s, ratio %.2f\n",
                reporter.bulk_ / 1e9, reporter.aead_ / 1e9, reporter.bulk_ / reporter.aead_);
  const double limit = zt::bench::openssl_aes128gcm_bytes_per_s();
  if (limit > 0 && reporter.bulk_ > 0) {
    std::printf("\nTLS bulk (encrypt+decrypt, one core): %.2f GB/s; openssl speed aes-128-gcm (encrypt only): %.2f GB/s;"
                " ratio %.2f\n", reporter.bulk_ / 1e9, limit / 1e9, reporter.bulk_ / limit);
  } else {
    std::printf("\n(openssl speed unavailable: no ratio)\n");
  }
  return 0;
}
