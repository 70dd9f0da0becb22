// Where the node's view of the mesh comes from: the local file today
// (app/local_mesh_source.h), istiod's delta xDS next, a script in the
// simulator. A source applies what it learns to its MeshStore and hands
// each new snapshot to the control plane (control_plane.h), which publishes
// it to the workers.
//
//   class ScriptedSource : public MeshSource { ... };
//   source.start([&](std::shared_ptr<const mesh::StateSnapshot> s) { publish(s); });
//
// Runs on the control loop. A source that has not delivered its first state
// holds a readiness block (readiness.h) until it has.
#pragma once

#include <functional>
#include <memory>

#include "core/mesh/snapshot.h"

namespace zt::core::control {

class MeshSource {
 public:
  using Publish = std::function<void(std::shared_ptr<const mesh::StateSnapshot>)>;
  virtual ~MeshSource() = default;
  // Begins delivering: every accepted change is published through `publish`
  // (on the control loop, never inside start()). Bad input is the source's
  // to reject, count and log; the last good state stays published.
  virtual void start(Publish publish) = 0;
  // Stops watching (drain); the last published state stays in force.
  virtual void stop() = 0;
};

}  // namespace zt::core::control
