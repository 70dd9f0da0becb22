#include "e2e/fake_istiod/journal.h"

#include <chrono>
#include <cstdio>

#include <nlohmann/json.hpp>

namespace zt::e2e::fake_istiod {

std::mutex& log_mutex() {
  static std::mutex mu;
  return mu;
}

std::string log_time() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 86'400'000;
  char out[32];
  std::snprintf(out, sizeof(out), "%02d:%02d:%02d.%03d", int(ms / 3'600'000), int(ms / 60'000 % 60),
                int(ms / 1000 % 60), int(ms % 1000));
  return out;
}

void Journal::stream_opened() {
  std::lock_guard lock(mu_);
  ++streams_open_;
  ++streams_opened_;
}

void Journal::stream_closed() {
  std::lock_guard lock(mu_);
  --streams_open_;
}

void Journal::ack() {
  std::lock_guard lock(mu_);
  ++acks_;
}

void Journal::nack(Nack nack) {
  std::lock_guard lock(mu_);
  nacks_.push_back(std::move(nack));
}

void Journal::certificate_signed() {
  std::lock_guard lock(mu_);
  ++certificates_signed_;
}

void Journal::node(const std::string& id, const std::string& metadata_json) {
  std::lock_guard lock(mu_);
  last_node_id_ = id;
  last_node_metadata_json_ = metadata_json;
}

void Journal::clusterid(const std::string& id) {
  std::lock_guard lock(mu_);
  last_clusterid_ = id;
}

std::string Journal::status_json(bool ca_up) const {
  std::lock_guard lock(mu_);
  nlohmann::ordered_json out;
  out["streams_open"] = streams_open_;
  out["streams_opened"] = streams_opened_;
  out["acks"] = acks_;
  out["nacks"] = nlohmann::json::array();
  for (const Nack& n : nacks_)
    out["nacks"].push_back({{"type_url", n.type_url}, {"nonce", n.nonce}, {"detail", n.detail}});
  out["certificates_signed"] = certificates_signed_;
  out["last_node_id"] = last_node_id_;
  out["last_node_metadata"] = nlohmann::json::parse(last_node_metadata_json_, nullptr, false);
  out["last_clusterid"] = last_clusterid_;
  out["ca_up"] = ca_up;
  return out.dump() + "\n";
}

namespace {

std::string metadata(const grpc::ServerContextBase& ctx, const std::string& key) {
  auto it = ctx.client_metadata().find(key);
  if (it == ctx.client_metadata().end()) return {};
  return std::string(it->second.data(), it->second.size());
}

}  // namespace

grpc::Status admit_call(const grpc::ServerContextBase& ctx, const std::string& token, Journal& journal) {
  journal.clusterid(metadata(ctx, "clusterid"));
  if (token.empty()) return grpc::Status::OK;
  if (metadata(ctx, "authorization") != "Bearer " + token)
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "fake-istiod: missing or wrong bearer token");
  return grpc::Status::OK;
}

}  // namespace zt::e2e::fake_istiod
