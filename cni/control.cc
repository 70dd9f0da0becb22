#include "cni/control.h"

#include "cni/pods.h"
#include "cni/seqpacket.h"

namespace zt::cni {
namespace {

Error invalid(std::string why) { return Error(Errc::invalid_argument, "control: " + std::move(why)); }

// Splits on single spaces; the fields (names, uids) never hold one.
std::vector<std::string> words(std::string_view text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t sp = text.find(' ', pos);
    if (sp == std::string_view::npos) sp = text.size();
    out.emplace_back(text.substr(pos, sp - pos));
    pos = sp + 1;
  }
  return out;
}

}  // namespace

std::string format_control(const ControlRequest& r) {
  return r.kind == ControlRequest::add ? "add " + r.name : "del " + r.uid + " " + r.name;
}

Result<ControlRequest> parse_control(std::string_view text) {
  const auto w = words(text);
  if (w.size() == 2 && w[0] == "add") {
    if (auto good = check_pod_name(w[1], "pod name"); !good) return invalid(good.error().detail);
    return ControlRequest{ControlRequest::add, w[1], ""};
  }
  if (w.size() == 3 && w[0] == "del") {
    if (auto good = check_pod_name(w[2], "pod name"); !good) return invalid(good.error().detail);
    if (w[1].empty()) return invalid("a del without a uid");
    return ControlRequest{ControlRequest::del, w[2], w[1]};
  }
  return invalid("not a request: '" + std::string(text.substr(0, 100)) + "'");
}

std::string format_reply(const ControlReply& r) { return (r.ok ? "ok " : "error ") + r.text; }

Result<ControlReply> parse_reply(std::string_view text) {
  if (text.starts_with("ok ")) return ControlReply{true, true, std::string(text.substr(3))};
  if (text.starts_with("error ")) return ControlReply{true, false, std::string(text.substr(6))};
  return invalid("not a reply: '" + std::string(text.substr(0, 100)) + "'");
}

Result<ControlReply> ask_agent(const std::string& state_dir, const ControlRequest& request, int timeout_ms) {
  auto conn = connect_seqpacket(control_socket_path(state_dir));
  if (!conn) {
    if (conn.code() == Errc::connection_refused) return ControlReply{false, true, "no agent is running"};
    return conn.error();
  }
  if (auto sent = send_message(conn->get(), format_control(request)); !sent) return sent.error();
  auto reply = recv_message(conn->get(), timeout_ms);
  if (!reply) return Error(reply.code(), "no reply from the agent: " + reply.error().detail);
  if (reply->eof) return Error(Errc::connection_reset, "the agent closed the control connection without a reply");
  return parse_reply(reply->bytes);
}

}  // namespace zt::cni
