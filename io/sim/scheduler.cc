#include "io/sim/scheduler.h"

#include "io/assert.h"

namespace zt::io::sim {

Scheduler::EventId Scheduler::at(MonoTime when, HostId owner, std::string_view what, Callback fn) {
  ZT_ASSERT(fn);
  if (when < now_) when = now_;
  const uint64_t seq = next_seq_++;
  const int64_t t = when.time_since_epoch().count();
  events_.emplace(Key{t, seq}, Event{owner, what, std::move(fn)});
  time_of_.emplace(seq, t);
  return seq;
}

bool Scheduler::cancel(EventId id) {
  auto it = time_of_.find(id);
  if (it == time_of_.end()) return false;
  events_.erase(Key{it->second, id});
  time_of_.erase(it);
  trace_.record("cancel", now_.time_since_epoch().count(), id);
  return true;
}

size_t Scheduler::drop_owner(HostId owner) {
  size_t dropped = 0;
  for (auto it = events_.begin(); it != events_.end();) {
    if (it->second.owner == owner) {
      time_of_.erase(it->first.seq);
      it = events_.erase(it);
      ++dropped;
    } else {
      ++it;
    }
  }
  trace_.record("drop_owner", now_.time_since_epoch().count(), owner, dropped);
  return dropped;
}

size_t Scheduler::pending_for(HostId owner) const {
  size_t n = 0;
  for (const auto& [key, ev] : events_) n += ev.owner == owner;
  return n;
}

bool Scheduler::step() {
  if (events_.empty()) return false;
  auto it = events_.begin();
  const Key key = it->first;
  Event ev = std::move(it->second);
  events_.erase(it);
  time_of_.erase(key.seq);
  ZT_ASSERT(key.time_ns >= now_.time_since_epoch().count());
  now_ = MonoTime(Duration(key.time_ns));
  ++dispatched_;
  trace_.record(ev.what, key.time_ns, key.seq, ev.owner);
  ev.fn();
  return true;
}

void Scheduler::run_until(MonoTime limit) {
  while (!events_.empty() && events_.begin()->first.time_ns <= limit.time_since_epoch().count()) step();
  if (limit > now_) now_ = limit;
}

bool Scheduler::run_until(const std::function<bool()>& done, MonoTime limit) {
  while (!done()) {
    if (events_.empty() || events_.begin()->first.time_ns > limit.time_since_epoch().count()) {
      if (limit > now_) now_ = limit;
      return done();
    }
    step();
  }
  return true;
}

}  // namespace zt::io::sim
