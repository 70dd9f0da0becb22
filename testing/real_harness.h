// Harness over io/real: one Asio runtime on loopback (127.0.0.1 or ::1);
// client, proxy and server share it and its address.
#pragma once

#include <vector>

#include "io/real/runtime.h"
#include "testing/harness.h"

namespace zt::testing {

template <IpAddr::Family F>
class RealHarness : public Harness {
 public:
  RealHarness() : rt_(uint64_t{1}) {}
  ~RealHarness() override {
    pending_.clear();
    backlog_.reset();
  }

  Env& client() override { return rt_.env(); }
  Env& proxy() override { return rt_.env(); }
  Env& server() override { return rt_.env(); }
  IpAddr client_ip() const override { return IpAddr::loopback(F); }
  IpAddr proxy_ip() const override { return IpAddr::loopback(F); }
  IpAddr server_ip() const override { return IpAddr::loopback(F); }

  bool run(Task<void> task, Duration limit) override {
    return run_task(std::move(task), [&](const std::function<bool()>& done) { return rt_.run_until(done, limit); });
  }
  bool run_until(const std::function<bool()>& done, Duration limit) override { return rt_.run_until(done, limit); }
  // Loopback autotuning lets each socket buffer grow to a few MiB.
  size_t transport_buffer_bytes_max() const override { return size_t(24) << 20; }
  void idle(Duration d) override {
    rt_.run_until([] { return false; }, d);
  }

  // Loopback answers every SYN, so make a listener that never accepts and
  // fill its accept queue: Linux then drops further SYNs and connects hang.
  Endpoint unresponsive_endpoint() override {
    if (!backlog_) {
      ListenOptions opts;
      opts.backlog = 1;
      auto l = rt_.env().net.listen(Endpoint{IpAddr::loopback(F), 0}, opts);
      ZT_ASSERT(l.ok());
      backlog_ = std::move(*l);
      for (int i = 0; i < 4; ++i) {
        pending_.push_back(rt_.env().net.connect(backlog_->local(), {}, [this](Result<StreamPtr> s) {
          if (s) filled_.push_back(std::move(*s));
        }));
      }
      idle(std::chrono::milliseconds(200));
    }
    return backlog_->local();
  }
  std::string leftovers() override { return ""; }
  const char* name() const override { return F == IpAddr::Family::v4 ? "real-v4" : "real-v6"; }

 private:
  io::real::Runtime rt_;
  std::unique_ptr<Listener> backlog_;
  std::vector<std::unique_ptr<Connecting>> pending_;
  std::vector<StreamPtr> filled_;
};

}  // namespace zt::testing
