#include "app/local_mesh_source.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "core/mesh/local_config.h"

namespace zt::app {
namespace {

constexpr std::string_view kReloads = "ztunnel_local_config_reloads_total";
constexpr Duration kCheckEvery = std::chrono::seconds(1);

// The file's identity for change detection: modification time and size.
std::optional<std::pair<int64_t, int64_t>> file_version(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return std::nullopt;
  return std::pair<int64_t, int64_t>{int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec, st.st_size};
}

}  // namespace

LocalMeshSource::LocalMeshSource(Env& env, const Config& cfg, core::metrics::Registry& metrics)
    : env_(env), cfg_(cfg), metrics_(metrics) {
  metrics_.declare(kReloads, core::metrics::MetricType::counter,
                   "Times the local mesh file changed, by result (applied or rejected).");
}

LocalMeshSource::~LocalMeshSource() { stop(); }

Result<std::shared_ptr<const core::mesh::StateSnapshot>> LocalMeshSource::load() {
  std::string text, source;
  if (cfg_.local_xds_path) {
    version_ = file_version(*cfg_.local_xds_path);
    std::ifstream in(*cfg_.local_xds_path);
    if (!in) return Error(Errc::invalid_argument, "LOCAL_XDS_PATH=\"" + *cfg_.local_xds_path + "\": cannot be read");
    std::stringstream buf;
    buf << in.rdbuf();
    text = buf.str();
    source = *cfg_.local_xds_path;
  } else if (cfg_.local_xds_yaml) {
    text = *cfg_.local_xds_yaml;
    source = "LOCAL_XDS";
  }
  auto parsed = core::mesh::parse_local_config(text, source);
  if (!parsed) return parsed.error();
  core::mesh::load_local_config(store_, *parsed);
  loaded_ = store_.publish();
  return loaded_;
}

void LocalMeshSource::start(Publish publish) {
  publish_ = std::move(publish);
  if (loaded_) {
    env_.loop.post([this, s = loaded_] {
      if (publish_) publish_(s);
    });
  }
  if (cfg_.local_xds_path) timer_ = env_.loop.run_after(kCheckEvery, [this] { check(); });
}

void LocalMeshSource::stop() {
  publish_ = nullptr;
  if (timer_ != kNoTimer) env_.loop.cancel(timer_);
  timer_ = kNoTimer;
}

void LocalMeshSource::check() {
  timer_ = env_.loop.run_after(kCheckEvery, [this] { check(); });
  auto version = file_version(*cfg_.local_xds_path);
  if (!version || version == version_) return;
  auto reloaded = load();
  if (!reloaded) {
    metrics_.counter(kReloads, {{"result", "rejected"}}).inc();
    ZT_LOG(env_.log, error, "xds::local", "local configuration rejected; keeping the previous state",
           {"error", reloaded.error().detail});
    return;
  }
  metrics_.counter(kReloads, {{"result", "applied"}}).inc();
  ZT_LOG(env_.log, info, "xds::local", "local configuration reloaded",
         {"workloads", (*reloaded)->workloads().by_uid.size()});
  if (publish_) publish_(*reloaded);
}

}  // namespace zt::app
