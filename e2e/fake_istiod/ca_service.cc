#include "e2e/fake_istiod/ca_service.h"

#include <algorithm>
#include <optional>

namespace zt::e2e::fake_istiod {

namespace auth = istio::v1::auth;

CaService::CaService(FakeCa& ca, Journal& journal, std::string token, std::chrono::seconds lifetime_max)
    : ca_(ca), journal_(journal), token_(std::move(token)), lifetime_max_(lifetime_max) {}

grpc::ServerUnaryReactor* CaService::CreateCertificate(grpc::CallbackServerContext* ctx,
                                                       const auth::IstioCertificateRequest* request,
                                                       auth::IstioCertificateResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(sign(*ctx, *request, *response));
  return reactor;
}

grpc::Status CaService::sign(const grpc::CallbackServerContext& ctx, const auth::IstioCertificateRequest& request,
                             auth::IstioCertificateResponse& response) {
  grpc::Status gate = admit_call(ctx, token_, journal_);
  if (!gate.ok()) {
    log_line("ca: refused: ", gate.error_message());
    return gate;
  }
  if (!up_) {
    log_line("ca: stopped, answering UNAVAILABLE");
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake-istiod: the CA is stopped");
  }
  std::optional<std::string> impersonated;
  const auto& fields = request.metadata().fields();
  if (auto it = fields.find("ImpersonatedIdentity"); it != fields.end()) impersonated = it->second.string_value();
  // Zero or less asks for nothing in particular: the cap is the answer.
  std::chrono::seconds lifetime = lifetime_max_;
  if (request.validity_duration() > 0) lifetime = std::min(lifetime, std::chrono::seconds(request.validity_duration()));

  auto outcome = ca_.sign_csr(request.csr(), impersonated, lifetime);
  if (const auto* error = std::get_if<CaError>(&outcome)) {
    log_line("ca: refused a CSR: ", error->detail);
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "fake-istiod: " + error->detail);
  }
  const auto& signed_cert = std::get<FakeCa::Signed>(outcome);
  for (const std::string& pem : signed_cert.chain) response.add_cert_chain(pem);
  journal_.certificate_signed();
  log_line("ca: signed ", signed_cert.identity, " for ", lifetime.count(), " s", impersonated ? " (impersonated)" : "");
  return grpc::Status::OK;
}

}  // namespace zt::e2e::fake_istiod
