// One test body, two runtimes: a Harness gives a test three Envs (client,
// proxy, server), their addresses, and a way to run a coroutine to the end,
// over io/sim (virtual time, simulated hosts) or io/real (loopback sockets).
// Conformance suites are written once against it and instantiated for both.
//
//   TYPED_TEST(RelayConformance, Echo) {
//     auto& h = this->h;
//     ASSERT_TRUE(h.run(body(h.client(), ...), 30s));
//   }
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "io/async.h"
#include "io/env.h"

namespace zt::testing {

class Harness {
 public:
  virtual ~Harness() = default;
  virtual Env& client() = 0;
  virtual Env& proxy() = 0;
  virtual Env& server() = 0;
  virtual IpAddr client_ip() const = 0;
  virtual IpAddr proxy_ip() const = 0;
  virtual IpAddr server_ip() const = 0;
  // Runs task until it finishes or `limit` passes (virtual or wall time).
  virtual bool run(Task<void> task, Duration limit) = 0;
  // Runs the loop until done() holds or `limit` passes; returns done().
  virtual bool run_until(const std::function<bool()>& done, Duration limit) = 0;
  // How many bytes the transport between two endpoints may hold (kernel
  // socket buffers, or the simulator's window), for backpressure bounds.
  virtual size_t transport_buffer_bytes_max() const = 0;
  // Lets `d` pass with the loop running.
  virtual void idle(Duration d) = 0;
  // An endpoint whose SYNs are never answered, so connects hang.
  virtual Endpoint unresponsive_endpoint() = 0;
  // What is still open that should not be (empty when clean); only io/sim
  // can see every connection, the real runtime answers "".
  virtual std::string leftovers() = 0;
  virtual const char* name() const = 0;
};

// Spawns task and lets drive(done) run a loop until done() holds or its own
// limit passes; returns whether the task finished. Unfinished, it is
// destroyed at its suspension point.
template <class Drive>
bool run_task(Task<void> task, Drive&& drive) {
  bool finished = false;
  Scope scope;
  scope.spawn([](Task<void> t, bool& finished) -> Task<void> {
    co_await t;
    finished = true;
  }(std::move(task), finished));
  return drive([&finished] { return finished; });
}

inline std::vector<uint8_t> pattern(size_t n, uint8_t salt = 0) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t(i * 131 + salt + (i >> 8));
  return v;
}

struct ReadAll {
  std::vector<uint8_t> bytes;
  Result<size_t> end = size_t{0};  // 0 for EOF, or the error that ended it
};

// Reads until EOF or an error.
inline Task<ReadAll> read_all(Stream& s, size_t chunk = 16384) {
  ReadAll out;
  std::vector<uint8_t> buf(chunk);
  for (;;) {
    Result<size_t> n = co_await io::read(s, buf);
    if (!n || *n == 0) {
      out.end = std::move(n);
      co_return out;
    }
    out.bytes.insert(out.bytes.end(), buf.begin(), buf.begin() + std::ptrdiff_t(*n));
  }
}

inline bool is_error(const Result<size_t>& r, Errc code) { return !r.ok() && r.code() == code; }

// Sends back what it reads until EOF, then FIN.
inline Task<void> echo(StreamPtr s, size_t chunk = 65536) {
  std::vector<uint8_t> buf(chunk);
  for (;;) {
    auto n = co_await io::read(*s, buf);
    if (!n || *n == 0) break;
    if (!co_await io::write_all(*s, ConstBytes(buf).first(*n))) co_return;
  }
  (void)s->shutdown_write();
}

// Echoes every connection `l` accepts, each a task in `scope`.
inline Task<void> echo_server(Listener& l, Scope& scope) {
  for (;;) {
    auto s = co_await io::accept(l);
    if (!s) co_return;
    scope.spawn(echo(std::move(*s)));
  }
}

}  // namespace zt::testing
