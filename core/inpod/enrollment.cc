#include "core/inpod/enrollment.h"

#include <type_traits>

namespace zt::core::inpod {

void Enrollment::connected() {
  in_snapshot_ = true;
  named_.clear();
}

const PodInfo* Enrollment::info(const std::string& uid) const {
  auto it = pods_.find(uid);
  return it == pods_.end() ? nullptr : &it->second.info;
}

std::vector<std::string> Enrollment::uids() const {
  std::vector<std::string> out;
  for (const auto& [uid, info] : pods_) out.push_back(uid);
  return out;
}

Result<EnrollmentChange> Enrollment::apply(const ZdsRequest& request) {
  EnrollmentChange change;
  if (const auto* add = std::get_if<AddPod>(&request)) {
    // An add for a pod we have: the agent re-sends it after a reconnect
    // (the same namespace: its listeners stay as they are), or the pod's
    // sandbox was recreated (another namespace: reopen them there).
    named_.insert(add->uid);
    auto it = pods_.find(add->uid);
    if (it == pods_.end()) {
      pods_.emplace(add->uid, Pod{add->info, add->netns_id});
      change.added.push_back(add->uid);
    } else if (it->second.netns_id != add->netns_id) {
      it->second = Pod{add->info, add->netns_id};
      change.replaced.push_back(add->uid);
    } else {
      it->second.info = add->info;
    }
    return change;
  }
  if (const auto* keep = std::get_if<KeepPod>(&request)) {
    // Keep: "this pod still runs, you have its namespace already".
    if (!pods_.contains(keep->uid)) {
      return Error(Errc::invalid_argument, "ZDS: keep for pod " + keep->uid + ", which is not enrolled");
    }
    named_.insert(keep->uid);
    return change;
  }
  if (const auto* del = std::get_if<DelPod>(&request)) {
    // Deleting what is not there is done already: not an error (the agent
    // may retry after a lost ack).
    if (pods_.erase(del->uid) > 0) change.removed.push_back(del->uid);
    named_.erase(del->uid);
    return change;
  }
  // SnapshotSent: what the snapshot did not name is gone.
  if (!in_snapshot_) return change;  // a second one changes nothing
  for (auto it = pods_.begin(); it != pods_.end();) {
    if (named_.contains(it->first)) {
      ++it;
      continue;
    }
    change.removed.push_back(it->first);
    it = pods_.erase(it);
  }
  in_snapshot_ = false;
  named_.clear();
  return change;
}

}  // namespace zt::core::inpod
