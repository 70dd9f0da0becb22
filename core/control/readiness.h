// Readiness as a set of named pending items: any component registers what
// the node must have before it takes traffic (listeners, the first xDS
// answer of each type, local workloads' certificates, the in-pod snapshot,
// DNS) and releases it when done. 15021 answers 200 once nothing is
// pending, else 500 naming what is.
//
//   Readiness ready;
//   ReadyBlock certs = ready.block("workload certificates");
//   ...
//   certs.release();                 // or let it go out of scope
//   ready.pending();                 // {} : ready
//
// Single-threaded: the control thread's. A block is released once; moving
// one moves the duty to release it.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace zt::core::control {

class Readiness;

class ReadyBlock {
 public:
  ReadyBlock() = default;
  ReadyBlock(ReadyBlock&& o) noexcept : owner_(o.owner_), id_(o.id_) { o.owner_ = nullptr; }
  ReadyBlock& operator=(ReadyBlock&& o) noexcept;
  ~ReadyBlock() { release(); }
  ReadyBlock(const ReadyBlock&) = delete;
  ReadyBlock& operator=(const ReadyBlock&) = delete;

  void release();
  bool held() const { return owner_ != nullptr; }

 private:
  friend class Readiness;
  ReadyBlock(Readiness* owner, uint64_t id) : owner_(owner), id_(id) {}
  Readiness* owner_ = nullptr;
  uint64_t id_ = 0;
};

class Readiness {
 public:
  // Blocks must not outlive the Readiness they came from (declare it
  // before whatever holds them).
  Readiness() = default;
  Readiness(const Readiness&) = delete;
  Readiness& operator=(const Readiness&) = delete;

  // Something the node waits for; names may repeat (each block counts).
  ReadyBlock block(std::string name);
  // What is still pending, in registration order, each name once.
  std::vector<std::string> pending() const;
  bool ready() const { return blocks_.empty(); }
  // Called on each release with the name released and what is left
  // (the app logs "task complete, marking server ready").
  void on_release(std::function<void(const std::string& name, size_t left)> fn) { on_release_ = std::move(fn); }

 private:
  friend class ReadyBlock;
  void release(uint64_t id);

  uint64_t next_id_ = 1;
  std::map<uint64_t, std::string> blocks_;  // id order = registration order
  std::function<void(const std::string&, size_t)> on_release_;
};

}  // namespace zt::core::control
