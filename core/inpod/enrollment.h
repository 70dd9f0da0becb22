// Which pods are enrolled (in-pod mode), as the CNI node agent's ZDS
// messages say, across agent restarts: the agent's snapshot after each
// (re)connect is the truth, but pods already running keep their listeners
// through the reconnect and are reconciled against it.
//
//   Enrollment pods;
//   pods.connected();                       // a new connection: its snapshot begins
//   pods.apply(AddPod{...}) / KeepPod / DelPod   // -> what changed, or a nack's error
//   pods.apply(SnapshotSent{})              // -> the pods the snapshot did not name, removed
//
// It decides, the caller acts: open a pod's listeners in its network
// namespace on `added` (close the old ones first on `replaced`), drain and
// close them on `removed`. Deterministic: no OS, ordered containers.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/inpod/zds.h"
#include "io/result.h"

namespace zt::core::inpod {

struct EnrollmentChange {
  std::vector<std::string> added;     // new pods: open their listeners
  std::vector<std::string> replaced;  // added again with another namespace (a recreated sandbox): reopen
  std::vector<std::string> removed;   // gone: drain and close
  bool operator==(const EnrollmentChange&) const = default;
};

class Enrollment {
 public:
  // A new connection to the agent: its snapshot begins. Pods enrolled
  // before stay until snapshot_sent says otherwise.
  void connected();
  // One decoded message. An error is the nack's text (nothing changed).
  Result<EnrollmentChange> apply(const ZdsRequest& request);

  bool enrolled(const std::string& uid) const { return pods_.contains(uid); }
  const PodInfo* info(const std::string& uid) const;
  size_t size() const { return pods_.size(); }
  bool in_snapshot() const { return in_snapshot_; }
  std::vector<std::string> uids() const;

 private:
  struct Pod {
    PodInfo info;
    std::string netns_id;
  };
  std::map<std::string, Pod> pods_;
  std::set<std::string> named_;  // added or kept since the connection began
  bool in_snapshot_ = false;
};

}  // namespace zt::core::inpod
