#include "xds/ca_client.h"

#include "xds/proto/citadel.pb.h"

namespace zt::xds {

CaClient::CaClient(Env& env, grpc::Channel& channel, CaClientConfig config)
    : env_(env), channel_(channel), cfg_(std::move(config)), roots_(cfg_.roots) {}

Task<Result<tls::Credentials>> CaClient::fetch(const tls::Identity& identity) {
  ++fetches_;
  auto key = tls::KeyPair::generate();
  if (!key) co_return key.error();
  auto csr = tls::make_csr(*key, identity);
  if (!csr) co_return csr.error();
  istio::v1::auth::IstioCertificateRequest req;
  req.set_csr(*csr);
  req.set_validity_duration(std::chrono::duration_cast<std::chrono::seconds>(cfg_.ttl).count());
  if (cfg_.impersonate) {
    (*req.mutable_metadata()->mutable_fields())["ImpersonatedIdentity"].set_string_value(identity.to_string());
  }
  Result<h2::Headers> metadata = cfg_.metadata ? cfg_.metadata() : Result<h2::Headers>(h2::Headers{});
  if (!metadata) co_return Error(metadata.code(), "CA call metadata: " + metadata.error().message());
  Result<h2::Connection*> conn = co_await channel_.connection();
  if (!conn) co_return Error(conn.code(), "CA: " + conn.error().message());
  grpc::CallOptions options;
  options.authority = cfg_.authority;
  options.scheme = channel_.scheme();
  options.metadata = std::move(*metadata);
  options.deadline = cfg_.call_timeout;
  grpc::UnaryResult r =
      co_await grpc::unary(env_, **conn, std::string(kCreateCertificatePath), req.SerializeAsString(), std::move(options));
  if (!r.status.ok()) co_return Error(Errc::io_error, "CA: " + r.status.to_string());
  istio::v1::auth::IstioCertificateResponse resp;
  if (!resp.ParseFromString(r.response)) co_return Error(Errc::invalid_argument, "CA: a response that does not parse");
  std::string pem;
  for (const std::string& part : resp.cert_chain()) {
    pem += part;
    if (!pem.empty() && pem.back() != '\n') pem += '\n';
  }
  auto chain = tls::parse_pem_chain(pem);
  if (!chain) co_return Error(Errc::invalid_argument, "CA: the chain does not parse: " + chain.error().detail);
  auto who = tls::verify_chain(*chain, roots_, env_.clock.wall_now());
  if (!who) co_return Error(Errc::invalid_argument, "CA: " + who.error().detail);
  if (*who != identity) {
    co_return Error(Errc::invalid_argument,
                    "CA: a certificate for " + who->to_string() + " where " + identity.to_string() + " was asked");
  }
  co_return tls::Credentials{std::move(*chain), std::move(*key)};
}

}  // namespace zt::xds
