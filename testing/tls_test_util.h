// Test helpers for TLS on either runtime: a CA with client and server
// credentials, contexts built from them, and a coroutine that connects a
// client TlsStream to a server TlsStream over a harness and shakes hands.
//
//   TlsWorld w(h.client().clock.wall_now());
//   auto client = w.context(TlsRole::client, w.client_creds);
//   TlsPair pair;
//   co_await connect_pair(h, *client, *server, pair);
#pragma once

#include <gtest/gtest.h>

#include "tls/ca.h"
#include "tls/stream.h"
#include "testing/harness.h"

namespace zt::testing {

using tls::Ca;
using tls::CaOptions;
using tls::Credentials;
using tls::Identity;
using tls::Issued;
using tls::TlsConfig;
using tls::TlsContext;
using tls::TlsRole;
using tls::TlsStream;

inline Identity test_identity(const char* sa, const char* td = "cluster.local") { return Identity(td, "default", sa); }

inline std::shared_ptr<const Credentials> credentials(Issued issued) {
  return std::make_shared<Credentials>(Credentials{std::move(issued.chain), std::move(issued.key)});
}

struct TlsWorld {
  explicit TlsWorld(WallTime now, uint64_t seed = 1) : now(now) {
    CaOptions opts;
    opts.pin_signature_sizes = true;
    auto c = Ca::create(opts, Rng(seed), now);
    ZT_ASSERT(c.ok());
    ca.emplace(std::move(*c));
    client_creds = credentials(*ca->issue(test_identity("client"), std::chrono::hours(24), now));
    server_creds = credentials(*ca->issue(test_identity("server"), std::chrono::hours(24), now));
  }

  TlsConfig config(TlsRole role, std::shared_ptr<const Credentials> creds) const {
    TlsConfig cfg;
    cfg.role = role;
    cfg.credentials = std::move(creds);
    cfg.roots = ca->trust_bundle();
    cfg.expected_identities = {test_identity("server")};
    cfg.pin_signature_sizes = true;
    return cfg;
  }
  std::shared_ptr<const TlsContext> context(const TlsConfig& cfg) const {
    auto ctx = TlsContext::create(cfg);
    ZT_ASSERT(ctx.ok());
    return *ctx;
  }
  std::shared_ptr<const TlsContext> client() const { return context(config(TlsRole::client, client_creds)); }
  std::shared_ptr<const TlsContext> server() const { return context(config(TlsRole::server, server_creds)); }

  WallTime now;
  std::optional<Ca> ca;
  std::shared_ptr<const Credentials> client_creds, server_creds;
};

struct TlsPair {
  std::unique_ptr<TlsStream> client, server;
  Result<void> client_hs = ok(), server_hs = ok();
};

// Connects over TCP through the harness, then runs both handshakes at once.
inline Task<void> connect_pair(testing::Harness& h, std::shared_ptr<const TlsContext> client_ctx,
                               std::shared_ptr<const TlsContext> server_ctx, TlsPair& out) {
  auto listener = h.server().net.listen(Endpoint{h.server_ip(), 0}, {});
  ZT_ASSERT(listener.ok());
  auto tcp = co_await io::connect(h.client(), (*listener)->local(), {}, std::chrono::seconds(5));
  EXPECT_TRUE(tcp);
  if (!tcp) co_return;
  auto accepted = co_await io::accept(**listener);
  EXPECT_TRUE(accepted);
  if (!accepted) co_return;
  out.client = std::make_unique<TlsStream>(h.client(), std::move(client_ctx), std::move(*tcp));
  out.server = std::make_unique<TlsStream>(h.server(), std::move(server_ctx), std::move(*accepted));
  co_await join([](TlsStream& s, Result<void>& r) -> Task<void> { r = co_await tls::handshake(s); }(*out.client, out.client_hs),
                [](TlsStream& s, Result<void>& r) -> Task<void> { r = co_await tls::handshake(s); }(*out.server, out.server_hs));
}

}  // namespace zt::testing
