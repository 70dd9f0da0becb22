// SOCK_SEQPACKET Unix sockets for io/real (ZDS: the CNI node agent's
// socket), with descriptors received as network namespaces (SCM_RIGHTS).
// Internal to io/real; AsioNetwork::connect_packets hands them out.
#pragma once

#include <memory>
#include <string>

#include <asio/io_context.hpp>

#include "io/network.h"

namespace zt::io::real {

std::unique_ptr<Connecting> connect_unix_packets(asio::io_context& ctx, const std::string& path,
                                                 Network::PacketConnectCallback done);

}  // namespace zt::io::real
