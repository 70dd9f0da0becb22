#include "core/inpod/zds_client.h"

#include <algorithm>

#include "io/async.h"

namespace zt::core::inpod {

namespace {

// Largest ZDS message read; an add is a few hundred bytes.
constexpr size_t kMessageMax = 64 * 1024;

class PacketConnectAwaiter {
 public:
  PacketConnectAwaiter(Env& env, std::string path) : env_(env), path_(std::move(path)) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    // Destroying the awaiter (the frame went) destroys op_: the callback is dropped.
    op_ = env_.net.connect_packets(path_, [this, h](Result<PacketSocketPtr> r) {
      result_.emplace(std::move(r));
      h.resume();
    });
  }
  Result<PacketSocketPtr> await_resume() { return std::move(*result_); }

 private:
  Env& env_;
  std::string path_;
  std::unique_ptr<Connecting> op_;
  std::optional<Result<PacketSocketPtr>> result_;
};

auto send(PacketSocket& s, const std::string& m) {
  return io::detail::make_awaiter<Result<void>>([&s, &m](PacketSocket::SendCallback cb) {
    s.send(ConstBytes(reinterpret_cast<const uint8_t*>(m.data()), m.size()), std::move(cb));
  });
}

auto receive(PacketSocket& s, MutableBytes buf) {
  return io::detail::make_awaiter<Result<Packet>>(
      [&s, buf](PacketSocket::ReceiveCallback cb) { s.receive(buf, std::move(cb)); });
}

}  // namespace

ZdsClient::ZdsClient(Env& env, ZdsClientConfig cfg, PodRunner& runner)
    : env_(env), cfg_(std::move(cfg)), runner_(runner), rng_(env.rng.stream("zds")) {}

ZdsClient::~ZdsClient() {
  *alive_ = false;
  for (auto& [uid, pod] : pods_) {
    if (pod.retry_timer != kNoTimer) env_.loop.cancel(pod.retry_timer);
  }
  scope_.clear();
}

void ZdsClient::start() { scope_.spawn(run()); }

Duration ZdsClient::jittered(Duration d) {
  // +-20%, so nodes restarted together do not reconnect in step.
  const int64_t span = d.count() / 5;
  if (span <= 0) return d;
  return d - Duration(span) + Duration(int64_t(rng_.below(uint64_t(2 * span) + 1)));
}

Task<void> ZdsClient::run() {
  Duration backoff = cfg_.reconnect_initial;
  for (;;) {
    Result<PacketSocketPtr> sock = co_await PacketConnectAwaiter(env_, cfg_.path);
    if (!sock) {
      ++counters_.connect_failures;
      const Duration wait = jittered(backoff);
      ZT_LOG(env_.log, warn, "inpod", "cannot connect to the CNI node agent; is it healthy?", {"uds", cfg_.path},
             {"error", sock.error().message()}, {"retry_ms", std::chrono::duration_cast<std::chrono::milliseconds>(wait).count()});
      co_await io::sleep(env_.loop, wait);
      backoff = std::min(backoff * 2, cfg_.reconnect_max);
      continue;
    }
    ++counters_.connects;
    connected_ = true;
    ZT_LOG(env_.log, info, "inpod", "connected to the CNI node agent", {"uds", cfg_.path});
    co_await session(**sock);
    connected_ = false;
    ++counters_.disconnects;
    ZT_LOG(env_.log, warn, "inpod", "the CNI node agent went away; pods keep their proxies", {"uds", cfg_.path},
           {"pods", pods_.size()});
    backoff = cfg_.reconnect_initial;
    co_await io::sleep(env_.loop, jittered(backoff));
  }
}

Task<void> ZdsClient::session(PacketSocket& sock) {
  enrollment_.connected();
  const std::string hello = encode_hello();
  if (Result<void> sent = co_await send(sock, hello); !sent) co_return;
  std::vector<uint8_t> buf(kMessageMax);
  for (;;) {
    Result<Packet> packet = co_await receive(sock, MutableBytes(buf));
    std::string error;
    if (!packet) {
      // Too long to be ZDS: answered, and the connection goes on.
      if (packet.error().code != Errc::invalid_argument) co_return;
      error = "unreadable message: " + packet.error().message();
    } else if (packet->size == 0) {
      co_return;  // the agent closed
    } else {
      ++counters_.messages;
      Result<ZdsRequest> request =
          decode_request(std::span<const uint8_t>(buf.data(), packet->size), packet->namespaces.size());
      if (!request) {
        error = request.error().message();
      } else {
        NetNamespacePtr ns = packet->namespaces.empty() ? nullptr : packet->namespaces.front();
        if (auto* add = std::get_if<AddPod>(&*request)) {
          if (!ns) {
            error = "ZDS: the descriptor sent with the add of " + add->uid + " is not a network namespace";
          } else {
            add->netns_id = ns->id();
          }
        }
        if (error.empty()) error = co_await act(std::move(*request), std::move(ns));
      }
    }
    if (!error.empty()) {
      ++counters_.nacks;
      ZT_LOG(env_.log, warn, "inpod", "nack to the CNI node agent", {"error", error});
    }
    const std::string ack = encode_ack(error);
    if (Result<void> sent = co_await send(sock, ack); !sent) co_return;
  }
}

Task<std::string> ZdsClient::act(ZdsRequest request, NetNamespacePtr ns) {
  Result<EnrollmentChange> change = enrollment_.apply(request);
  if (!change) co_return change.error().message();
  for (const std::string& uid : change->removed) stop_pod(uid);
  if (auto* add = std::get_if<AddPod>(&request)) {
    const bool fresh = !change->added.empty() || !change->replaced.empty();
    Pod& pod = pods_[add->uid];
    if (fresh) {
      // A new pod, or a recreated sandbox: the new namespace replaces the old.
      if (pod.retry_timer != kNoTimer) env_.loop.cancel(pod.retry_timer);
      pod = Pod{};
      pod.status.uid = add->uid;
      pod.status.info = add->info;
      pod.status.netns = add->netns_id;
      pod.ns = std::move(ns);
    } else if (pod.status.state != PodStatus::State::retrying) {
      co_return "";  // re-sent after a reconnect: running as it is
    }
    // New, or failing: try now (the add asks us to).
    if (pod.retry_timer != kNoTimer) {
      env_.loop.cancel(pod.retry_timer);
      pod.retry_timer = kNoTimer;
    }
    Result<void> started = co_await start_pod(add->uid);
    if (!started) co_return "failure to start the pod's proxies: " + started.error().message();
    co_return "";
  }
  if (std::holds_alternative<SnapshotSent>(request) && !ready_) {
    ready_ = true;
    ZT_LOG(env_.log, info, "inpod", "first snapshot from the CNI node agent applied", {"pods", pods_.size()});
    if (on_ready_) on_ready_();
  }
  co_return "";
}

Task<Result<void>> ZdsClient::start_pod(const std::string& uid_ref) {
  const std::string uid = uid_ref;  // the caller's string may not outlive the wait
  auto it = pods_.find(uid);
  if (it == pods_.end()) co_return Error(Errc::cancelled, "the pod is gone");
  Pod& pod = it->second;
  pod.status.state = PodStatus::State::starting;
  ++pod.status.attempts;
  const uint64_t generation = ++generation_;
  pod.generation = generation;
  const PodInfo info = pod.status.info;
  NetNamespacePtr ns = pod.ns;
  Result<void> r = co_await io::detail::make_awaiter<Result<void>>([&](std::function<void(Result<void>)> resume) {
    runner_.start(uid, info, ns, [alive = alive_, resume = std::move(resume)](Result<void> result) {
      if (*alive) resume(std::move(result));
    });
  });
  it = pods_.find(uid);
  if (it == pods_.end()) {
    // Deleted while starting: the runner stops it (after this start, in order).
    if (r) runner_.stop(uid);
    co_return Error(Errc::cancelled, "the pod was removed while its proxies started");
  }
  if (it->second.generation != generation) co_return r;  // a newer add took over
  if (r) {
    it->second.status.state = PodStatus::State::running;
    it->second.status.error.clear();
    it->second.next_retry = Duration(0);
    co_return r;
  }
  ++counters_.pod_start_failures;
  it->second.status.error = r.error().message();
  ZT_LOG(env_.log, warn, "inpod", "cannot start the pod's proxies; retrying", {"uid", uid},
         {"error", r.error().message()}, {"attempts", it->second.status.attempts});
  schedule_retry(uid);
  co_return r;
}

void ZdsClient::schedule_retry(const std::string& uid) {
  Pod& pod = pods_.at(uid);
  pod.status.state = PodStatus::State::retrying;
  pod.next_retry = pod.next_retry.count() == 0 ? cfg_.pod_retry_initial : std::min(pod.next_retry * 2, cfg_.pod_retry_max);
  if (pod.retry_timer != kNoTimer) env_.loop.cancel(pod.retry_timer);
  pod.retry_timer = env_.loop.run_after(jittered(pod.next_retry), [this, uid] { retry(uid); });
}

void ZdsClient::retry(const std::string& uid) {
  auto it = pods_.find(uid);
  if (it == pods_.end()) return;
  it->second.retry_timer = kNoTimer;
  if (it->second.status.state != PodStatus::State::retrying) return;
  ++counters_.pod_retries;
  scope_.spawn([](ZdsClient* self, std::string id) -> Task<void> { (void)co_await self->start_pod(id); }(this, uid));
}

void ZdsClient::stop_pod(const std::string& uid) {
  auto it = pods_.find(uid);
  if (it != pods_.end()) {
    if (it->second.retry_timer != kNoTimer) env_.loop.cancel(it->second.retry_timer);
    pods_.erase(it);
  }
  ZT_LOG(env_.log, info, "inpod", "pod removed by the CNI node agent", {"uid", uid});
  runner_.stop(uid);
}

std::vector<PodStatus> ZdsClient::pods() const {
  std::vector<PodStatus> out;
  for (const auto& [uid, pod] : pods_) out.push_back(pod.status);
  return out;
}

}  // namespace zt::core::inpod
