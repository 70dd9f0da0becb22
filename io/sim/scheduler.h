// The simulator's only source of progress: events ordered by (virtual time,
// sequence number), dispatched one at a time on one thread. Virtual time
// jumps straight to the next event; nothing sleeps.
//
// Every event has an owner: a simulated host (its timers, its I/O
// completions) or the network itself (segments in flight, kNetwork). A
// host crash drops every event the host owns.
//
//   Scheduler sched(trace);
//   sched.after(5ms, kNetwork, "demo", [] { ... });
//   sched.run_until(sched.now() + 1s);
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string_view>
#include <unordered_map>

#include "io/loop.h"
#include "io/sim/trace.h"
#include "io/time.h"

namespace zt::io::sim {

using HostId = uint32_t;
inline constexpr HostId kNetwork = 0;

class Scheduler {
 public:
  using EventId = uint64_t;

  explicit Scheduler(Trace& trace) : trace_(trace) {}

  MonoTime now() const { return now_; }
  // `what` must outlive the event (a string literal).
  EventId at(MonoTime when, HostId owner, std::string_view what, Callback fn);
  EventId after(Duration delay, HostId owner, std::string_view what, Callback fn) {
    return at(now_ + delay, owner, what, std::move(fn));
  }
  // True if the event was pending (it will now never run).
  bool cancel(EventId id);
  // Drops every pending event of owner (a crash). Returns how many.
  size_t drop_owner(HostId owner);

  // Runs the next event; false when none is left.
  bool step();
  // Runs events due at or before `limit`, then sets the time to `limit`.
  void run_until(MonoTime limit);
  // Runs until done() holds or time would pass `limit`; returns done().
  bool run_until(const std::function<bool()>& done, MonoTime limit);

  size_t pending() const { return events_.size(); }
  size_t pending_for(HostId owner) const;
  uint64_t dispatched() const { return dispatched_; }
  Trace& trace() { return trace_; }

 private:
  struct Key {
    int64_t time_ns;
    uint64_t seq;
    auto operator<=>(const Key&) const = default;
  };
  struct Event {
    HostId owner;
    std::string_view what;
    Callback fn;
  };

  Trace& trace_;
  MonoTime now_{};
  uint64_t next_seq_ = 1;
  uint64_t dispatched_ = 0;
  std::map<Key, Event> events_;
  std::unordered_map<EventId, int64_t> time_of_;  // lookup only, never iterated
};

}  // namespace zt::io::sim
