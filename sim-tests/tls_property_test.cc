// Property: whatever the chunking and whatever faults that do not reset
// (short reads and writes, jitter, a small window, partitions that heal),
// bytes written into a TLS pair come out intact, in order, both ways, and
// the close_notify reads as a clean EOF.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "testing/sim_harness.h"
#include "testing/tls_test_util.h"

namespace zt::sim_tests {
namespace {

using namespace zt::tls;

using namespace zt::testing;

using Harness = testing::SimHarness<IpAddr::Family::v4>;

// Writes data in the given piece sizes (cycled), then close_notify. (No
// RC_ASSERT inside coroutines: it throws, and tasks do not carry exceptions.)
Task<void> write_in_pieces(Stream& s, const std::vector<uint8_t>& data, const std::vector<size_t>& pieces,
                           bool& ok) {
  size_t off = 0, i = 0;
  while (off < data.size()) {
    const size_t n = std::min(data.size() - off, pieces[i++ % pieces.size()]);
    if (!co_await io::write_all(s, ConstBytes(data).subspan(off, n))) co_return;
    off += n;
  }
  ok = s.shutdown_write().ok();
}

Task<void> read_in_pieces(Stream& s, size_t piece, testing::ReadAll& out) { out = co_await testing::read_all(s, piece); }

RC_GTEST_PROP(TlsProperty, BytesSurviveAnyChunkingAndNonResetFaults, ()) {
  const uint64_t seed = *rc::gen::noShrink(rc::gen::arbitrary<uint64_t>());
  const auto up = *rc::gen::container<std::vector<uint8_t>>(*rc::gen::inRange<size_t>(0, 60000), rc::gen::arbitrary<uint8_t>());
  const auto down = *rc::gen::container<std::vector<uint8_t>>(*rc::gen::inRange<size_t>(0, 60000), rc::gen::arbitrary<uint8_t>());
  const auto up_pieces = *rc::gen::nonEmpty(rc::gen::container<std::vector<size_t>>(rc::gen::inRange<size_t>(1, 40000)));
  const auto down_pieces = *rc::gen::nonEmpty(rc::gen::container<std::vector<size_t>>(rc::gen::inRange<size_t>(1, 40000)));
  const size_t read_piece = *rc::gen::inRange<size_t>(1, 70000);
  const int short_io_percent = *rc::gen::inRange(0, 101);
  const int jitter_us = *rc::gen::inRange(0, 5000);
  const size_t window = *rc::gen::element<size_t>(1, 100, 4096, 65536);
  const int partition_ms = *rc::gen::inRange(0, 3000);

  io::sim::WorldOptions opts;
  opts.faults.short_io = short_io_percent / 100.0;
  opts.link.jitter = std::chrono::microseconds(jitter_us);
  opts.window_bytes = window;
  Harness h(seed, opts);
  TlsWorld w(h.client().clock.wall_now(), seed);
  TlsPair p;
  RC_ASSERT(h.run(connect_pair(h, w.client(), w.server(), p), std::chrono::minutes(10)));
  RC_ASSERT(p.client_hs.ok());
  RC_ASSERT(p.server_hs.ok());
  if (partition_ms > 0) {  // a partition early in the transfer, healed later
    auto& world = h.world();
    const auto c = h.client_host().id(), s = h.server_host().id();
    world.scheduler().after(std::chrono::milliseconds(1), io::sim::kNetwork, "prop.partition", [&world, c, s] { world.partition(c, s); });
    world.scheduler().after(std::chrono::milliseconds(1 + partition_ms), io::sim::kNetwork, "prop.heal", [&world] { world.heal_all(); });
  }
  testing::ReadAll at_server, at_client;
  bool up_ok = false, down_ok = false;
  RC_ASSERT(h.run(all(write_in_pieces(*p.client, up, up_pieces, up_ok), write_in_pieces(*p.server, down, down_pieces, down_ok),
                      read_in_pieces(*p.server, read_piece, at_server), read_in_pieces(*p.client, read_piece, at_client)),
                  std::chrono::hours(4)));
  RC_ASSERT(up_ok && down_ok);
  RC_ASSERT(at_server.end.ok() && *at_server.end == 0);
  RC_ASSERT(at_client.end.ok() && *at_client.end == 0);
  RC_ASSERT(at_server.bytes == up);
  RC_ASSERT(at_client.bytes == down);
}

}  // namespace
}  // namespace zt::sim_tests
