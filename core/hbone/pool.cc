#include "core/hbone/pool.h"

#include <algorithm>
#include <optional>

#include "io/async.h"
#include "io/event.h"
#include "tls/stream.h"

namespace zt::core::hbone {
namespace {

// Awaits h2::Connection::open.
struct OpenAwaiter {
  h2::Connection& conn;
  h2::Request request;
  const std::function<void(StreamPtr)>& early;
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
  }
  Result<h2::Opened> await_resume() { return std::move(*result); }
};

}  // namespace

std::string PoolKey::to_string() const {
  std::string ids;
  for (const auto& id : destination_identities) ids += (ids.empty() ? "" : ",") + id;
  return source_identity + " -> " + destination.to_string() + " [" + ids + "] from " + source_ip.to_string();
}

struct Pool::Conn {
  explicit Conn(Loop& loop) : ready(loop) {}
  std::unique_ptr<h2::Connection> h2;  // set once established
  Event ready;                         // established or failed
  std::optional<Error> failed;
  size_t reserved = 0;  // streams promised to callers, not yet answered
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
  for (const auto& [key, list] : conns_) n += list.size();
  return n;
}

size_t Pool::connections_for(const PoolKey& key) const {
  auto it = conns_.find(key);
  return it == conns_.end() ? 0 : it->second.size();
}

size_t Pool::capacity(const Conn& c) const {
  return std::min<size_t>(config_.streams_per_connection_max, c.h2->peer_concurrent_streams_max());
}

Pool::Conn* Pool::pick(const PoolKey& key) {
  auto it = conns_.find(key);
  if (it == conns_.end()) return nullptr;
  for (auto& c : it->second) {
    if (!c->h2 || c->failed || !c->h2->accepting_streams()) continue;
    if (c->h2->active_streams() + c->reserved < capacity(*c)) return c.get();
  }
  return nullptr;
}

Task<Result<Pool::Conn*>> Pool::acquire(const PoolKey& key, bool fresh) {
  if (!fresh) {
    if (Conn* c = pick(key)) {
      ZT_ASSERT(c->h2 && !c->failed);
      ++c->reserved;
      c->idle_since.reset();
      ZT_LOG(env_.log, debug, "hbone::pool", "reusing connection", {"key", key.to_string()},
             {"streams", c->h2->active_streams()}, {"reserved", c->reserved});
      co_return c;
    }
  }
  // Join a connection being set up that still has room: a burst opens one.
  Conn* conn = nullptr;
  for (auto& c : conns_[key]) {
    if (!c->ready.is_set() && c->reserved < config_.streams_per_connection_max) {
      conn = c.get();
      break;
    }
  }
  if (!conn) {
    ZT_LOG(env_.log, debug, "hbone::pool", "opening connection", {"key", key.to_string()}, {"fresh", fresh});
    conns_[key].push_back(std::make_unique<Conn>(env_.loop));
    conn = conns_[key].back().get();
    scope_.spawn(establish(key, conn));
  }
  ++conn->reserved;
  co_await conn->ready.wait();
  ZT_ASSERT(conn->ready.is_set() && conn->reserved > 0);
  ZT_ASSERT(conn->failed.has_value() != bool(conn->h2));  // one outcome: failed, or connected
  if (conn->failed) {
    --conn->reserved;
    note_if_unused(*conn);
    co_return *conn->failed;
  }
  co_return conn;
}

Task<void> Pool::establish(PoolKey key, Conn* conn) {
  auto fail = [&](Error e) {
    ZT_ASSERT(!conn->ready.is_set());
    ++counters_.connection_failures;
    conn->failed = Error(e.code, "HBONE connection to " + key.to_string() + ": " + e.message());
    ZT_LOG(env_.log, debug, "hbone::pool", "connection failed", {"key", key.to_string()},
           {"error", conn->failed->message()});
    conn->ready.set();
    note_if_unused(*conn);  // usually still promised to the waiters, who note it when they let go
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
  conn->h2->on_closed([this, conn](const Error&) { note_if_unused(*conn); });
  // Waiters first: they resume (and submit their CONNECTs) before the
  // connection's first write, so the CONNECTs go with the preface.
  ZT_ASSERT(!conn->failed && !conn->ready.is_set());
  conn->ready.set();
  conn->h2->start();
  ++counters_.connections_opened;
  ZT_LOG(env_.log, debug, "hbone::pool", "connection established", {"key", key.to_string()},
         {"waiting", conn->reserved});
  note_if_unused(*conn);
}

Task<Result<h2::Opened>> Pool::open(PoolKey key, h2::Request request, std::function<void(StreamPtr)> early) {
  for (int attempt = 0;; ++attempt) {
    Result<Conn*> c = co_await acquire(key, /*fresh=*/attempt > 0);
    if (!c) {
      ++counters_.tunnels_failed;
      co_return c.error();
    }
    Conn* conn = *c;
    ZT_ASSERT(conn->h2 && conn->reserved > 0);
    h2::Request req = request;
    OpenAwaiter awaiter{*conn->h2, std::move(req), early, std::nullopt};
    Result<h2::Opened> r = co_await awaiter;
    ZT_ASSERT(conn->reserved > 0);
    --conn->reserved;
    note_if_unused(*conn);  // the stream may be over already, or never opened
    if (!r && r.code() == h2::kRefused && attempt == 0) {
      ++counters_.retries;  // never reached the peer's application: try once more, fresh
      ZT_LOG(env_.log, debug, "hbone::pool", "stream refused; retrying on a fresh connection",
             {"key", key.to_string()}, {"error", r.error().message()});
      continue;
    }
    r ? ++counters_.tunnels_opened : ++counters_.tunnels_failed;
    co_return r;
  }
}

bool Pool::unused(const Conn& c) {
  return c.ready.is_set() && c.reserved == 0 && (c.failed || c.h2->dead() || c.h2->active_streams() == 0);
}

bool Pool::broken(const Conn& c) { return c.failed || (c.h2 && c.h2->dead()); }

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
    auto& list = it->second;
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
        ZT_ASSERT(conn.reserved == 0);  // promised to nobody: safe to drop
        if (!is_broken) ++counters_.connections_released;
        ZT_LOG(env_.log, debug, "hbone::pool", is_broken ? "dropped dead connection" : "released idle connection",
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
