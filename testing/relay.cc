#include "testing/relay.h"

#include "io/async.h"

namespace zt::testing {

const char* relay_outcome_name(RelayOutcome o) {
  switch (o) {
    case RelayOutcome::finished: return "finished";
    case RelayOutcome::reset_downstream: return "reset_downstream";
    case RelayOutcome::reset_upstream: return "reset_upstream";
    case RelayOutcome::connect_failed: return "connect_failed";
    case RelayOutcome::no_destination: return "no_destination";
  }
  return "unknown";
}

Task<RelayResult> relay_connection(Env& env, StreamPtr downstream, Endpoint dst, const RelayConfig& cfg) {
  RelayResult result;
  Result<StreamPtr> upstream = co_await io::connect(env, dst, cfg.upstream, cfg.connect_timeout);
  if (!upstream) {
    downstream->abort();
    result.outcome = RelayOutcome::connect_failed;
    result.error = upstream.error();
    co_return result;
  }
  CopyEnd end = co_await copy_bidirectional(env, *downstream, **upstream, result.bytes);
  result.outcome = end == CopyEnd::finished  ? RelayOutcome::finished
                   : end == CopyEnd::reset_a ? RelayOutcome::reset_downstream
                                             : RelayOutcome::reset_upstream;
  downstream->close();
  (*upstream)->close();
  co_return result;
}

RelayServer::Destination RelayServer::fixed(Endpoint dst) {
  return [dst](const Stream&) -> Result<Endpoint> { return dst; };
}

RelayServer::Destination RelayServer::original_destination() {
  return [](const Stream& s) -> Result<Endpoint> {
    Result<Endpoint> dst = s.original_dst();
    if (!dst) return dst;
    // A connection captured to our own listener that claims our own listener
    // as its destination would loop forever.
    if (*dst == s.local()) return Error(Errc::invalid_argument, "destination is the relay itself");
    return dst;
  };
}

RelayServer::RelayServer(Env& env, std::unique_ptr<Listener> listener, RelayConfig cfg, Destination dst)
    : env_(env),
      cfg_(std::move(cfg)),
      dst_(std::move(dst)),
      acceptor_(env, std::move(listener), [this](StreamPtr s) { return serve(std::move(s)); }) {
  ZT_ASSERT(dst_);
}

RelayServer::~RelayServer() = default;

void RelayServer::start() { acceptor_.start(); }

Task<void> RelayServer::serve(StreamPtr downstream) {
  ++counters_.accepted;
  ++counters_.active;
  RelayResult r;
  Result<Endpoint> dst = dst_(*downstream);
  if (!dst) {
    downstream->abort();
    r.outcome = RelayOutcome::no_destination;
    r.error = dst.error();
  } else {
    r = co_await relay_connection(env_, std::move(downstream), *dst, cfg_);
  }
  --counters_.active;
  counters_.bytes_to_upstream += r.bytes.bytes_a_to_b;
  counters_.bytes_to_downstream += r.bytes.bytes_b_to_a;
  switch (r.outcome) {
    case RelayOutcome::finished: ++counters_.finished; break;
    case RelayOutcome::reset_downstream:
    case RelayOutcome::reset_upstream: ++counters_.reset; break;
    case RelayOutcome::connect_failed:
    case RelayOutcome::no_destination: ++counters_.connect_failed; break;
  }
  if (on_finished_) on_finished_(r);
}

}  // namespace zt::testing
