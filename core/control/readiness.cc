#include "core/control/readiness.h"

#include <algorithm>

#include "io/assert.h"

namespace zt::core::control {

ReadyBlock& ReadyBlock::operator=(ReadyBlock&& o) noexcept {
  if (this != &o) {
    release();
    owner_ = o.owner_;
    id_ = o.id_;
    o.owner_ = nullptr;
  }
  return *this;
}

void ReadyBlock::release() {
  if (!owner_) return;
  Readiness* owner = owner_;
  owner_ = nullptr;
  owner->release(id_);
}

ReadyBlock Readiness::block(std::string name) {
  const uint64_t id = next_id_++;
  blocks_.emplace(id, std::move(name));
  return ReadyBlock(this, id);
}

void Readiness::release(uint64_t id) {
  auto it = blocks_.find(id);
  ZT_ASSERT(it != blocks_.end());  // released twice: ReadyBlock forgets its owner on release
  const std::string name = std::move(it->second);
  blocks_.erase(it);
  if (on_release_) on_release_(name, blocks_.size());
}

std::vector<std::string> Readiness::pending() const {
  std::vector<std::string> out;
  for (const auto& [id, name] : blocks_) {
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  return out;
}

}  // namespace zt::core::control
