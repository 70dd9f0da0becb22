#include "core/proxy/socks5.h"

#include <optional>

#include <algorithm>
#include <array>
#include <span>
#include <utility>

#include "io/async.h"

namespace zt::core::proxy {
namespace {

constexpr uint8_t kVersion = 5;
constexpr uint8_t kNoAuth = 0x00, kNoAcceptableMethod = 0xff;
constexpr uint8_t kConnect = 1;
constexpr uint8_t kIpv4 = 1, kDomain = 3, kIpv6 = 4;

// The greeting and the CONNECT request together are at most this long:
// 255 methods, a 255-byte hostname.
constexpr size_t kHandshakeMax = 2 + 255 + 4 + 1 + 255 + 2;
// The shortest request: a one-letter hostname (a shorter one is refused).
constexpr size_t kShortestRequest = 4 + 1 + 1 + 2;

// How long the greeting plus the CONNECT request is, given their first
// bytes: exact once the address type (and a hostname's length) is in,
// before that the least it can be. Reads ask for no more than that, so they
// never take bytes the client sends after its request (a client may send
// data right behind it, before our reply), yet a client that sends its
// greeting and request together (most do) is read in two reads, not five.
size_t handshake_bytes(std::span<const uint8_t> got) {
  if (got.size() < 2) return 2 + 1 + kShortestRequest;
  const size_t greeting = 2 + size_t(got[1]);
  if (got.size() < greeting + 4) return greeting + kShortestRequest;
  switch (got[greeting + 3]) {
    case kIpv4: return greeting + 4 + 4 + 2;
    case kIpv6: return greeting + 4 + 16 + 2;
    case kDomain:
      if (got.size() < greeting + 5) return greeting + kShortestRequest;
      return greeting + 4 + 1 + size_t(got[greeting + 4]) + 2;
    default: return got.size();  // refused as it is: nothing more to read
  }
}

}  // namespace

std::vector<uint8_t> socks5_reply(Socks5Reply code) {
  // BND.ADDR 0.0.0.0:0: clients of a transparent proxy do not use it.
  return {kVersion, uint8_t(code), 0, kIpv4, 0, 0, 0, 0, 0, 0};
}

std::optional<IpAddr> resolve_in_mesh(const mesh::StateSnapshot& state, std::string_view hostname) {
  for (const auto& [key, svc] : state.services().by_host)
    if (key.hostname == hostname && !svc->vips.empty()) return svc->vips.front().ip;
  for (const auto& [uid, wl] : state.workloads().by_uid)
    if (wl->hostname == hostname && !wl->ips.empty()) return wl->ips.front();
  return std::nullopt;
}

Task<Result<Socks5Request>> read_socks5_request(Stream& s,
                                                const std::function<std::optional<IpAddr>(std::string_view)>& resolve,
                                                Socks5Failure& failure, std::vector<uint8_t>& owed) {
  auto fail = [&](std::optional<Socks5Reply> reply, std::string why) {
    failure = {reply, why};
    return Error(Errc::invalid_argument, "SOCKS5: " + why);
  };
  // Reads what handshake_bytes() says is still ours, checking each part as
  // soon as it is in: a client that waits gets its method choice (or its
  // refusal) before we wait for more.
  std::array<uint8_t, kHandshakeMax> buf;
  size_t got = 0;
  bool greeted = false;
  size_t greeting = 0;
  for (;;) {
    const size_t want = std::min(handshake_bytes(std::span(buf).first(got)), buf.size());
    if (got == want) break;
    Result<size_t> n = co_await io::read(s, std::span(buf).subspan(got, want - got));
    if (!n || *n == 0) {
      const char* where = got < 2                          ? "greeting"
                          : got < 2 + size_t(buf[1])      ? "methods"
                          : got < 2 + size_t(buf[1]) + 4  ? "request"
                          : buf[2 + buf[1] + 3] == kDomain ? "hostname"
                                                            : "address";
      co_return fail(std::nullopt, std::string("connection ended in the ") + where);
    }
    got += *n;
    if (buf[0] != kVersion) co_return fail(std::nullopt, "not SOCKS version 5");
    if (!greeted && got >= 2 && got >= 2 + size_t(buf[1])) {
      greeted = true;
      greeting = 2 + size_t(buf[1]);
      const auto methods = std::span(buf).subspan(2, greeting - 2);
      const bool no_auth = std::find(methods.begin(), methods.end(), kNoAuth) != methods.end();
      owed = {kVersion, no_auth ? kNoAuth : kNoAcceptableMethod};
      if (!no_auth || got < greeting + 4) {
        // The client may be waiting for the choice before it says more.
        const std::vector<uint8_t> choice = std::exchange(owed, {});
        if (!co_await io::write_all(s, choice)) co_return fail(std::nullopt, "could not answer the greeting");
      }
      if (!no_auth) co_return fail(std::nullopt, "the client offers no no-auth method");
    }
    if (greeted && got >= greeting + 4) {
      const auto req = std::span(buf).subspan(greeting);
      if (req[0] != kVersion) co_return fail(Socks5Reply::general_failure, "bad request version");
      if (req[3] != kIpv4 && req[3] != kIpv6 && req[3] != kDomain)
        co_return fail(Socks5Reply::address_type_not_supported, "unknown address type");
      if (req[3] == kDomain && got >= greeting + 5 && req[4] == 0) co_return fail(std::nullopt, "bad hostname length");
    }
  }
  // The whole request is read before any verdict, so the reply is not lost
  // to a reset caused by unread bytes.
  const auto req = std::span(buf).subspan(greeting, got - greeting);
  Socks5Request out;
  std::string name;
  size_t port_at = 4;
  if (req[3] == kIpv4) {
    out.destination.ip = IpAddr::v4_from_bytes(&req[4]);
    port_at += 4;
  } else if (req[3] == kIpv6) {
    out.destination.ip = IpAddr::v6_from_bytes(&req[4]);
    port_at += 16;
  } else {
    name.assign(reinterpret_cast<const char*>(&req[5]), req[4]);
    port_at += 1 + req[4];
  }
  out.destination.port = uint16_t(req[port_at] << 8 | req[port_at + 1]);
  if (req[1] != kConnect) co_return fail(Socks5Reply::command_not_supported, "only CONNECT is supported");
  if (!name.empty()) {
    auto ip = resolve(name);
    if (!ip) co_return fail(Socks5Reply::host_unreachable, "unknown host '" + name + "'");
    out.destination.ip = *ip;
    out.hostname = std::move(name);
  }
  co_return out;
}

Socks5Server::Socks5Server(Env& env, std::unique_ptr<Listener> listener, StateSource state, Outbound& outbound)
    : env_(env), state_(std::move(state)), outbound_(outbound),
      acceptor_(env, std::move(listener), [this](StreamPtr s) { return serve(std::move(s)); }) {}

Socks5Server::~Socks5Server() = default;

void Socks5Server::start() { acceptor_.start(); }

Task<void> Socks5Server::serve(StreamPtr client) {
  ++counters_.accepted;
  auto snap = state_();
  Socks5Failure failure;
  std::vector<uint8_t> answer;  // the method choice, when still owed: one write with the reply
  bool timed_out = false;
  std::optional<io::ScopedTimer> request_deadline(std::in_place, env_.loop, kSocks5RequestTimeout,
                                                  [c = client.get(), &timed_out] {
                                                    timed_out = true;
                                                    c->abort();
                                                  });
  Result<Socks5Request> req = co_await read_socks5_request(
      *client, [&](std::string_view name) { return snap ? resolve_in_mesh(*snap, name) : std::nullopt; }, failure,
      answer);
  request_deadline.reset();
  if (timed_out) {
    ++counters_.timed_out;
    ZT_LOG(env_.log, debug, "socks5", "no complete request in time: dropped", {"peer", client->peer()});
    co_return;
  }
  if (!req) {
    ++counters_.rejected;
    if (failure.reply) {
      const std::vector<uint8_t> reply = socks5_reply(*failure.reply);
      answer.insert(answer.end(), reply.begin(), reply.end());
    }
    if (!answer.empty()) (void)co_await io::write_all(*client, answer);
    // FIN, then take what the client still sends (for a second at most):
    // closing with unread bytes would reset and could destroy the reply.
    (void)client->shutdown_write();
    io::ScopedTimer deadline(env_.loop, std::chrono::seconds(1), [c = client.get()] { c->abort(); });
    uint8_t sink[512];
    for (int i = 0; i < 16; ++i) {
      Result<size_t> n = co_await io::read(*client, sink);
      if (!n || *n == 0) break;
    }
    client->close();
    co_return;
  }
  // Success is answered before the upstream exists, so the client may send
  // at once; a failure further on resets the connection, as for captured
  // traffic.
  const std::vector<uint8_t> reply = socks5_reply(Socks5Reply::succeeded);
  answer.insert(answer.end(), reply.begin(), reply.end());
  if (!co_await io::write_all(*client, answer)) co_return;
  ++counters_.forwarded;
  // A task of its own rather than awaited here: this frame (the handshake's
  // state and its reject path) is freed while the connection lives on.
  acceptor_.tasks().spawn(outbound_.forward(std::move(client), req->destination));
}

}  // namespace zt::core::proxy
