// How `zt-cni add-pod` and `del-pod` tell a running agent: one request and
// one reply, as SOCK_SEQPACKET messages on the agent's control socket in the
// state directory (DIR/control.sock). The pod file is the truth, the request
// only a nudge, so the order makes it race-free: add-pod writes the pod file,
// then asks; del-pod removes the file, then asks. Whatever snapshot a
// (re)connecting ztunnel gets in between is already right, and the agent
// sends an add or del only to a connection that does not have it yet / has
// it.
//
//   Requests: "add NAME", "del UID NAME". Replies: "ok TEXT", "error TEXT".
//
//   auto reply = ask_agent(state_dir, ControlRequest{ControlRequest::add, "sleep", ""});
//   if (reply && !reply->agent_running) ...   // the pod goes in its first snapshot
#pragma once

#include <string>
#include <string_view>

#include "io/result.h"

namespace zt::cni {

struct ControlRequest {
  enum Kind { add, del } kind = add;
  std::string name;
  std::string uid;  // del only: the file that held it is gone
};
std::string format_control(const ControlRequest& request);
Result<ControlRequest> parse_control(std::string_view text);

struct ControlReply {
  bool agent_running = true;  // false: nothing listens on the control socket
  bool ok = true;             // the agent's verdict
  std::string text;
};
std::string format_reply(const ControlReply& reply);
Result<ControlReply> parse_reply(std::string_view text);

// How long add-pod and del-pod wait for the agent's answer: it may be waiting
// for ztunnel's ack (AgentConfig::ack_timeout_ms) behind a snapshot.
inline constexpr int kControlReplyTimeoutMs = 30000;

Result<ControlReply> ask_agent(const std::string& state_dir, const ControlRequest& request,
                               int timeout_ms = kControlReplyTimeoutMs);

}  // namespace zt::cni
