#include "e2e/fake_istiod/ads_service.h"

#include <google/protobuf/util/json_util.h>

#include <deque>
#include <optional>
#include <set>
#include <vector>

namespace zt::e2e::fake_istiod {

namespace pb = envoy::service::discovery::v3;

// One DeltaAggregatedResources call. gRPC allows one read and one write in
// flight: reads chain from OnReadDone, writes queue here and chain from
// OnWriteDone. Finish waits for the write in flight, and nothing is started
// after it, so the call outlives every operation we start on it.
// gRPC calls are made outside mu_: the library may run reactions on any
// thread, and they take mu_.
class DeltaStream final : public grpc::ServerBidiReactor<pb::DeltaDiscoveryRequest, pb::DeltaDiscoveryResponse> {
 public:
  DeltaStream(AdsService& service, uint64_t id) : service_(service), id_(id) {}

  // Admits the call and starts reading, or finishes it at once.
  void start(const std::shared_ptr<DeltaStream>& self, const grpc::CallbackServerContext& ctx) {
    grpc::Status gate = admit_call(ctx, service_.token_, service_.journal_);
    if (!gate.ok()) {
      log_line("ads: stream ", id_, " refused: ", gate.error_message());
      self_ = self;  // OnDone releases it
      finish(gate);
      return;
    }
    service_.opened(self);
    log_line("ads: stream ", id_, " opened");
    StartRead(&request_);
  }

  // Sends every subscribed type what changed since this stream last heard.
  void push() {
    {
      std::lock_guard lock(mu_);
      if (finish_wanted_) return;
      auto state = current_mesh();
      for (auto& entry : subscriptions_) queue_changes(entry.first, entry.second, *state, false);
    }
    pump();
  }

  void finish(const grpc::Status& status) {
    {
      std::lock_guard lock(mu_);
      if (finish_wanted_) return;
      finish_wanted_ = status;
      // What is not on the wire yet never will be; the one that is stays
      // until OnWriteDone (gRPC reads it until then).
      queue_.erase(writing_ ? queue_.begin() + 1 : queue_.begin(), queue_.end());
    }
    pump();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client half-closed or went away
      finish(grpc::Status::OK);
      return;
    }
    handle(request_);
    bool finishing;
    {
      std::lock_guard lock(mu_);
      finishing = finish_wanted_.has_value();
    }
    if (!finishing) StartRead(&request_);  // safe: this read's reference holds the call
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      if (!queue_.empty()) queue_.pop_front();
      if (!ok && !finish_wanted_) {
        finish_wanted_ = grpc::Status::CANCELLED;
        queue_.clear();
      }
    }
    pump();
  }

  void OnCancel() override { finish(grpc::Status::CANCELLED); }

  void OnDone() override {
    log_line("ads: stream ", id_, " closed");
    std::shared_ptr<DeltaStream> last = service_.closed(this);  // null when it was refused
    if (!last) last = std::move(self_);
  }  // `last` goes here, and this stream with it

 private:
  // Names may be resource names or aliases (on demand: "network/ip"); a
  // resource asked for by an alias is then held under its own name too, so
  // it keeps getting updates when its addresses change. Names asked for
  // that match nothing are answered with a removal, as istiod does.
  struct Subscription {
    bool wildcard = false;
    std::set<std::string> names, unanswered;
    std::map<std::string, std::string> sent;  // name -> version the client holds
    bool wants(const std::string& name) const { return wildcard || names.contains(name); }
    bool wants(const std::string& name, const Resource& r) const {
      if (wants(name)) return true;
      for (const std::string& a : r.aliases) {
        if (names.contains(a)) return true;
      }
      return false;
    }
  };

  void handle(const pb::DeltaDiscoveryRequest& req) {
    if (req.has_node() && !node_seen_) {
      node_seen_ = true;
      std::string metadata;
      (void)google::protobuf::util::MessageToJsonString(req.node().metadata(), &metadata);
      service_.journal_.node(req.node().id(), metadata.empty() ? "{}" : metadata);
      log_line("ads: stream ", id_, " node ", req.node().id());
    }
    if (!req.response_nonce().empty()) {
      if (req.has_error_detail()) {
        service_.journal_.nack({req.type_url(), req.response_nonce(), req.error_detail().message()});
        log_line("ads: stream ", id_, " NACK ", req.type_url(), " nonce ", req.response_nonce(), ": ",
                 req.error_detail().message());
      } else {
        service_.journal_.ack();
        log_line("ads: stream ", id_, " ACK ", req.type_url(), " nonce ", req.response_nonce());
      }
    }
    {
      std::lock_guard lock(mu_);
      if (finish_wanted_) return;
      auto state = current_mesh();
      auto it = subscriptions_.find(req.type_url());
      if (it == subscriptions_.end()) {
        Subscription& s = subscriptions_[req.type_url()];
        s.wildcard = req.resource_names_subscribe().empty();
        subscribe(s, req);
        for (const auto& [name, version] : req.initial_resource_versions())
          if (s.wants(name)) s.sent[name] = version;
        log_line("ads: stream ", id_, " subscribed ", req.type_url(), s.wildcard ? " (wildcard)" : "",
                 ", client holds ", s.sent.size());
        queue_changes(req.type_url(), s, *state, true);
      } else if (subscribe(it->second, req)) {
        queue_changes(req.type_url(), it->second, *state, true);
      }
    }
    pump();
  }

  // Read under mu_, so the states one stream sends from never go back in
  // time when a request and a push race (the mesh only moves forwards).
  std::shared_ptr<const MeshState> current_mesh() const { return service_.mesh_.current(); }

  // Applies the request's subscription changes; true when a name was added
  // (istiod answers those; a pure unsubscribe needs no answer).
  static bool subscribe(Subscription& s, const pb::DeltaDiscoveryRequest& req) {
    bool added = false;
    for (const std::string& name : req.resource_names_subscribe()) {
      if (name == "*") {
        added = added || !s.wildcard;
        s.wildcard = true;
      } else if (s.names.insert(name).second) {
        s.unanswered.insert(name);
        added = true;
      }
    }
    for (const std::string& name : req.resource_names_unsubscribe()) {
      if (name == "*") {
        s.wildcard = false;
      } else {
        s.names.erase(name);
        s.unanswered.erase(name);
      }
    }
    std::erase_if(s.sent, [&](const auto& held) { return !s.wants(held.first); });
    return added;
  }

  // Queues a response with what `s` lacks; `always` answers even with
  // nothing (a subscription). Caller holds mu_.
  void queue_changes(const std::string& type_url, Subscription& s, const MeshState& state, bool always) {
    pb::DeltaDiscoveryResponse r;
    r.set_type_url(type_url);
    const ResourceMap& resources = state.of(type_url);
    for (const auto& [name, resource] : resources) {
      if (!s.wants(name, resource)) continue;
      if (!s.wildcard) s.names.insert(name);
      s.unanswered.erase(name);
      for (const std::string& a : resource.aliases) s.unanswered.erase(a);
      auto held = s.sent.find(name);
      if (held != s.sent.end() && held->second == resource.version) continue;
      pb::Resource* out = r.add_resources();
      out->set_name(name);
      for (const std::string& a : resource.aliases) out->add_aliases(a);
      out->set_version(resource.version);
      out->mutable_resource()->set_type_url(type_url);
      out->mutable_resource()->set_value(resource.bytes);
      s.sent[name] = resource.version;
    }
    for (auto held = s.sent.begin(); held != s.sent.end();) {
      if (resources.contains(held->first)) {
        ++held;
        continue;
      }
      r.add_removed_resources(held->first);
      held = s.sent.erase(held);
    }
    for (const std::string& name : s.unanswered) r.add_removed_resources(name);  // none here
    s.unanswered.clear();
    if (r.resources().empty() && r.removed_resources().empty() && !always) return;
    r.set_nonce(service_.next_nonce());
    r.set_system_version_info(std::to_string(state.revision));
    log_line("ads: stream ", id_, " sends ", type_url, " nonce ", r.nonce(), ": ", r.resources_size(), " resources, ",
             r.removed_resources_size(), " removed");
    queue_.push_back(std::move(r));
  }

  // Starts the next write, or the finish once no write is in flight.
  void pump() {
    const pb::DeltaDiscoveryResponse* next = nullptr;
    std::optional<grpc::Status> finish_now;
    {
      std::lock_guard lock(mu_);
      if (writing_ || finished_) return;
      if (finish_wanted_) {
        finished_ = true;
        finish_now = finish_wanted_;
      } else if (!queue_.empty()) {
        writing_ = true;
        next = &queue_.front();  // a deque keeps it in place while others queue behind
      }
    }
    if (finish_now) Finish(*finish_now);
    else if (next) StartWrite(next);
  }

  AdsService& service_;
  const uint64_t id_;
  std::shared_ptr<DeltaStream> self_;  // only for a refused call, until OnDone
  pb::DeltaDiscoveryRequest request_;  // touched by the one read chain only
  bool node_seen_ = false;             // likewise

  std::mutex mu_;
  std::map<std::string, Subscription> subscriptions_;  // by type URL
  std::deque<pb::DeltaDiscoveryResponse> queue_;       // front() is on the wire while writing_
  bool writing_ = false;
  std::optional<grpc::Status> finish_wanted_;
  bool finished_ = false;
};

AdsService::AdsService(const MeshFile& mesh, Journal& journal, std::string token)
    : mesh_(mesh), journal_(journal), token_(std::move(token)) {}

grpc::ServerBidiReactor<pb::DeltaDiscoveryRequest, pb::DeltaDiscoveryResponse>* AdsService::DeltaAggregatedResources(
    grpc::CallbackServerContext* ctx) {
  uint64_t id;
  {
    std::lock_guard lock(mu_);
    id = ++stream_ids_;
  }
  auto stream = std::make_shared<DeltaStream>(*this, id);
  stream->start(stream, *ctx);
  return stream.get();
}

void AdsService::opened(const std::shared_ptr<DeltaStream>& stream) {
  {
    std::lock_guard lock(mu_);
    streams_[stream.get()] = stream;
  }
  journal_.stream_opened();
}

std::shared_ptr<DeltaStream> AdsService::closed(DeltaStream* stream) {
  std::shared_ptr<DeltaStream> owner;
  {
    std::lock_guard lock(mu_);
    auto it = streams_.find(stream);
    if (it == streams_.end()) return nullptr;
    owner = std::move(it->second);
    streams_.erase(it);
  }
  journal_.stream_closed();
  return owner;
}

std::string AdsService::next_nonce() {
  std::lock_guard lock(mu_);
  return std::to_string(++nonces_);
}

void AdsService::push_all() {
  std::vector<std::shared_ptr<DeltaStream>> streams;
  {
    std::lock_guard lock(mu_);
    for (const auto& entry : streams_) streams.push_back(entry.second);
  }
  for (const auto& s : streams) s->push();
}

size_t AdsService::reset_all(const grpc::Status& status) {
  std::vector<std::shared_ptr<DeltaStream>> streams;
  {
    std::lock_guard lock(mu_);
    for (const auto& entry : streams_) streams.push_back(entry.second);
  }
  for (const auto& s : streams) s->finish(status);
  return streams.size();
}

}  // namespace zt::e2e::fake_istiod
