// A simulated istiod for tests: delta ADS (DeltaAggregatedResources) on our
// gRPC server (xds/grpc/server.h), on the simulated network, with knobs for
// what goes wrong. It holds resources by type and name with a version each,
// answers a new stream with what the client lacks (by its
// initial_resource_versions), pushes changes to every open stream, and
// records what clients sent (ACKs, NACKs and their error_detail).
//
//   SimIstiod istiod(host.env(), std::move(listener), tls_ctx);
//   istiod.set(xds::kAddressType, "uid-1", address_of(workload).SerializeAsString());
//   istiod.start();
//   ... istiod.set(...); istiod.push();
//   istiod.nacks().back().detail;   // what the client refused
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tls/ca.h"
#include "xds/ads_client.h"
#include "xds/ca_client.h"
#include "xds/grpc/server.h"

namespace zt::testing {

class SimIstiod {
 public:
  SimIstiod(Env& env, std::unique_ptr<Listener> listener, std::shared_ptr<const tls::TlsContext> tls);
  ~SimIstiod();

  void start() { server_.start(); }
  // A resource's bytes (the Any's value) under `name`; a new version each
  // time. `aliases` are other names a client may subscribe it by (on
  // demand: "network/ip" for a workload), sent in Resource.aliases.
  void set(std::string_view type_url, const std::string& name, std::string bytes,
           std::vector<std::string> aliases = {});
  void remove(std::string_view type_url, const std::string& name);
  // On demand, what a resource brings along (upstream's ambient index: a
  // service's lookup returns its backing workloads too): a stream that
  // subscribed `name` (by its name or an alias) also gets `companions`
  // (names of the same type), their updates, and their removal once they
  // leave this list (unless the stream subscribed them itself). Wildcard
  // streams get everything anyway. Replaces the previous list; no version
  // change for `name` itself.
  void set_companions(std::string_view type_url, const std::string& name, std::vector<std::string> companions);
  // Sends what changed since the last push to every open stream.
  void push();

  // The CA (CreateCertificate): signs CSRs with `ca` for the identity the
  // call impersonates (or the CSR's).
  void serve_ca(tls::Ca ca);
  tls::Ca* ca() { return ca_ ? &*ca_ : nullptr; }

  // Knobs.
  bool refuse_streams = false;           // new streams end UNAVAILABLE at once
  bool ca_down = false;                  // CreateCertificate answers UNAVAILABLE
  bool ca_wrong_identity = false;        // signs a certificate for another identity
  Duration ca_lifetime_max = Duration(0);  // caps the lifetime given (0: as asked)
  uint64_t certificates_signed() const { return signed_; }
  Duration answer_delay = Duration(0);   // before each response
  void reset_streams();                  // every open stream ends UNAVAILABLE

  struct Request {
    std::string type_url, nonce, error_detail;
    size_t initial_versions = 0;
    bool has_node = false;
    std::string node_id;
    std::vector<std::string> subscribe, unsubscribe;
  };
  const std::vector<Request>& requests() const { return requests_; }
  std::vector<Request> nacks() const;
  size_t streams_opened() const { return streams_opened_; }
  size_t streams_open() const { return streams_.size(); }
  // Metadata of the last stream (authorization, clusterid).
  const h2::Headers& last_metadata() const { return last_metadata_; }
  // Resources sent over all streams, for "sends only what changed".
  uint64_t resources_sent() const { return resources_sent_; }

 private:
  struct Stream;
  Task<void> serve(xds::grpc::ServerCall& call);
  Task<void> sign(xds::grpc::ServerCall& call);
  Task<void> respond(Stream& s, const std::string& type_url);
  std::string build(Stream& s, const std::string& type_url);
  bool changed(Stream& s, const std::string& type_url);

  Env& env_;
  xds::grpc::Server server_;
  struct Held {
    std::string version;
    std::string bytes;
    std::vector<std::string> aliases;
  };
  struct Subscription;
  // What a stream's subscription of one type covers: the names it
  // subscribed (or an alias of), and their companions.
  std::set<std::string> wanted(const Subscription& sub, const std::string& type_url) const;
  static bool subscribed_to(const Subscription& sub, const std::string& name, const Held& held);
  std::map<std::string, std::map<std::string, Held>> resources_;  // type -> name -> held
  std::map<std::string, std::map<std::string, std::vector<std::string>>> companions_;  // type -> name -> brought along
  uint64_t version_ = 0, nonce_ = 0;
  std::map<uint64_t, Stream*> streams_;
  uint64_t next_stream_ = 1;
  std::vector<Request> requests_;
  size_t streams_opened_ = 0;
  h2::Headers last_metadata_;
  uint64_t resources_sent_ = 0;
  std::optional<tls::Ca> ca_;
  uint64_t signed_ = 0;
};

}  // namespace zt::testing
