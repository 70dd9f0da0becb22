// istio.v1.auth.IstioCertificateService/CreateCertificate as istiod serves
// it: signs the PEM CSR for the metadata's ImpersonatedIdentity when given
// (a node proxy asking for one of its workloads), else for the CSR's URI
// SAN; the lifetime asked for, capped; cert_chain = [leaf, root]. While the
// CA is stopped (POST /ca/stop) every call fails UNAVAILABLE.
//
//   CaService ca_service(ca, journal, token, std::chrono::hours(24));
//   builder.RegisterService(&ca_service);
//   ca_service.set_up(false);   // UNAVAILABLE from now on
#pragma once

#include <atomic>
#include <chrono>
#include <string>

#include "e2e/fake_istiod/ca.h"
#include "e2e/fake_istiod/journal.h"
#include "xds/proto/citadel.grpc.pb.h"

namespace zt::e2e::fake_istiod {

class CaService final : public istio::v1::auth::IstioCertificateService::CallbackService {
 public:
  CaService(FakeCa& ca, Journal& journal, std::string token, std::chrono::seconds lifetime_max);

  grpc::ServerUnaryReactor* CreateCertificate(grpc::CallbackServerContext* ctx,
                                              const istio::v1::auth::IstioCertificateRequest* request,
                                              istio::v1::auth::IstioCertificateResponse* response) override;

  void set_up(bool up) { up_ = up; }
  bool up() const { return up_; }

 private:
  grpc::Status sign(const grpc::CallbackServerContext& ctx, const istio::v1::auth::IstioCertificateRequest& request,
                    istio::v1::auth::IstioCertificateResponse& response);

  FakeCa& ca_;
  Journal& journal_;
  const std::string token_;
  const std::chrono::seconds lifetime_max_;
  std::atomic<bool> up_{true};
};

}  // namespace zt::e2e::fake_istiod
