#include "core/hbone/pool.h"

#include <algorithm>
#include <optional>

#include "io/async.h"
#include "io/event.h"
#include "tls/stream.h"

namespace zt::core::hbone {
namespace {

// Placements one caller may go through: each after a new connection's first
// answer (or its end), so a burst is placed in a few.
constexpr size_t kPlacementRoundsMax = 64;

// Awaits h2::Connection::open. `promised` counts the connection's streams
// promised to callers and not submitted: this one is submitted (or refused)
// once open() returns, and counts among the connection's streams from then.
struct OpenAwaiter {
  h2::Connection& conn;
  h2::Request request;
  const std::function<void(StreamPtr)>& early;
  size_t& promised;
  std::optional<Result<h2::Opened>> result;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    conn.open(
        std::move(request),
        [this, h](Result<h2::Opened> r) {
          result.emplace(std::move(r));
          h.resume();
        },
        early);
    ZT_ASSERT(promised > 0);
    --promised;
  }
  Result<h2::Opened> await_resume() { return std::move(*result); }
};

bool contains(const std::vector<uint64_t>& ids, uint64_t id) { return std::find(ids.begin(), ids.end(), id) != ids.end(); }

}  // namespace

std::string PoolKey::to_string() const {
  std::string ids;
  for (const auto& id : destination_identities) ids += (ids.empty() ? "" : ",") + id;
  return source_identity + " -> " + destination.to_string() + " [" + ids + "] from " + source_ip.to_string();
}

struct Pool::Conn {
  Conn(Loop& loop, uint64_t id) : id(id), ready(loop), settled(loop) {}
  const uint64_t id;                   // never reused: names it in a stream's refused_by
  std::unique_ptr<h2::Connection> h2;  // set once established
  Event ready;                         // established or failed
  // Its first answer came, so its peer's SETTINGS are known (a peer sends
  // them before anything else: RFC 9113 3.4), or it failed or ended.
  Event settled;
  std::optional<Error> failed;
  size_t promised = 0;   // streams promised to callers, not submitted yet
  size_t waiting = 0;    // callers waiting for it to settle before they choose
  size_t holders = 0;    // callers holding it: promised, waiting, or awaiting their answer
  size_t answered = 0;   // streams its peer answered
  bool cooling = false;  // refused a stream: takes none until another of its streams is answered
  std::optional<MonoTime> idle_since;
};

Pool::Pool(Env& env, PoolConfig config, ContextFor contexts)
    : env_(env), config_(std::move(config)), contexts_(std::move(contexts)) {}

Pool::~Pool() {
  if (sweep_ != kNoTimer) env_.loop.cancel(sweep_);
  scope_.clear();
}

size_t Pool::connections() const {
  size_t n = 0;
  for (const auto& [key, keyed] : conns_) n += keyed.conns.size();
  return n;
}

std::vector<Pool::ConnectionInfo> Pool::inspect() const {
  std::vector<ConnectionInfo> out;
  for (const auto& [key, keyed] : conns_) {
    for (const auto& c : keyed.conns) {
      out.push_back({c->id, key.destination, c->h2 != nullptr, c->h2 && c->h2->dead(),
                     c->h2 ? c->h2->unread() : h2::Connection::Unread{}});
    }
  }
  return out;
}

size_t Pool::connections_for(const PoolKey& key) const {
  auto it = conns_.find(key);
  return it == conns_.end() ? 0 : it->second.conns.size();
}

size_t Pool::capacity(const Conn& c) const {
  return std::min<size_t>(config_.streams_per_connection_max, c.h2->peer_concurrent_streams_max());
}

size_t Pool::load(const Conn& c) { return c.promised + (c.h2 ? c.h2->active_streams() : 0); }

// Streams a new connection may carry before its peer's SETTINGS are known.
// HTTP/2 sets no limit until the peer announces one, and nghttp2 assumes
// 100, but a peer that allows fewer refuses the rest: so one stream, unless
// the key's peer has told its limit on another connection already.
size_t Pool::budget(const Keyed& keyed) const {
  if (!keyed.peer_limit) return 1;
  return std::max<size_t>(1, std::min(*keyed.peer_limit, config_.streams_per_connection_max));
}

// Callers a connection that has not settled is expected to serve: so many
// wait for it rather than open connections of their own.
size_t Pool::expected(const Keyed& keyed) const {
  return keyed.peer_limit ? budget(keyed) : std::max<size_t>(1, config_.streams_per_connection_max);
}

Pool::Conn* Pool::pick(const Keyed& keyed, const ConnIds& refused_by) const {
  for (const auto& c : keyed.conns) {
    if (!c->settled.is_set() || !c->h2 || c->failed || c->cooling || contains(refused_by, c->id)) continue;
    if (c->h2->accepting_streams() && load(*c) < capacity(*c)) return c.get();
  }
  return nullptr;
}

// A connection not settled yet that can take one more caller: a stream of
// its budget, or a wait for its first answer.
Pool::Conn* Pool::settling(const Keyed& keyed, const ConnIds& refused_by) const {
  for (const auto& c : keyed.conns) {
    if (c->settled.is_set() || contains(refused_by, c->id)) continue;
    ZT_ASSERT(!c->failed && !c->cooling);  // both settle it
    if (c->h2 && !c->h2->accepting_streams()) continue;
    if (load(*c) + c->waiting < expected(keyed)) return c.get();
  }
  return nullptr;
}

Pool::Conn* Pool::open_connection(const PoolKey& key, Keyed& keyed) {
  ZT_LOG(env_.log, debug, "hbone::pool", "opening connection", {"key", key.to_string()},
         {"streams_before_settings", budget(keyed)});
  keyed.conns.push_back(std::make_unique<Conn>(env_.loop, next_conn_id_++));
  Conn* conn = keyed.conns.back().get();
  scope_.spawn(establish(key, conn));
  return conn;
}

Task<Result<Pool::Conn*>> Pool::acquire(const PoolKey& key, const ConnIds& refused_by) {
  for (size_t round = 0; round < kPlacementRoundsMax; ++round) {
    Keyed& keyed = conns_[key];
    if (Conn* c = pick(keyed, refused_by)) {
      ++c->promised;
      ++c->holders;
      c->idle_since.reset();
      ZT_LOG(env_.log, debug, "hbone::pool", "reusing connection", {"key", key.to_string()},
             {"streams", c->h2->active_streams()}, {"promised", c->promised});
      co_return c;
    }
    // A burst waits for one connection rather than opening one each.
    Conn* conn = settling(keyed, refused_by);
    if (!conn) conn = open_connection(key, keyed);
    ++conn->holders;
    conn->idle_since.reset();
    if (load(*conn) < budget(keyed)) {
      ++conn->promised;
      co_await conn->ready.wait();
      ZT_ASSERT(conn->failed.has_value() != bool(conn->h2));  // one outcome: failed, or connected
      if (!conn->failed) co_return conn;
      --conn->promised;
      --conn->holders;
      const Error e = *conn->failed;
      note_if_unused(*conn);
      co_return e;
    }
    // Its peer's limit is not known yet: wait for its first answer, then
    // choose again (join it up to the limit, or open another).
    ++counters_.settings_waits;
    ++conn->waiting;
    co_await conn->settled.wait();
    ZT_ASSERT(conn->waiting > 0 && conn->holders > 0);
    --conn->waiting;
    --conn->holders;
    const std::optional<Error> failed = conn->failed;
    note_if_unused(*conn);
    if (failed) co_return *failed;  // its set-up failed: those it was set up for fail with it
  }
  co_return Error(h2::kRefused, "HBONE connection to " + key.to_string() + ": no connection took the stream");
}

Task<void> Pool::establish(PoolKey key, Conn* conn) {
  auto fail = [&](Error e) {
    ZT_ASSERT(!conn->ready.is_set());
    ++counters_.connection_failures;
    // h2::kLost is kept for streams that may have reached the peer: a set-up
    // failure (a reset during the handshake) carried none.
    const Errc code = e.code == h2::kLost ? Errc::not_connected : e.code;
    conn->failed = Error(code, "HBONE connection to " + key.to_string() + ": " + e.message());
    ZT_LOG(env_.log, debug, "hbone::pool", "connection failed", {"key", key.to_string()},
           {"error", conn->failed->message()});
    conn->ready.set();
    conn->settled.set();
    note_if_unused(*conn);  // usually still held by callers, who note it when they let go
  };
  auto ctx = contexts_(key);
  if (!ctx) co_return fail(ctx.error());
  SocketOptions opts = config_.socket;
  if (!key.source_ip.is_unspecified()) opts.source_ip = key.source_ip;
  const MonoTime deadline = env_.clock.now() + config_.connect_timeout;
  auto tcp = co_await io::connect(env_, key.destination, opts, config_.connect_timeout);
  if (!tcp) co_return fail(tcp.error());
  // A peer that refuses after accepting TCP (fault point): the callers
  // joined to this connection fail, and the pool must keep nothing of it.
  if (ZT_BUGGIFY(env_, "hbone.pool.connect_fails")) co_return fail(Error(Errc::connection_refused, "fault point"));
  // The connect may have taken seconds (SYNs lost, a partition): the
  // certificate asked for before it may have been renewed, or have expired
  // and been withdrawn, meanwhile. The handshake presents what is held now.
  // (Asked before as well: without one, no connect is attempted at all.)
  ctx = contexts_(key);
  if (!ctx) co_return fail(ctx.error());
  auto tls = std::make_unique<tls::TlsStream>(env_, *ctx, std::move(*tcp));
  std::vector<tls::Identity> expected;
  for (const auto& s : key.destination_identities) {
    if (auto id = tls::Identity::parse(s)) expected.push_back(*id);
  }
  tls->expect_identities(std::move(expected));
  // The handshake shares the connect deadline: a peer that accepts TCP but
  // never answers TLS must not hold the callers forever.
  tls::TlsStream* raw = tls.get();
  io::ScopedTimer timer(env_.loop, std::max(Duration(0), deadline - env_.clock.now()), [raw] { raw->abort(); });
  Result<void> hs = co_await tls::handshake(*tls);
  timer.cancel();
  if (!hs) {
    if (hs.code() == Errc::cancelled) co_return fail(Error(Errc::timed_out, "TLS handshake timed out"));
    co_return fail(Error(hs.code(), std::string(tls::tls_failure_name(tls->failure())) + ": " + hs.error().detail));
  }
  if (ZT_BUGGIFY(env_, "hbone.pool.handshake_fails")) {
    co_return fail(Error(Errc::handshake_failed, "fault point: handshake refused after it completed"));
  }
  conn->h2 = std::make_unique<h2::Connection>(env_, std::move(tls), h2::Role::client, config_.h2);
  conn->h2->on_idle([this, conn] { note_if_unused(*conn); });
  conn->h2->on_closed([this, conn](const Error&) {
    conn->settled.set();  // callers waiting for its first answer choose again
    note_if_unused(*conn);
  });
  // Waiters first: they resume (and submit their CONNECTs) before the
  // connection's first write, so the CONNECTs go with the preface.
  ZT_ASSERT(!conn->failed && !conn->ready.is_set());
  conn->ready.set();
  conn->h2->start();
  ++counters_.connections_opened;
  ZT_LOG(env_.log, debug, "hbone::pool", "connection established", {"key", key.to_string()},
         {"callers", conn->holders});
  note_if_unused(*conn);
}

Task<Result<h2::Opened>> Pool::open(PoolKey key, h2::Request request, std::function<void(StreamPtr)> early) {
  ConnIds refused_by;  // connections that refused this stream: its retries go elsewhere
  size_t counted = 0;  // refusals that count against refused_retries_max
  for (;;) {
    Result<Conn*> c = co_await acquire(key, refused_by);
    if (!c) {
      ++counters_.tunnels_failed;
      co_return c.error();
    }
    Conn* conn = *c;
    ZT_ASSERT(conn->h2 && conn->promised > 0 && conn->holders > 0);
    OpenAwaiter awaiter{*conn->h2, request, early, conn->promised, std::nullopt};
    Result<h2::Opened> r = co_await awaiter;
    ZT_ASSERT(conn->holders > 0);
    --conn->holders;
    const bool counts = learn(key, *conn, r);
    const uint64_t id = conn->id;
    note_if_unused(*conn);  // the stream may be over already, or never opened
    if (!r && r.code() == h2::kRefused) {
      refused_by.push_back(id);
      if (counts) ++counted;
      const bool again = counted <= config_.refused_retries_max && refused_by.size() < kAttemptsMax;
      ZT_LOG(env_.log, debug, "hbone::pool",
             again ? "stream refused; retrying on another connection" : "stream refused; giving up",
             {"key", key.to_string()}, {"attempts", refused_by.size()}, {"error", r.error().message()});
      if (again) {
        ++counters_.retries;  // never reached the peer's application
        continue;
      }
    }
    r ? ++counters_.tunnels_opened : ++counters_.tunnels_failed;
    co_return r;
  }
}

bool Pool::learn(const PoolKey& key, Conn& c, const Result<h2::Opened>& r) {
  auto keyed = conns_.find(key);
  ZT_ASSERT(keyed != conns_.end() && c.h2);
  // An answer, or a refusal while the connection lives, came after the
  // peer's SETTINGS: its limit is known now, as it last set it.
  const bool dead = c.h2->dead();
  if (!dead) keyed->second.peer_limit = c.h2->peer_concurrent_streams_max();
  c.settled.set();
  if (r) {
    ++c.answered;
    c.cooling = false;
    return false;
  }
  if (r.code() != h2::kRefused) return false;
  // Refused by a connection going away (GOAWAY, its end, a PING unanswered),
  // or by one that goes on (REFUSED_STREAM): that one takes no new streams
  // for a while. A connection that answered streams and then went away
  // (the peer rotates connections, or restarted) costs the rest no retry.
  const bool going_away =
      dead || (!c.h2->accepting_streams() && c.h2->active_streams() < c.h2->peer_concurrent_streams_max());
  if (!going_away) c.cooling = true;
  return !going_away || c.answered == 0;
}

bool Pool::unused(const Conn& c) {
  ZT_ASSERT(c.promised + c.waiting <= c.holders);
  return c.ready.is_set() && c.holders == 0 && (c.failed || c.h2->dead() || c.h2->active_streams() == 0);
}

bool Pool::broken(const Conn& c) { return c.failed || (c.h2 && c.h2->dead()) || c.cooling; }

void Pool::note_if_unused(Conn& c) {
  if (!unused(c)) return;
  const MonoTime now = env_.clock.now();
  if (!c.idle_since) c.idle_since = now;
  schedule_sweep(broken(c) ? now : *c.idle_since + config_.idle_release);
}

void Pool::schedule_sweep(MonoTime at) {
  if (sweep_ != kNoTimer) {
    if (sweep_at_ <= at) return;  // an earlier sweep reschedules for this one
    env_.loop.cancel(sweep_);
  }
  sweep_at_ = at;
  sweep_ = env_.loop.run_after(std::max(Duration(0), at - env_.clock.now()), [this] {
    sweep_ = kNoTimer;
    release_idle();
  });
}

void Pool::release_idle() {
  const MonoTime now = env_.clock.now();
  std::optional<MonoTime> next;
  for (auto it = conns_.begin(); it != conns_.end();) {
    auto& list = it->second.conns;
    for (auto c = list.begin(); c != list.end();) {
      Conn& conn = **c;
      if (!unused(conn)) {
        conn.idle_since.reset();
        ++c;
        continue;
      }
      if (!conn.idle_since) conn.idle_since = now;  // not noted (cannot happen; kept safe)
      const bool is_broken = broken(conn);
      if (is_broken || now - *conn.idle_since >= config_.idle_release) {
        ZT_ASSERT(conn.holders == 0);  // held by no caller: safe to drop
        if (!is_broken) ++counters_.connections_released;
        ZT_LOG(env_.log, debug, "hbone::pool", is_broken ? "dropped broken connection" : "released idle connection",
               {"key", it->first.to_string()});
        c = list.erase(c);  // the peer sees the connection end; it had no streams
      } else {
        const MonoTime due = *conn.idle_since + config_.idle_release;
        if (!next || due < *next) next = due;
        ++c;
      }
    }
    it = list.empty() ? conns_.erase(it) : std::next(it);
  }
  if (next) schedule_sweep(*next);
}

}  // namespace zt::core::hbone
