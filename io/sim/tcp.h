// Internal to io/sim: the state behind simulated TCP connections and the
// engine that moves segments between them. See world.h for the model.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "io/network.h"
#include "io/sim/world.h"

namespace zt::io::sim {

struct Segment {
  enum Kind : uint8_t { data, fin, rst, ack };
  Kind kind = data;
  std::vector<uint8_t> bytes;  // data
  uint64_t acked = 0;          // ack: bytes the receiver has read
};

// One read or one write in flight on a side.
struct PendingOp {
  bool active = false;  // parked, waiting for bytes or window
  MutableBytes rbuf;
  ConstBytes wbuf;
  Stream::IoCallback cb;
  Scheduler::EventId completion = 0;  // decided, callback scheduled
  bool busy() const { return active || completion != 0; }
};

struct Side {
  HostId host = 0;
  Endpoint local, peer;
  std::optional<Endpoint> original_dst;
  std::deque<uint8_t> rx;  // arrived, unread
  bool fin_in = false, rst_in = false;
  bool fin_out = false, rst_out = false;
  bool closed = false;  // closed or aborted by its owner, or its host crashed
  bool dead = false;    // its host crashed
  uint64_t unacked = 0; // sent, not yet read by the peer (the window in use)
  uint64_t sent = 0;
  PendingOp read, write;
  bool has_stream = false;
};

struct Conn {
  uint64_t id = 0;
  Side side[2];                 // 0 = client, 1 = server
  MonoTime last_arrival[2]{};   // per sender: keeps each direction in order
  std::deque<Segment> held[2];  // per sender: waiting for a partition to heal
  int reset_side = -1;          // fault: reset once this side has sent reset_offset bytes
  uint64_t reset_offset = 0;
};

struct ListenerState {
  HostId host = 0;
  Endpoint local;
  int backlog = 0;
  std::deque<uint64_t> queue;  // established, not yet accepted (conn ids)
  Listener::AcceptCallback cb;
  bool accept_parked = false;
  Scheduler::EventId completion = 0;
  std::optional<Result<StreamPtr>> result;
  bool closed = false;
};

struct ConnectState {
  HostId host = 0;
  uint64_t incarnation = 0;
  Endpoint source, target;
  std::optional<Endpoint> original_dst;
  std::optional<uint32_t> mark;
  Network::ConnectCallback cb;
  bool decided = false;
  bool dropped = false;  // the Connecting handle is gone
  int attempt = 0;
  Scheduler::EventId retry = 0, completion = 0;
  std::optional<Result<StreamPtr>> result;
};

// The engine: free functions over World state, used by the sim objects.
struct TcpEngine {
  static Conn* find(World& w, uint64_t id);
  static void send(World& w, Conn& c, int from, Segment seg);
  static void arrive(World& w, uint64_t conn_id, int to, const Segment& seg);
  static void complete(World& w, Conn& c, int i, bool is_read, Result<size_t> r);
  static void try_read(World& w, Conn& c, int i);
  static void try_write(World& w, Conn& c, int i);
  static void cancel_ops(World& w, Conn& c, int i);
  static void reset_both(World& w, Conn& c);
  static void maybe_free(World& w, uint64_t id);
  static void close(World& w, uint64_t id, int i, bool abortive);

  static std::unique_ptr<Connecting> connect(World& w, Host& h, const Endpoint& to, const SocketOptions& opts,
                                             Network::ConnectCallback cb);
  static void attempt_syn(World& w, std::shared_ptr<ConnectState> st);
  static void syn_arrive(World& w, std::shared_ptr<ConnectState> st);
  static void syn_lost(World& w, std::shared_ptr<ConnectState> st);
  static void decide(World& w, const std::shared_ptr<ConnectState>& st, Result<StreamPtr> r);
  static ListenerState* find_listener(World& w, HostId h, const Endpoint& ep);
  static void try_accept(World& w, ListenerState& l);
  static uint16_t ephemeral_port(World& w, Host& h);

  static void crash(World& w, HostId h);
  static void restart(World& w, HostId h);
};

class SimStream final : public Stream {
 public:
  SimStream(World& w, uint64_t conn_id, int side);
  ~SimStream() override;
  void read(MutableBytes buf, IoCallback done) override;
  void write(ConstBytes buf, IoCallback done) override;
  Result<void> shutdown_write() override;
  void close() override;
  void abort() override;
  Endpoint local() const override { return local_; }
  Endpoint peer() const override { return peer_; }
  Result<Endpoint> original_dst() const override;

 private:
  void fail_later(IoCallback done, Errc code, std::string_view what);

  World& w_;
  uint64_t id_;
  int side_;
  HostId host_;
  Endpoint local_, peer_;
  std::optional<Endpoint> original_dst_;
  uint64_t late_seq_ = 0;
  std::map<uint64_t, Scheduler::EventId> late_failures_;  // failures not yet delivered
};

class SimListener final : public Listener {
 public:
  SimListener(World& w, std::unique_ptr<ListenerState> st);
  ~SimListener() override;
  void accept(AcceptCallback done) override;
  Endpoint local() const override { return st_->local; }
  void close() override;

 private:
  World& w_;
  std::unique_ptr<ListenerState> st_;
};

class SimConnecting final : public Connecting {
 public:
  SimConnecting(World& w, std::shared_ptr<ConnectState> st) : w_(w), st_(std::move(st)) {}
  ~SimConnecting() override;
  void cancel() override;

 private:
  World& w_;
  std::shared_ptr<ConnectState> st_;
};

}  // namespace zt::io::sim
