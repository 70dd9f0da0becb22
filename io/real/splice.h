// Bulk relays between two io/real TCP streams without copying through our
// memory: splice(2) socket -> pipe -> socket, on readiness from Asio's
// async_wait. Pipes of 256 KiB (F_SETPIPE_SZ, where allowed) are lent from
// a pool per network (per worker) only while bytes are on their way, so an
// idle connection holds no pipe and the pool keeps at most 16 empty ones.
// The first transfer sets SIGPIPE to ignored (splice has no MSG_NOSIGNAL).
// Internal to io/real; core code sees io/network.h's StreamTransfer.
//
//   auto pool = make_pipe_pool();
//   std::unique_ptr<StreamTransfer> t = splice_transfer(src_state, dst_state, pool);
//   t->fill(max, done);  then  t->drain(done);
#pragma once

#include <memory>

#include "io/network.h"
#include "io/real/stream_state.h"

namespace zt::io::real {

struct PipePool;
std::shared_ptr<PipePool> make_pipe_pool();
TransferStats pipe_stats(const PipePool& pool);

// `src` and `dst` must be distinct, open and non-blocking.
std::unique_ptr<StreamTransfer> splice_transfer(StreamStatePtr src, StreamStatePtr dst, std::shared_ptr<PipePool> pool);

}  // namespace zt::io::real
