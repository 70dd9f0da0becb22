#include "testing/sim_istiod.h"

#include <algorithm>
#include <set>

#include "io/async.h"
#include "io/event.h"
#include "xds/proto/citadel.pb.h"
#include "xds/proto/xds.pb.h"

namespace zt::testing {

namespace pb = envoy::service::discovery::v3;
using xds::grpc::Code;

// What a stream subscribed to of one type: everything (wildcard), or names
// (resource names or aliases). Names asked for and not answered yet get a
// removal when nothing here has them, as istiod answers an unknown name.
struct SimIstiod::Subscription {
  bool wildcard = true;
  std::set<std::string> names, unanswered;
  // Applies a request's subscribe/unsubscribe lists; true when it added names.
  bool update(const pb::DeltaDiscoveryRequest& req) {
    bool added = false;
    for (const std::string& n : req.resource_names_subscribe()) {
      if (n == "*") {
        added = added || !wildcard;
        wildcard = true;
      } else if (names.insert(n).second) {
        unanswered.insert(n);
        added = true;
      }
    }
    for (const std::string& n : req.resource_names_unsubscribe()) {
      if (n == "*") {
        wildcard = false;
      } else {
        names.erase(n);
        unanswered.erase(n);
      }
    }
    return added;
  }
};

bool SimIstiod::subscribed_to(const Subscription& sub, const std::string& name, const Held& held) {
  if (sub.wildcard || sub.names.contains(name)) return true;
  return std::any_of(held.aliases.begin(), held.aliases.end(), [&](const std::string& a) { return sub.names.contains(a); });
}

std::set<std::string> SimIstiod::wanted(const Subscription& sub, const std::string& type_url) const {
  std::set<std::string> out;
  auto here = resources_.find(type_url);
  if (here == resources_.end()) return out;
  for (const auto& [name, held] : here->second)
    if (subscribed_to(sub, name, held)) out.insert(name);
  auto brought = companions_.find(type_url);
  if (sub.wildcard || brought == companions_.end()) return out;
  // One level: what a subscribed resource brings along, not what that brings.
  const std::vector<std::string> direct(out.begin(), out.end());
  for (const std::string& name : direct) {
    auto c = brought->second.find(name);
    if (c == brought->second.end()) continue;
    for (const std::string& companion : c->second)
      if (here->second.contains(companion)) out.insert(companion);
  }
  return out;
}

// One client stream: what it holds of each type (name -> version), and a
// wake-up for pushes.
struct SimIstiod::Stream {
  explicit Stream(Loop& loop) : wake(std::make_unique<Event>(loop)) {}
  xds::grpc::ServerCall* call = nullptr;
  std::map<std::string, std::map<std::string, std::string>> holds;
  std::map<std::string, Subscription> subscribed;  // by type
  std::unique_ptr<Event> wake;
  bool ended = false;
};

SimIstiod::SimIstiod(Env& env, std::unique_ptr<Listener> listener, std::shared_ptr<const tls::TlsContext> tls)
    : env_(env), server_(env, std::move(listener), std::move(tls)) {
  server_.handle(std::string(xds::kDeltaAdsPath), [this](xds::grpc::ServerCall& c) { return serve(c); });
}

SimIstiod::~SimIstiod() = default;

void SimIstiod::serve_ca(tls::Ca ca) {
  ca_.emplace(std::move(ca));
  server_.handle(std::string(xds::kCreateCertificatePath), [this](xds::grpc::ServerCall& c) { return sign(c); });
}

Task<void> SimIstiod::sign(xds::grpc::ServerCall& call) {
  last_metadata_ = call.metadata();
  auto m = co_await call.receive();
  if (!m) co_return call.finish({Code::invalid_argument, "no request"});
  if (answer_delay > Duration(0)) co_await io::sleep(env_.loop, answer_delay);
  if (ca_down) co_return call.finish({Code::unavailable, "the CA is down (test knob)"});
  istio::v1::auth::IstioCertificateRequest req;
  if (!req.ParseFromString(*m)) co_return call.finish({Code::invalid_argument, "a request that does not parse"});
  auto csr = tls::parse_csr(req.csr());
  if (!csr || csr->uri_sans.empty()) co_return call.finish({Code::invalid_argument, "a CSR without a URI SAN"});
  std::string who = csr->uri_sans.front();
  auto it = req.metadata().fields().find("ImpersonatedIdentity");
  if (it != req.metadata().fields().end()) who = it->second.string_value();
  auto id = tls::Identity::parse(who);
  if (!id) co_return call.finish({Code::invalid_argument, id.error().message()});
  Duration lifetime = std::chrono::seconds(req.validity_duration());
  if (ca_lifetime_max > Duration(0)) lifetime = std::min(lifetime, ca_lifetime_max);
  std::vector<tls::Certificate> chain;
  if (ca_wrong_identity) {
    auto other = ca_->issue(tls::Identity(id->trust_domain(), id->ns(), id->service_account() + "-not"), lifetime,
                            env_.clock.wall_now());
    if (other) chain = std::move(other->chain);
  } else {
    auto signed_chain = ca_->sign_csr(req.csr(), *id, lifetime, env_.clock.wall_now());
    if (!signed_chain) co_return call.finish({Code::invalid_argument, signed_chain.error().message()});
    chain = std::move(*signed_chain);
  }
  ++signed_;
  istio::v1::auth::IstioCertificateResponse resp;
  for (const tls::Certificate& c : chain) resp.add_cert_chain(c.to_pem());
  (void)co_await call.send(resp.SerializeAsString());
  call.finish({});
}

void SimIstiod::set(std::string_view type_url, const std::string& name, std::string bytes,
                    std::vector<std::string> aliases) {
  resources_[std::string(type_url)][name] = Held{std::to_string(++version_), std::move(bytes), std::move(aliases)};
}

void SimIstiod::remove(std::string_view type_url, const std::string& name) {
  resources_[std::string(type_url)].erase(name);
  companions_[std::string(type_url)].erase(name);
}

void SimIstiod::set_companions(std::string_view type_url, const std::string& name, std::vector<std::string> companions) {
  auto& of_type = companions_[std::string(type_url)];
  if (companions.empty()) of_type.erase(name);
  else of_type[name] = std::move(companions);
}

void SimIstiod::push() {
  for (auto& [id, s] : streams_) s->wake->set();
}

void SimIstiod::reset_streams() {
  for (auto& [id, s] : streams_) {
    s->ended = true;
    s->call->finish({Code::unavailable, "stream reset by the test"});
    s->wake->set();
  }
}

std::vector<SimIstiod::Request> SimIstiod::nacks() const {
  std::vector<Request> out;
  for (const Request& r : requests_) {
    if (!r.error_detail.empty()) out.push_back(r);
  }
  return out;
}

// The delta from what the stream holds to what is here: changed resources
// and removed names. Updates what the stream holds.
std::string SimIstiod::build(Stream& s, const std::string& type_url) {
  pb::DeltaDiscoveryResponse r;
  r.set_type_url(type_url);
  r.set_nonce(std::to_string(++nonce_));
  auto& holds = s.holds[type_url];
  Subscription& sub = s.subscribed[type_url];
  const auto& here = resources_[type_url];
  const std::set<std::string> want = wanted(sub, type_url);
  for (const auto& [name, held] : here) {
    if (!want.contains(name)) continue;
    // Asked for by an alias, it is then held by its name (and keeps
    // getting its updates when its addresses change). A companion is not:
    // it goes when what brought it no longer does.
    if (!sub.wildcard && subscribed_to(sub, name, held)) sub.names.insert(name);
    sub.unanswered.erase(name);
    for (const std::string& a : held.aliases) sub.unanswered.erase(a);
    auto it = holds.find(name);
    if (it != holds.end() && it->second == held.version) continue;
    pb::Resource* res = r.add_resources();
    res->set_name(name);
    res->set_version(held.version);
    for (const std::string& a : held.aliases) res->add_aliases(a);
    res->mutable_resource()->set_type_url(type_url);
    res->mutable_resource()->set_value(held.bytes);
    holds[name] = held.version;
    ++resources_sent_;
  }
  for (auto it = holds.begin(); it != holds.end();) {
    if (want.contains(it->first)) {
      ++it;
      continue;
    }
    r.add_removed_resources(it->first);
    it = holds.erase(it);
  }
  for (const std::string& name : sub.unanswered) r.add_removed_resources(name);  // we have none
  sub.unanswered.clear();
  return r.SerializeAsString();
}

bool SimIstiod::changed(Stream& s, const std::string& type_url) {
  const auto& holds = s.holds[type_url];
  const Subscription& sub = s.subscribed[type_url];
  const auto& here = resources_[type_url];
  const std::set<std::string> want = wanted(sub, type_url);
  for (const std::string& name : want) {
    auto it = holds.find(name);
    if (it == holds.end() || it->second != here.at(name).version) return true;
  }
  return want.size() != holds.size() || !sub.unanswered.empty();
}

Task<void> SimIstiod::respond(Stream& s, const std::string& type_url) {
  if (answer_delay > Duration(0)) co_await io::sleep(env_.loop, answer_delay);
  if (s.ended) co_return;
  (void)co_await s.call->send(build(s, type_url));
}

Task<void> SimIstiod::serve(xds::grpc::ServerCall& call) {
  ++streams_opened_;
  last_metadata_ = call.metadata();
  if (refuse_streams) co_return call.finish({Code::unavailable, "istiod is refusing streams (test knob)"});
  Stream s(env_.loop);
  s.call = &call;
  const uint64_t id = next_stream_++;
  streams_[id] = &s;
  // Requests and pushes are read by one loop: a request is read, then any
  // push waiting is served.
  struct Reader {
    static Task<void> run(xds::grpc::ServerCall& call, Stream& s, std::vector<Request>& log,
                          std::vector<pb::DeltaDiscoveryRequest>& inbox, Event& done) {
      while (auto m = co_await call.receive()) {
        pb::DeltaDiscoveryRequest req;
        if (!req.ParseFromString(*m)) break;
        Request r{req.type_url(), req.response_nonce(), req.error_detail().message(),
                  size_t(req.initial_resource_versions_size()), req.has_node(), req.node().id(),
                  {req.resource_names_subscribe().begin(), req.resource_names_subscribe().end()},
                  {req.resource_names_unsubscribe().begin(), req.resource_names_unsubscribe().end()}};
        log.push_back(r);
        inbox.push_back(std::move(req));
        s.wake->set();
      }
      s.ended = true;
      s.wake->set();
      done.set();
    }
  };
  std::vector<pb::DeltaDiscoveryRequest> inbox;
  // The reader shares the call's stream: it must end (the client closes
  // once it has our status) before this handler does, or its read would
  // outlive its frame.
  Event reader_done(env_.loop);
  Scope reader;
  reader.spawn(Reader::run(call, s, requests_, inbox, reader_done));
  while (!s.ended) {
    co_await s.wake->wait();
    s.wake = std::make_unique<Event>(env_.loop);
    std::vector<pb::DeltaDiscoveryRequest> got = std::move(inbox);
    inbox.clear();
    std::set<std::string> fresh;
    for (const auto& req : got) {
      if (!req.response_nonce().empty()) continue;  // an ACK or NACK
      auto sub = s.subscribed.find(req.type_url());
      if (sub == s.subscribed.end()) {
        // A new subscription: what the client holds is what it says it
        // holds; no names is the wildcard.
        auto& holds = s.holds[req.type_url()];
        holds.clear();
        for (const auto& [name, version] : req.initial_resource_versions()) holds[name] = version;
        Subscription& fresh_sub = s.subscribed[req.type_url()];
        fresh_sub.wildcard = req.resource_names_subscribe().empty();
        fresh_sub.update(req);
        fresh.insert(req.type_url());
      } else if (sub->second.update(req)) {
        fresh.insert(req.type_url());  // names added: answered like a new subscription
      }
    }
    // A new subscription is always answered (the client waits for it);
    // the others only when something changed.
    for (const auto& [type, sub] : s.subscribed) {
      if (fresh.contains(type) || changed(s, type)) co_await respond(s, type);
    }
  }
  streams_.erase(id);
  if (!call.finished()) call.finish({});
  co_await reader_done.wait();
}

}  // namespace zt::testing
