#include "xds/grpc/call.h"

#include <array>
#include <charconv>

#include "io/assert.h"
#include "io/async.h"
#include "io/event.h"

namespace zt::xds::grpc {
namespace {

constexpr size_t kReadBytes = 64 * 1024;

// grpc-status (and grpc-message) from a header block, when present.
std::optional<Status> status_in(const h2::Headers& headers) {
  auto code = h2::find_header(headers, "grpc-status");
  if (!code) return std::nullopt;
  int n = -1;
  const std::string text(*code);
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return Status{Code::internal, "malformed grpc-status '" + text + "'"};
  }
  if (n < 0 || n > 16) return Status{Code::unknown, "grpc-status " + text};
  auto message = h2::find_header(headers, "grpc-message");
  return Status{Code(n), message ? decode_message(*message) : std::string()};
}

}  // namespace

// Shared with the h2 callbacks, which may run after the call object is gone.
struct ClientCall::State {
  explicit State(Loop& loop) : answered(loop) {}
  StreamPtr stream;                 // the early tunnel: writable at once
  Event answered;                   // the response (or the stream's failure) is in
  std::optional<Result<h2::Opened>> answer;
  MessageReader reader;
  std::vector<uint8_t> rx;          // one read's bytes: allocated once per call, not per message
  std::optional<Status> status;     // set once the call is over
  TimerId deadline = kNoTimer;
  bool receiving = false, sending = false;
};

ClientCall::ClientCall(Env& env, h2::Connection& conn, std::string path, CallOptions options)
    : env_(env), st_(std::make_shared<State>(env.loop)) {
  st_->reader = MessageReader(options.message_bytes_max);
  h2::Request req;
  req.method = "POST";
  req.scheme = options.scheme;
  req.path = std::move(path);
  req.authority = options.authority;
  req.headers = {{"content-type", "application/grpc"}, {"te", "trailers"}};
  if (options.deadline) req.headers.emplace_back("grpc-timeout", encode_timeout(*options.deadline));
  for (auto& h : options.metadata) req.headers.push_back(std::move(h));
  std::weak_ptr<State> weak = st_;
  conn.open(
      std::move(req),
      [weak](Result<h2::Opened> r) {
        auto st = weak.lock();
        if (!st) return;
        st->answer = std::move(r);
        st->answered.set();
      },
      [weak](StreamPtr s) {
        if (auto st = weak.lock()) st->stream = std::move(s);
      });
  if (options.deadline) {
    st_->deadline = env_.loop.run_after(*options.deadline, [this] {
      st_->deadline = kNoTimer;
      cancel({Code::deadline_exceeded, "deadline of the call passed"});
    });
  }
}

ClientCall::~ClientCall() {
  if (st_->deadline != kNoTimer) env_.loop.cancel(st_->deadline);
  if (!st_->status) cancel();
}

bool ClientCall::finished() const { return st_->status.has_value(); }

const Status& ClientCall::status() const {
  static const Status kRunning{Code::unknown, "the call is still running"};
  return st_->status ? *st_->status : kRunning;
}

void ClientCall::finish(Status status) {
  if (st_->status) return;
  st_->status = std::move(status);
  if (st_->deadline != kNoTimer) env_.loop.cancel(st_->deadline);
  st_->deadline = kNoTimer;
}

void ClientCall::cancel(Status why) {
  if (st_->status) return;
  finish(std::move(why));
  if (st_->stream) st_->stream->abort();  // RST_STREAM; a read or write in flight completes cancelled
  st_->answered.set();
}

Task<bool> ClientCall::send(std::string message) {
  ZT_ASSERT(!st_->sending);
  if (st_->status || !st_->stream) co_return false;
  st_->sending = true;
  const std::string frame = frame_message(message);
  std::shared_ptr<State> st = st_;  // the call may go while the write waits
  Result<void> w = co_await io::write_all(*st->stream, ConstBytes(reinterpret_cast<const uint8_t*>(frame.data()),
                                                                   frame.size()));
  st->sending = false;
  co_return w.ok() && !st->status;
}

void ClientCall::close_send() {
  if (!st_->status && st_->stream) (void)st_->stream->shutdown_write();
}

Task<void> ClientCall::await_answer() { co_await st_->answered.wait(); }

// How the call ended, once its stream read EOF or failed.
Status ClientCall::status_at_end() {
  if (!st_->answer) return {Code::unavailable, "the stream ended before the server answered"};
  if (!*st_->answer) return {Code::unavailable, st_->answer->error().message()};
  const h2::Opened& opened = **st_->answer;
  if (opened.response.status != 200) {
    // A trailers-only answer may carry its own status; else HTTP's.
    if (auto s = status_in(opened.response.headers)) return *s;
    return status_from_http(opened.response.status);
  }
  if (opened.trailers) {
    if (auto s = status_in(*opened.trailers)) return *s;
  }
  if (auto s = status_in(opened.response.headers)) return *s;  // trailers-only
  return {Code::unknown, "the server ended the call without a grpc-status"};
}

Task<std::optional<std::string>> ClientCall::receive() {
  ZT_ASSERT(!st_->receiving);
  std::shared_ptr<State> st = st_;
  if (auto m = st->reader.next()) co_return m;
  if (st->status) co_return std::nullopt;
  if (!st->stream) {
    // open() refused at once: the answer carries why.
    co_await await_answer();
    finish(status_at_end());
    co_return std::nullopt;
  }
  st->receiving = true;
  if (st->rx.empty()) st->rx.resize(kReadBytes);
  MutableBytes buf(st->rx);
  for (;;) {
    if (auto m = st->reader.next()) {
      st->receiving = false;
      co_return m;
    }
    Result<size_t> n = co_await io::read(*st->stream, buf);
    if (st->status) break;  // cancelled or past its deadline meanwhile
    if (n && *n > 0) {
      if (Result<void> fed = st->reader.feed(ConstBytes(buf.data(), *n)); !fed) {
        st->receiving = false;
        cancel({Code::resource_exhausted, fed.error().detail});
        co_return std::nullopt;
      }
      continue;
    }
    // EOF or a failed stream: the answer tells the rest.
    co_await await_answer();
    if (!n && st->answer && *st->answer && (*st->answer)->response.status == 200) {
      finish({Code::unavailable, "the stream failed: " + n.error().message()});
    } else if (n && st->reader.partial()) {
      finish({Code::internal, "the stream ended inside a message"});
    } else {
      finish(status_at_end());
    }
    break;
  }
  st->receiving = false;
  if (auto m = st->reader.next()) co_return m;  // whole messages before the end still count
  co_return std::nullopt;
}

Task<UnaryResult> unary(Env& env, h2::Connection& conn, std::string path, std::string request, CallOptions options) {
  ClientCall call(env, conn, std::move(path), std::move(options));
  UnaryResult out;
  if (co_await call.send(std::move(request))) call.close_send();
  std::optional<std::string> response = co_await call.receive();
  if (response) {
    std::optional<std::string> extra = co_await call.receive();
    if (extra) {
      call.cancel({Code::internal, "a unary call answered with more than one message"});
    } else if (call.status().ok()) {
      out.response = std::move(*response);
    }
  } else if (call.status().ok()) {
    out.status = {Code::internal, "a unary call ended OK without a response"};
    co_return out;
  }
  out.status = call.status();
  co_return out;
}

}  // namespace zt::xds::grpc
