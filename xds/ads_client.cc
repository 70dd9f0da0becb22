#include "xds/ads_client.h"

#include <algorithm>
#include <deque>

#include "io/async.h"
#include "xds/proto/xds.pb.h"

namespace zt::xds {
namespace {

namespace pb = envoy::service::discovery::v3;
using grpc::Code;

constexpr std::string_view kTerminations = "istio_xds_connection_terminations_total";
constexpr std::string_view kMessages = "istio_xds_message_total";
constexpr std::string_view kMessageBytes = "istio_xds_message_bytes_total";
constexpr std::string_view kNacks = "ztunnel_xds_nacks_total";

std::string short_type(std::string_view type_url) {
  const size_t dot = type_url.rfind('.');
  return std::string(dot == std::string_view::npos ? type_url : type_url.substr(dot + 1));
}

// How upstream tells a stream istiod ended to rebalance (reconnect at once)
// from one that failed (back off).
bool is_rebalance(const grpc::Status& s) {
  return s.code == Code::unknown || s.code == Code::cancelled || s.code == Code::deadline_exceeded ||
         (s.code == Code::unavailable && (s.message.find("transport is closing") != std::string::npos ||
                                          s.message.find("GOAWAY") != std::string::npos ||
                                          s.message.find("goaway") != std::string::npos));
}

}  // namespace

struct AdsClient::Outbox {
  grpc::ClientCall& call;
  Scope& sends;  // where the drain runs: the session's
  std::deque<std::string> queue;
  bool draining = false;
};

NodeInfo node_info(const std::string& instance_ip, const std::string& pod_name, const std::string& pod_namespace,
                   const std::string& node_name, const std::map<std::string, std::string>& proxy_metadata) {
  const std::string ip = instance_ip.empty() ? "1.1.1.1" : instance_ip;  // upstream's default
  NodeInfo n;
  n.id = "ztunnel~" + ip + "~" + pod_name + "." + pod_namespace + "~" + pod_namespace + ".svc.cluster.local";
  n.metadata = {{"NAME", pod_name}, {"NAMESPACE", pod_namespace}, {"INSTANCE_IPS", ip}, {"NODE_NAME", node_name}};
  for (const auto& [k, v] : proxy_metadata) n.metadata[k] = v;
  return n;
}

AdsClient::AdsClient(Env& env, grpc::Channel& channel, core::control::Readiness& readiness,
                     core::metrics::Registry& metrics, AdsConfig config)
    : env_(env), channel_(channel), metrics_(metrics), cfg_(std::move(config)), rng_(env.rng.stream("xds")) {
  using core::metrics::MetricType;
  metrics_.declare(kTerminations, MetricType::counter, "The total number of completed connections to xds server (unstable)");
  metrics_.declare(kMessages, MetricType::counter, "Total number of messages received (unstable)");
  metrics_.declare(kMessageBytes, MetricType::counter, "Total number of bytes received (unstable)");
  metrics_.declare(kNacks, MetricType::counter, "xDS responses this node refused (NACKed), by type.");
  for (std::string_view type : {kAddressType, kAuthorizationType}) {
    // On demand, Address is subscribed to nothing at first: nothing to wait for.
    if (cfg_.on_demand && type == kAddressType) continue;
    first_response_.emplace(std::string(type), readiness.block("xds " + short_type(type)));
  }
}

AdsClient::~AdsClient() { scope_.clear(); }

void AdsClient::start(Publish publish) {
  publish_ = std::move(publish);
  scope_.spawn(run());
}

void AdsClient::stop() {
  stopped_ = true;
  publish_ = nullptr;
  scope_.clear();
  status_.connected = false;
}

Duration AdsClient::jittered(Duration d) {
  // Between half and all of it: a fleet whose istiod came back does not
  // reconnect in step.
  return std::chrono::duration_cast<Duration>(d * (0.5 + 0.5 * rng_.unit()));
}

void AdsClient::count_termination(End end) {
  static constexpr std::string_view kReasons[] = {"ConnectionError", "Error", "Reconnect", "Complete"};
  metrics_.counter(kTerminations, {{"reason", std::string(kReasons[int(end)])}}).inc();
}

Task<void> AdsClient::run() {
  Duration backoff = cfg_.backoff_initial;
  while (!stopped_) {
    const uint64_t acks_before = status_.acks + status_.nacks;
    const MonoTime began = env_.clock.now();
    const End end = co_await session();
    count_termination(end);
    // A stream that was answered reached a working istiod: the next failure
    // starts its backoff over.
    if (status_.acks + status_.nacks > acks_before) backoff = cfg_.backoff_initial;
    if (end == End::connection_error || end == End::error) {
      backoff = std::min(cfg_.backoff_max, backoff * 2);
    } else {
      backoff = cfg_.backoff_initial;
    }
    // Attempts begin at most one backoff apart: the time the failed one
    // took (a SYN to a host that is down is retried until the connect
    // times out) counts towards the wait, so istiod is reached within one
    // backoff of its return.
    const Duration wait = std::max(Duration(0), jittered(backoff) - (env_.clock.now() - began));
    if (end == End::complete || end == End::reconnect) {
      ZT_LOG(env_.log, info, "xds", "xDS stream ended", {"reason", status_.last_termination}, {"retry_in", wait});
    } else {
      ZT_LOG(env_.log, warn, "xds", "xDS stream failed", {"reason", status_.last_termination}, {"retry_in", wait});
    }
    co_await io::sleep(env_.loop, wait);
  }
}

std::string AdsClient::request_for(std::string_view type_url, bool first, const std::string& nonce,
                                   const std::vector<core::mesh::Rejection>* rejected) const {
  pb::DeltaDiscoveryRequest req;
  req.set_type_url(std::string(type_url));
  if (first) {
    pb::Node* node = req.mutable_node();
    node->set_id(cfg_.node.id);
    auto* fields = node->mutable_metadata()->mutable_fields();
    for (const auto& [k, v] : cfg_.node.metadata) (*fields)[k].set_string_value(v);
  }
  if (nonce.empty()) {
    // The initial request of a stream: what we know, so istiod sends the rest.
    auto it = known_.find(type_url);
    if (it != known_.end()) {
      for (const auto& [name, version] : it->second) (*req.mutable_initial_resource_versions())[name] = version;
    }
    if (cfg_.on_demand && type_url == kAddressType) {
      // Named: what we hold and what is still awaited. Nothing yet: "*" in
      // and out in one request, delta xDS's way to subscribe to nothing.
      if (it != known_.end()) {
        for (const auto& [name, version] : it->second) req.add_resource_names_subscribe(name);
      }
      for (const auto& [name, waiting] : demanded_) {
        if (it == known_.end() || !it->second.contains(name)) req.add_resource_names_subscribe(name);
      }
      if (req.resource_names_subscribe().empty()) {
        req.add_resource_names_subscribe("*");
        req.add_resource_names_unsubscribe("*");
      }
    }
  } else {
    req.set_response_nonce(nonce);
  }
  if (rejected && !rejected->empty()) {
    std::string detail;
    for (const core::mesh::Rejection& r : *rejected) {
      if (!detail.empty()) detail += "; ";
      detail += r.name + ": " + r.reason;
    }
    req.mutable_error_detail()->set_code(int(Code::invalid_argument));
    req.mutable_error_detail()->set_message(detail);
  }
  return req.SerializeAsString();
}

std::vector<core::mesh::Rejection> AdsClient::apply(const pb::DeltaDiscoveryResponse& r) {
  std::vector<core::mesh::Rejection> rejected;
  std::vector<core::mesh::NamedResource> resources;
  std::map<std::string, std::string> versions;
  for (const pb::Resource& res : r.resources()) {
    if (res.resource().type_url() != r.type_url()) {
      rejected.push_back({res.name(), "a " + res.resource().type_url() + " in a " + r.type_url() + " response"});
      continue;
    }
    resources.push_back({res.name(), res.resource().value()});
    versions[res.name()] = res.version();
  }
  const std::vector<std::string> removed(r.removed_resources().begin(), r.removed_resources().end());
  std::vector<core::mesh::Rejection> invalid;
  if (r.type_url() == kAddressType) {
    invalid = store_.apply_address_delta(resources, removed);
  } else if (r.type_url() == kAuthorizationType) {
    invalid = store_.apply_authorization_delta(resources, removed);
  } else {
    for (const auto& res : resources) invalid.push_back({res.name, "type " + r.type_url() + " is not one we asked for"});
  }
  // Accepted resources are known at their version; rejected ones are not
  // (istiod must send them again); removed ones are gone.
  auto& known = known_[r.type_url()];
  for (const auto& rej : invalid) versions.erase(rej.name);
  for (auto& [name, version] : versions) known[name] = std::move(version);
  for (const std::string& name : removed) known.erase(name);
  status_.known[r.type_url()] = known.size();
  rejected.insert(rejected.end(), invalid.begin(), invalid.end());
  const bool changed = resources.size() > invalid.size() || !removed.empty();
  if (changed) {
    snapshot_ = store_.publish();
    if (publish_) publish_(snapshot_);
  }
  if (r.type_url() == kAddressType) answer_demands(r);
  return rejected;
}

Task<AdsClient::End> AdsClient::session() {
  Result<h2::Connection*> conn = co_await channel_.connection();
  if (!conn) {
    status_.last_termination = "connection: " + conn.error().message();
    co_return End::connection_error;
  }
  Result<h2::Headers> metadata = cfg_.metadata ? cfg_.metadata() : Result<h2::Headers>(h2::Headers{});
  if (!metadata) {
    status_.last_termination = "call metadata: " + metadata.error().message();
    co_return End::connection_error;
  }
  grpc::CallOptions options;
  options.authority = cfg_.authority;
  options.scheme = channel_.scheme();
  options.metadata = std::move(*metadata);
  grpc::ClientCall call(env_, **conn, std::string(kDeltaAdsPath), std::move(options));
  ++status_.connects;
  status_.connected = true;
  ZT_LOG(env_.log, info, "xds", "xDS stream opening", {"address", cfg_.authority},
         {"known", known_[std::string(kAddressType)].size() + known_[std::string(kAuthorizationType)].size()});
  // Sends leave through the outbox, one at a time, in order; the drain
  // goes before the outbox and the call (declared after them).
  Scope sends;
  Outbox outbox{call, sends};
  outbox_ = &outbox;
  struct Detach {
    Outbox*& box;
    ~Detach() { box = nullptr; }
  } detach{outbox_};
  enqueue(request_for(kAddressType, true, "", nullptr));
  enqueue(request_for(kAuthorizationType, false, "", nullptr));
  while (std::optional<std::string> m = co_await call.receive()) {
    pb::DeltaDiscoveryResponse r;
    if (!r.ParseFromString(*m)) {
      call.cancel({Code::internal, "an xDS response that does not parse"});
      break;
    }
    metrics_.counter(kMessages, {{"url", r.type_url()}}).inc();
    metrics_.counter(kMessageBytes, {{"url", r.type_url()}}).inc(m->size());
    const std::vector<core::mesh::Rejection> rejected = apply(r);
    if (rejected.empty()) {
      ++status_.acks;
      ZT_LOG(env_.log, debug, "xds", "ACK", {"type", r.type_url()}, {"nonce", r.nonce()},
             {"resources", r.resources_size()}, {"removed", r.removed_resources_size()});
    } else {
      ++status_.nacks;
      metrics_.counter(kNacks, {{"url", r.type_url()}}).inc();
      std::string detail;
      for (const auto& rej : rejected) detail += (detail.empty() ? "" : "; ") + rej.name + ": " + rej.reason;
      status_.last_nack = AdsStatus::Nack{r.type_url(), r.nonce(), detail, env_.clock.wall_now()};
      ZT_LOG(env_.log, warn, "xds", "NACK: resources rejected, the rest applied", {"type", r.type_url()},
             {"nonce", r.nonce()}, {"rejected", rejected.size()}, {"detail", detail});
    }
    if (auto it = first_response_.find(r.type_url()); it != first_response_.end()) it->second.release();
    enqueue(request_for(r.type_url(), false, r.nonce(), &rejected));
  }
  status_.connected = false;
  const grpc::Status st = call.status();
  status_.last_termination = st.to_string();
  if (st.ok()) co_return End::complete;
  co_return is_rebalance(st) ? End::reconnect : End::error;
}

void AdsClient::enqueue(std::string message) {
  if (!outbox_) return;
  outbox_->queue.push_back(std::move(message));
  if (outbox_->draining) return;
  outbox_->draining = true;
  outbox_->sends.spawn(drain(outbox_->call, *outbox_));
}

// Sends what the outbox holds, in order, then stops (the next enqueue
// starts it again). A send that fails broke the stream: the call
// is cancelled so that the receive loop ends too.
Task<void> AdsClient::drain(grpc::ClientCall& call, Outbox& box) {
  while (!box.queue.empty()) {
    std::string message = std::move(box.queue.front());
    box.queue.pop_front();
    if (!co_await call.send(std::move(message))) {
      box.queue.clear();
      if (!call.finished()) call.cancel({Code::unavailable, "sending on the xDS stream failed"});
      break;
    }
  }
  box.draining = false;
}

void AdsClient::demand(std::string key, std::function<void()> answered) {
  if (!cfg_.on_demand || resolves(key) || demanded_.size() >= kMaxDemandsPending) {
    env_.loop.post(std::move(answered));
    return;
  }
  auto [it, fresh] = demanded_.try_emplace(std::move(key));
  it->second.push_back(std::move(answered));
  status_.demands_pending = demanded_.size();
  if (!fresh) return;  // asked already; this caller waits for the same answer
  ++status_.demanded;
  ZT_LOG(env_.log, debug, "xds", "on-demand request", {"name", it->first}, {"connected", outbox_ != nullptr});
  // Connected: ask now; else the next stream's initial request names it.
  pb::DeltaDiscoveryRequest req;
  req.set_type_url(std::string(kAddressType));
  req.add_resource_names_subscribe(it->first);
  enqueue(req.SerializeAsString());
}

// Whether the state already answers `key`: "network/ip", "namespace/hostname"
// or a workload uid.
bool AdsClient::resolves(std::string_view key) const {
  if (!snapshot_) return false;
  const size_t slash = key.find('/');
  if (slash == std::string_view::npos) return snapshot_->workload_by_uid(key) != nullptr;
  const std::string_view first = key.substr(0, slash), rest = key.substr(slash + 1);
  if (auto ip = IpAddr::parse(rest)) {
    const core::mesh::NetworkAddress addr{std::string(first), *ip};
    return snapshot_->workload_by_address(addr) || snapshot_->service_by_vip(addr);
  }
  return snapshot_->service_by_host({std::string(first), std::string(rest)}) != nullptr;
}

// Wakes whoever waits for a name this response answers: sent, sent as an
// alias, removed (istiod has none), or now resolvable in the state.
void AdsClient::answer_demands(const pb::DeltaDiscoveryResponse& r) {
  if (demanded_.empty()) return;
  std::set<std::string, std::less<>> named(r.removed_resources().begin(), r.removed_resources().end());
  for (const pb::Resource& res : r.resources()) {
    named.insert(res.name());
    named.insert(res.aliases().begin(), res.aliases().end());
  }
  for (auto it = demanded_.begin(); it != demanded_.end();) {
    if (!named.contains(it->first) && !resolves(it->first)) {
      ++it;
      continue;
    }
    for (auto& answered : it->second) env_.loop.post(std::move(answered));
    it = demanded_.erase(it);
  }
  status_.demands_pending = demanded_.size();
}

}  // namespace zt::xds
