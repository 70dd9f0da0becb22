// Internal to io/sim: simulated UDP sockets. Datagrams take the link latency,
// are lost to partitions, to the loss rate, or when the receiver's queue is full.
#pragma once

#include <deque>
#include <map>
#include <vector>

#include "io/network.h"
#include "io/sim/world.h"

namespace zt::io::sim {

struct UdpState {
  HostId host = 0;
  Endpoint local;
  std::deque<std::pair<Endpoint, std::vector<uint8_t>>> queue;
  MutableBytes buf;
  DatagramSocket::RecvCallback cb;
  bool parked = false;
  Scheduler::EventId completion = 0;
  bool closed = false;
};

struct UdpEngine {
  static void deliver(World& w, HostId to_host, const Endpoint& to, const Endpoint& from,
                      std::vector<uint8_t> bytes);
  static void try_recv(World& w, UdpState& s);
  static void crash(World& w, HostId h);
};

class SimUdpSocket final : public DatagramSocket {
 public:
  SimUdpSocket(World& w, std::unique_ptr<UdpState> st);
  ~SimUdpSocket() override;
  void send_to(const Endpoint& to, ConstBytes data, SendCallback done) override;
  void recv_from(MutableBytes buf, RecvCallback done) override;
  Endpoint local() const override { return st_->local; }
  void close() override;

 private:
  World& w_;
  std::unique_ptr<UdpState> st_;
  uint64_t send_seq_ = 0;
  std::map<uint64_t, Scheduler::EventId> sends_;  // send completions not yet delivered
};

}  // namespace zt::io::sim
