#include "core/proxy/socks5.h"

#include <span>
#include <utility>

#include "io/async.h"

namespace zt::core::proxy {
namespace {

constexpr uint8_t kVersion = 5;
constexpr uint8_t kNoAuth = 0x00, kNoAcceptableMethod = 0xff;
constexpr uint8_t kConnect = 1;
constexpr uint8_t kIpv4 = 1, kDomain = 3, kIpv6 = 4;

// Reads exactly buf.size() bytes; false on EOF or error.
Task<bool> read_exact(Stream& s, MutableBytes buf) {
  while (!buf.empty()) {
    Result<size_t> n = co_await io::read(s, buf);
    if (!n || *n == 0) co_return false;
    buf = buf.subspan(*n);
  }
  co_return true;
}

// Reads at least `min` and at most buf.size() bytes; how many, or nothing on
// EOF or error before `min`.
Task<std::optional<size_t>> read_at_least(Stream& s, MutableBytes buf, size_t min) {
  size_t got = 0;
  while (got < min) {
    Result<size_t> n = co_await io::read(s, buf.subspan(got));
    if (!n || *n == 0) co_return std::nullopt;
    got += *n;
  }
  co_return got;
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
  uint8_t head[2];
  if (!co_await read_exact(s, head)) co_return fail(std::nullopt, "connection ended in the greeting");
  if (head[0] != kVersion) co_return fail(std::nullopt, "not SOCKS version 5");
  // The methods, and the request's first 4 bytes if they are here already
  // (a read returns what has arrived: a client waiting for our choice sends
  // no more than the methods).
  const size_t n_methods = head[1];
  std::vector<uint8_t> buf(n_methods + 4);
  auto got = co_await read_at_least(s, buf, n_methods);
  if (!got) co_return fail(std::nullopt, "connection ended in the methods");
  const auto methods = std::span(buf).first(n_methods);
  const bool no_auth = std::find(methods.begin(), methods.end(), kNoAuth) != methods.end();
  owed = {kVersion, no_auth ? kNoAuth : kNoAcceptableMethod};
  if (!no_auth || *got < buf.size()) {
    // The client may be waiting for the choice before it says more.
    const std::vector<uint8_t> choice = std::exchange(owed, {});
    if (!co_await io::write_all(s, choice)) co_return fail(std::nullopt, "could not answer the greeting");
  }
  if (!no_auth) co_return fail(std::nullopt, "the client offers no no-auth method");

  // The whole request is read before any verdict, so the reply is not lost
  // to a reset caused by unread bytes.
  const auto req = std::span(buf).subspan(n_methods);
  if (*got < buf.size() && !co_await read_exact(s, req.subspan(*got - n_methods)))
    co_return fail(std::nullopt, "connection ended in the request");
  if (req[0] != kVersion) co_return fail(Socks5Reply::general_failure, "bad request version");
  Socks5Request out;
  std::string name;
  if (req[3] == kIpv4 || req[3] == kIpv6) {
    std::vector<uint8_t> addr(req[3] == kIpv4 ? 4 : 16);
    if (!co_await read_exact(s, addr)) co_return fail(std::nullopt, "connection ended in the address");
    out.destination.ip = req[3] == kIpv4 ? IpAddr::v4_from_bytes(addr.data()) : IpAddr::v6_from_bytes(addr.data());
  } else if (req[3] == kDomain) {
    uint8_t len = 0;
    if (!co_await read_exact(s, MutableBytes(&len, 1)) || len == 0) co_return fail(std::nullopt, "bad hostname length");
    name.assign(len, '\0');
    if (!co_await read_exact(s, MutableBytes(reinterpret_cast<uint8_t*>(name.data()), len)))
      co_return fail(std::nullopt, "connection ended in the hostname");
  } else {
    co_return fail(Socks5Reply::address_type_not_supported, "unknown address type");
  }
  uint8_t port[2];
  if (!co_await read_exact(s, port)) co_return fail(std::nullopt, "connection ended in the port");
  out.destination.port = uint16_t(port[0] << 8 | port[1]);
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
    : env_(env), listener_(std::move(listener)), state_(std::move(state)), outbound_(outbound) {}

Socks5Server::~Socks5Server() { scope_.clear(); }

void Socks5Server::start() { scope_.spawn(accept_loop()); }

Task<void> Socks5Server::accept_loop() {
  return io::accept_each(env_, *listener_, [this](StreamPtr s) {
    ++counters_.accepted;
    scope_.spawn(serve(std::move(s)));
  });
}

Task<void> Socks5Server::serve(StreamPtr client) {
  auto snap = state_();
  Socks5Failure failure;
  std::vector<uint8_t> answer;  // the method choice, when still owed: one write with the reply
  Result<Socks5Request> req = co_await read_socks5_request(
      *client, [&](std::string_view name) { return snap ? resolve_in_mesh(*snap, name) : std::nullopt; }, failure,
      answer);
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
    struct Deadline {
      Loop& loop;
      TimerId id;
      ~Deadline() { loop.cancel(id); }
    } deadline{env_.loop, env_.loop.run_after(std::chrono::seconds(1), [c = client.get()] { c->abort(); })};
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
  scope_.spawn(outbound_.forward(std::move(client), req->destination));
}

}  // namespace zt::core::proxy
