// Semantics of simulated TCP: delivery, ordering, flow control, half-close,
// and each fault kind of docs/SIMULATION.md.
#include <gtest/gtest.h>

#include "testing/sim_test_util.h"

namespace zt::io::sim {
namespace {

using namespace zt::testing;

using Family = IpAddr::Family;

class SimTcp : public ::testing::TestWithParam<Family> {
 protected:
  SimTcp() {
    auto [a, b] = two_hosts(world, GetParam());
    this->a = a;
    this->b = b;
  }
  World world{11};
  Host* a;
  Host* b;
};

INSTANTIATE_TEST_SUITE_P(Families, SimTcp, ::testing::Values(Family::v4, Family::v6),
                         [](const auto& info) { return info.param == Family::v4 ? "v4" : "v6"; });

TEST_P(SimTcp, BytesFlowBothWaysInOrderAfterLatency) {
  StreamPair p;
  ASSERT_TRUE(run(world, connect_pair(*a, *b, 80, p)));
  EXPECT_EQ(p.server->peer(), p.client->local());
  const auto up = pattern(300000, 1), down = pattern(200000, 2);
  bool ok = run(world, [](StreamPair& p, const std::vector<uint8_t>& up,
                          const std::vector<uint8_t>& down) -> Task<void> {
    co_await join(
        [](StreamPair& p, const std::vector<uint8_t>& up) -> Task<void> {
          EXPECT_TRUE(co_await io::write_all(*p.client, up));
          EXPECT_TRUE(p.client->shutdown_write());
        }(p, up),
        [](StreamPair& p, const std::vector<uint8_t>& down) -> Task<void> {
          EXPECT_TRUE(co_await io::write_all(*p.server, down));
          EXPECT_TRUE(p.server->shutdown_write());
        }(p, down),
        [](StreamPair& p, const std::vector<uint8_t>& up) -> Task<void> {
          auto [got, end] = co_await read_all(*p.server);
          EXPECT_TRUE(end && *end == 0);
          EXPECT_TRUE(got == up);
        }(p, up),
        [](StreamPair& p, const std::vector<uint8_t>& down) -> Task<void> {
          auto [got, end] = co_await read_all(*p.client);
          EXPECT_TRUE(end && *end == 0);
          EXPECT_TRUE(got == down);
        }(p, down));
  }(p, up, down));
  EXPECT_TRUE(ok);
  p = {};
  world.run_for(1s);
  EXPECT_EQ(world.live_connections(), 0u) << world.describe_leftovers();
  EXPECT_EQ(world.buffered_bytes(), 0u);
}

TEST_P(SimTcp, DescriptorsCountOpenEndsAndListenersPerHost) {
  auto listener = b->env().net.listen(Endpoint{b->addrs()[0], 81}, {});
  ASSERT_TRUE(listener.ok());
  EXPECT_EQ(world.descriptors_of(b->id()).listeners, 1u);
  StreamPair p;
  ASSERT_TRUE(run(world, connect_pair(*a, *b, 80, p)));  // (its listener is gone again)
  EXPECT_EQ(world.descriptors_of(a->id()).total(), 1u);
  EXPECT_EQ(world.descriptors_of(b->id()).total(), 2u);
  // A closed end is no descriptor, though its object lives on and its
  // connection is still in the world (the peer has not closed).
  p.client->close();
  EXPECT_EQ(world.descriptors_of(a->id()).total(), 0u);
  EXPECT_EQ(world.descriptors_of(b->id()).streams, 1u);
  EXPECT_EQ(world.live_connections(), 1u);
  p.server.reset();
  listener->reset();
  EXPECT_EQ(world.descriptors_of(b->id()).total(), 0u);
}

TEST_P(SimTcp, HalfCloseEachDirectionIndependently) {
  StreamPair p;
  ASSERT_TRUE(run(world, connect_pair(*a, *b, 80, p)));
  bool ok = run(world, [](StreamPair& p) -> Task<void> {
    EXPECT_TRUE(p.client->shutdown_write());
    std::vector<uint8_t> buf(16);
    auto eof = co_await io::read(*p.server, buf);
    EXPECT_TRUE(eof && *eof == 0);  // server sees the client's FIN
    // The other direction still works after the half-close.
    const uint8_t reply[] = {'o', 'k'};
    EXPECT_TRUE(co_await io::write_all(*p.server, reply));
    auto n = co_await io::read(*p.client, buf);
    EXPECT_TRUE(n && *n == 2);
    EXPECT_TRUE(p.server->shutdown_write());
    auto eof2 = co_await io::read(*p.client, buf);
    EXPECT_TRUE(eof2 && *eof2 == 0);
    // Writing after our own FIN is refused.
    auto late = co_await io::write_some(*p.client, reply);
    EXPECT_FALSE(late);
  }(p));
  EXPECT_TRUE(ok);
}

TEST_P(SimTcp, ConnectionRefusedWhenNothingListens) {
  bool ok = run(world, [](Host& a, Host& b) -> Task<void> {
    auto r = co_await io::connect(a.env(), Endpoint{b.addrs()[0], 9}, {}, 5s);
    EXPECT_FALSE(r);
    if (!r) {
      EXPECT_EQ(r.code(), Errc::connection_refused);
    }
  }(*a, *b));
  EXPECT_TRUE(ok);
}

TEST_P(SimTcp, BlackHoleTimesOutByDeadlineOrBySynRetries) {
  world.blackhole(b->addrs()[0]);
  bool ok = run(world, [](World& w, Host& a, Host& b) -> Task<void> {
    MonoTime start = w.now();
    auto r = co_await io::connect(a.env(), Endpoint{b.addrs()[0], 80}, {}, 3s);
    EXPECT_EQ(r.code(), Errc::timed_out);
    EXPECT_EQ(w.now() - start, 3s);
    start = w.now();
    auto slow = co_await io::connect(a.env(), Endpoint{b.addrs()[0], 80}, {}, 1h);
    EXPECT_EQ(slow.code(), Errc::timed_out);
    EXPECT_EQ(w.now() - start, 127s);  // 1+2+4+8+16+32+64: Linux's default SYN retries
  }(world, *a, *b));
  EXPECT_TRUE(ok);
}

TEST_P(SimTcp, PartitionHoldsBytesAndHealDeliversThemInOrder) {
  StreamPair p;
  ASSERT_TRUE(run(world, connect_pair(*a, *b, 80, p)));
  world.partition(a->id(), b->id());
  const auto data = pattern(1000);
  std::vector<uint8_t> got;
  Scope scope;
  scope.spawn([](StreamPair& p, const std::vector<uint8_t>& data) -> Task<void> {
    EXPECT_TRUE(co_await io::write_all(*p.client, data));
    EXPECT_TRUE(p.client->shutdown_write());
  }(p, data));
  scope.spawn([](StreamPair& p, std::vector<uint8_t>& got) -> Task<void> {
    auto r = co_await read_all(*p.server);
    got = std::move(r.bytes);
  }(p, got));
  world.run_for(60s);
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(world.buffered_bytes(), 1000u);
  world.heal(a->id(), b->id());
  world.run_for(1s);
  EXPECT_EQ(got, data);
}

TEST_P(SimTcp, OneWayPartitionStallsOnlyThatDirectionUntilTheWindowFills) {
  StreamPair p;
  ASSERT_TRUE(run(world, connect_pair(*a, *b, 80, p)));
  world.partition_one_way(a->id(), b->id());
  std::vector<uint8_t> buf(100);
  size_t from_b = 0, from_a = 0;
  Scope scope;
  scope.spawn([](StreamPair& p, std::vector<uint8_t>& buf, size_t& n) -> Task<void> {
    auto r = co_await io::read(*p.client, buf);
    n = r ? *r : 0;
  }(p, buf, from_b));
  std::vector<uint8_t> buf2(100);
  scope.spawn([](StreamPair& p, std::vector<uint8_t>& buf, size_t& n) -> Task<void> {
    auto r = co_await io::read(*p.server, buf);
    n = r ? *r : 0;
  }(p, buf2, from_a));
  const uint8_t hello[] = {1, 2, 3};
  p.server->write(hello, [](Result<size_t>) {});
  p.client->write(hello, [](Result<size_t>) {});
  world.run_for(10s);
  EXPECT_EQ(from_b, 3u);  // b -> a is open
  EXPECT_EQ(from_a, 0u);  // a -> b is held
  world.heal_all();
  world.run_for(1s);
  EXPECT_EQ(from_a, 3u);
}

TEST_P(SimTcp, ConnectDuringPartitionRetriesAndSucceedsAfterHeal) {
  auto listener = b->env().net.listen(Endpoint{b->addrs()[0], 80}, {});
  ASSERT_TRUE(listener);
  world.partition(a->id(), b->id());
  Result<StreamPtr> result = Errc::io_error;
  bool done = false;
  Scope scope;
  scope.spawn([](Host& a, Host& b, Result<StreamPtr>& out, bool& done) -> Task<void> {
    out = co_await io::connect(a.env(), Endpoint{b.addrs()[0], 80}, {}, 60s);
    done = true;
  }(*a, *b, result, done));
  world.run_for(5s);
  EXPECT_FALSE(done);
  world.heal_all();
  world.run_for(10s);  // the next SYN retry (at 7 s) gets through
  EXPECT_TRUE(done);
  EXPECT_TRUE(result.ok());
}

TEST_P(SimTcp, ResetAtByteOffsetIsSeenByBothEnds) {
  world.reset_next_connection_at(a->id(), 0, 5000);
  StreamPair p;
  ASSERT_TRUE(run(world, connect_pair(*a, *b, 80, p)));
  const auto data = pattern(20000);
  Result<void> wrote = ok();
  testing::ReadAll got;
  Result<size_t> client_read = size_t{0};
  bool ok = run(world, [](StreamPair& p, const std::vector<uint8_t>& data, Result<void>& wrote,
                          testing::ReadAll& got, Result<size_t>& client_read) -> Task<void> {
    co_await join(
        [](StreamPair& p, const std::vector<uint8_t>& data, Result<void>& wrote) -> Task<void> {
          wrote = co_await io::write_all(*p.client, data);
        }(p, data, wrote),
        [](StreamPair& p, testing::ReadAll& got) -> Task<void> {
          got = co_await read_all(*p.server);
        }(p, got));
    std::vector<uint8_t> buf(10);
    client_read = co_await io::read(*p.client, buf);
  }(p, data, wrote, got, client_read));
  ASSERT_TRUE(ok);
  EXPECT_EQ(wrote.code(), Errc::connection_reset);
  EXPECT_EQ(got.end.code(), Errc::connection_reset);
  EXPECT_LE(got.bytes.size(), 5000u);
  EXPECT_TRUE(std::equal(got.bytes.begin(), got.bytes.end(), data.begin()));  // a prefix, in order
  EXPECT_EQ(client_read.code(), Errc::connection_reset);
  EXPECT_EQ(world.fault_counts().at("reset_at_offset"), 1u);
}

TEST_P(SimTcp, AbortSendsRstAndCloseWithUnreadBytesToo) {
  for (bool abortive : {true, false}) {
    StreamPair p;
    ASSERT_TRUE(run(world, connect_pair(*a, *b, abortive ? 81 : 82, p)));
    if (!abortive) {
      const uint8_t unread[] = {9, 9};
      ASSERT_TRUE(run(world, [](Stream& s, ConstBytes d) -> Task<void> {
        EXPECT_TRUE(co_await io::write_all(s, d));
      }(*p.client, unread)));
      world.run_for(10ms);  // arrives at the server, which never reads it
    }
    abortive ? p.server->abort() : p.server->close();
    std::vector<uint8_t> buf(8);
    Result<size_t> r = size_t{1};
    ASSERT_TRUE(run(world, [](Stream& s, MutableBytes b, Result<size_t>& r) -> Task<void> {
      r = co_await io::read(s, b);
    }(*p.client, buf, r)));
    EXPECT_EQ(r.code(), Errc::connection_reset) << (abortive ? "abort" : "close with unread bytes");
  }
}

TEST_P(SimTcp, SlowReaderAppliesBackpressure) {
  StreamPair p;
  ASSERT_TRUE(run(world, connect_pair(*a, *b, 80, p)));
  const auto data = pattern(1 << 20);
  size_t written = 0;
  Scope scope;
  scope.spawn([](Stream& s, const std::vector<uint8_t>& data, size_t& written) -> Task<void> {
    ConstBytes rest(data);
    while (!rest.empty()) {
      auto n = co_await io::write_some(s, rest);
      if (!n) co_return;
      written += *n;
      rest = rest.subspan(*n);
    }
  }(*p.client, data, written));
  world.run_for(10s);
  EXPECT_EQ(written, world.options().window_bytes);  // nobody reads: the window is the bound
  std::vector<uint8_t> got;
  scope.spawn([](Stream& s, std::vector<uint8_t>& got) -> Task<void> {
    std::vector<uint8_t> buf(8192);
    while (got.size() < (1u << 20)) {
      auto n = co_await io::read(s, buf);
      if (!n || *n == 0) co_return;
      got.insert(got.end(), buf.begin(), buf.begin() + std::ptrdiff_t(*n));
    }
  }(*p.server, got));
  world.run_for(10s);
  EXPECT_EQ(written, data.size());
  EXPECT_EQ(got, data);
}

TEST_P(SimTcp, ShortReadsAndWritesKeepEveryByte) {
  world.options().faults.short_io = 1.0;
  StreamPair p;
  ASSERT_TRUE(run(world, connect_pair(*a, *b, 80, p)));
  const auto data = pattern(20000);
  size_t writes = 0;
  std::vector<uint8_t> got;
  ASSERT_TRUE(run(world, [](StreamPair& p, const std::vector<uint8_t>& data, size_t& writes,
                            std::vector<uint8_t>& got) -> Task<void> {
    co_await join(
        [](Stream& s, const std::vector<uint8_t>& data, size_t& writes) -> Task<void> {
          ConstBytes rest(data);
          while (!rest.empty()) {
            auto n = co_await io::write_some(s, rest);
            ++writes;
            rest = rest.subspan(*n);
          }
          EXPECT_TRUE(s.shutdown_write());
        }(*p.client, data, writes),
        [](Stream& s, std::vector<uint8_t>& got) -> Task<void> { got = (co_await read_all(s)).bytes; }(*p.server,
                                                                                                     got));
  }(p, data, writes, got)));
  EXPECT_EQ(got, data);
  EXPECT_GT(writes, 5u);
  EXPECT_GT(world.fault_counts().at("short_read"), 5u);
}

TEST_P(SimTcp, JitterNeverReordersAStream) {
  world.set_link(a->id(), b->id(), LinkParams{1ms, 5ms});
  world.options().faults.short_io = 0.5;  // many small segments
  StreamPair p;
  ASSERT_TRUE(run(world, connect_pair(*a, *b, 80, p)));
  const auto data = pattern(50000);
  std::vector<uint8_t> got;
  MonoTime start = world.now();
  ASSERT_TRUE(run(world, [](StreamPair& p, const std::vector<uint8_t>& data, std::vector<uint8_t>& got) -> Task<void> {
    co_await join(
        [](Stream& s, const std::vector<uint8_t>& data) -> Task<void> {
          EXPECT_TRUE(co_await io::write_all(s, data));
          EXPECT_TRUE(s.shutdown_write());
        }(*p.client, data),
        [](Stream& s, std::vector<uint8_t>& got) -> Task<void> { got = (co_await read_all(s)).bytes; }(*p.server,
                                                                                                     got));
  }(p, data, got)));
  EXPECT_EQ(got, data);
  EXPECT_GE(world.now() - start, 1ms);
}

TEST_P(SimTcp, BacklogOverflowDropsSynsUntilAccepted) {
  ListenOptions opts;
  opts.backlog = 1;
  auto listener = b->env().net.listen(Endpoint{b->addrs()[0], 80}, opts);
  ASSERT_TRUE(listener);
  std::vector<Result<StreamPtr>> conns;
  Scope scope;
  for (int i = 0; i < 2; ++i) {
    scope.spawn([](Host& a, Host& b, std::vector<Result<StreamPtr>>& out) -> Task<void> {
      out.push_back(co_await io::connect(a.env(), Endpoint{b.addrs()[0], 80}, {}, 60s));
    }(*a, *b, conns));
  }
  world.run_for(500ms);
  EXPECT_EQ(conns.size(), 1u);  // the second SYN found the queue full
  EXPECT_EQ(world.fault_counts().at("backlog_overflow"), 1u);
  StreamPtr accepted;
  scope.spawn([](Listener& l, StreamPtr& out) -> Task<void> { out = std::move(*(co_await io::accept(l))); }(
      **listener, accepted));
  world.run_for(5s);  // the SYN retry after 1 s finds room
  EXPECT_EQ(conns.size(), 2u);
  EXPECT_TRUE(conns[1].ok());
}

TEST_P(SimTcp, CrashDropsEverythingOfTheHostAndRestartResetsPeers) {
  StreamPair p;
  ASSERT_TRUE(run(world, connect_pair(*a, *b, 80, p)));
  bool timer_fired = false;
  b->env().loop.run_after(1s, [&] { timer_fired = true; });
  auto listener = b->env().net.listen(Endpoint{b->addrs()[0], 81}, {});
  ASSERT_TRUE(listener);
  b->on_crash([&] {
    p.server.reset();  // the process's objects go with it
    listener->reset();
  });
  Result<size_t> client_read = size_t{0};
  bool read_done = false;
  Scope scope;
  scope.spawn([](Stream& s, Result<size_t>& r, bool& done) -> Task<void> {
    std::vector<uint8_t> buf(8);
    r = co_await io::read(s, buf);
    done = true;
  }(*p.client, client_read, read_done));
  world.crash(b->id());
  world.run_for(5s);
  EXPECT_FALSE(timer_fired);
  EXPECT_FALSE(read_done);  // a dead host sends nothing, not even RST
  bool refused = false;
  scope.spawn([](Host& a, Host& b, bool& refused) -> Task<void> {
    auto r = co_await io::connect(a.env(), Endpoint{b.addrs()[0], 81}, {}, 2s);
    refused = !r;
  }(*a, *b, refused));
  world.run_for(3s);
  EXPECT_TRUE(refused);  // down: the connect timed out
  world.restart(b->id());
  world.run_for(1s);
  EXPECT_TRUE(read_done);
  EXPECT_EQ(client_read.code(), Errc::connection_reset);
}

TEST_P(SimTcp, DestroyingAStreamDropsItsCallbacksAndCloseCancelsThem) {
  StreamPair p;
  ASSERT_TRUE(run(world, connect_pair(*a, *b, 80, p)));
  std::vector<uint8_t> buf(8);
  int fired = 0;
  Result<size_t> r = size_t{1};
  p.client->read(buf, [&](Result<size_t> x) { r = x; ++fired; });
  p.client->close();
  EXPECT_EQ(fired, 0);  // never inside the call
  world.run_for(1s);
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(r.ok());
  if (!r) {
    EXPECT_EQ(r.code(), Errc::cancelled);
  }
  p.server->read(buf, [&](Result<size_t>) { ++fired; });
  p.server.reset();
  world.run_for(1s);
  EXPECT_EQ(fired, 1);  // the destroyed stream's callback never fired
}

TEST_P(SimTcp, OutboundCaptureKeepsTheOriginalDestination) {
  const uint16_t kCapture = 15001;
  a->capture_outbound(kCapture);
  auto proxy = a->env().net.listen(Endpoint{IpAddr::unspecified(GetParam()), kCapture}, {});
  ASSERT_TRUE(proxy);
  auto real = b->env().net.listen(Endpoint{b->addrs()[0], 80}, {});
  ASSERT_TRUE(real);
  ASSERT_TRUE(run(world, [](Host& a, Host& b, Listener& proxy, Listener& real) -> Task<void> {
    auto app = co_await io::connect(a.env(), Endpoint{b.addrs()[0], 80}, {}, 5s);
    EXPECT_TRUE(app);
    auto captured = co_await io::accept(proxy);
    EXPECT_TRUE(captured);
    auto dst = (*captured)->original_dst();
    EXPECT_TRUE(dst && *dst == (Endpoint{b.addrs()[0], 80}));
    // The proxy's own connection carries the mark and is not captured.
    SocketOptions marked;
    marked.mark = 1337;
    auto upstream = co_await io::connect(a.env(), *dst, marked, 5s);
    EXPECT_TRUE(upstream);
    auto at_server = co_await io::accept(real);
    EXPECT_TRUE(at_server);
    EXPECT_EQ((*at_server)->original_dst().code(), Errc::unsupported);
  }(*a, *b, **proxy, **real)));
}

TEST_P(SimTcp, InboundCaptureKeepsTheOriginalDestinationExceptForExemptPortsAndMarks) {
  b->capture_inbound(15006);
  auto capture = b->env().net.listen(Endpoint{IpAddr::unspecified(GetParam()), 15006}, {});
  auto hbone = b->env().net.listen(Endpoint{b->addrs()[0], 15008}, {});
  auto app = b->env().net.listen(Endpoint{b->addrs()[0], 80}, {});
  ASSERT_TRUE(capture && hbone && app);
  ASSERT_TRUE(run(world, [](Host& a, Host& b, Listener& capture, Listener& hbone, Listener& app) -> Task<void> {
    auto c1 = co_await io::connect(a.env(), Endpoint{b.addrs()[0], 80}, {}, 5s);
    auto s1 = co_await io::accept(capture);  // captured
    EXPECT_TRUE(c1 && s1);
    if (s1) {
      EXPECT_EQ((*s1)->local().port, 15006);
      EXPECT_TRUE((*s1)->original_dst() && *(*s1)->original_dst() == (Endpoint{b.addrs()[0], 80}));
    }
    auto c2 = co_await io::connect(a.env(), Endpoint{b.addrs()[0], 15008}, {}, 5s);
    auto s2 = co_await io::accept(hbone);  // an exempt port
    EXPECT_TRUE(c2 && s2);
    SocketOptions marked;
    marked.mark = 1337;
    auto c3 = co_await io::connect(b.env(), Endpoint{b.addrs()[0], 80}, marked, 5s);
    auto s3 = co_await io::accept(app);  // the proxy's own connection
    EXPECT_TRUE(c3 && s3);
  }(*a, *b, **capture, **hbone, **app)));
}

TEST_P(SimTcp, DatagramsArriveAndAreLostToPartitions) {
  auto sa = a->env().net.udp_bind(Endpoint{a->addrs()[0], 5000});
  auto sb = b->env().net.udp_bind(Endpoint{b->addrs()[0], 53});
  ASSERT_TRUE(sa && sb);
  std::vector<uint8_t> buf(512);
  std::vector<Result<Datagram>> got;
  auto recv = [&] { (*sb)->recv_from(buf, [&](Result<Datagram> d) { got.push_back(d); }); };
  recv();
  const uint8_t q[] = {1, 2, 3, 4};
  (*sa)->send_to(Endpoint{b->addrs()[0], 53}, q, [](Result<size_t> n) { EXPECT_TRUE(n); });
  world.run_for(10ms);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]->size, 4u);
  EXPECT_EQ(got[0]->from, (Endpoint{a->addrs()[0], 5000}));
  world.partition(a->id(), b->id());
  recv();
  (*sa)->send_to(Endpoint{b->addrs()[0], 53}, q, [](Result<size_t>) {});
  world.run_for(1s);
  world.heal_all();
  world.run_for(1s);
  EXPECT_EQ(got.size(), 1u);  // lost, not held: UDP does not retransmit
}

}  // namespace
}  // namespace zt::io::sim
