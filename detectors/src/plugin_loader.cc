#include "faultline/detectors/plugin_loader.h"

#include <dlfcn.h>

#include <cmath>
#include <mutex>
#include <vector>

#include "faultline/detectors/plugin_abi.h"

namespace faultline::detectors {

Result<std::unique_ptr<DetectorPlugin>> DetectorPlugin::Load(const std::string& path) {
  std::unique_ptr<DetectorPlugin> p(new DetectorPlugin());
  p->path_ = path;
  p->handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!p->handle_) return NotFound(path + ": cannot load plugin: " + dlerror());
  auto entry = reinterpret_cast<fl_detector_plugin_entry>(dlsym(p->handle_, FAULTLINE_DETECTOR_PLUGIN_SYMBOL));
  if (!entry) {
    return InvalidArgument(path + ": no symbol " FAULTLINE_DETECTOR_PLUGIN_SYMBOL
                           " (not a faultline detector plugin, or the symbol is not extern \"C\")");
  }
  p->table_ = entry();
  if (!p->table_) return InvalidArgument(path + ": " FAULTLINE_DETECTOR_PLUGIN_SYMBOL "() returned NULL");
  const fl_detector_plugin& t = *p->table_;
  if (t.abi_major != FAULTLINE_DETECTOR_ABI_MAJOR) {
    return InvalidArgument(path + ": plugin ABI version " + std::to_string(t.abi_major) + "." +
                           std::to_string(t.abi_minor) + ", but this faultline speaks " +
                           std::to_string(FAULTLINE_DETECTOR_ABI_MAJOR) + ".x: rebuild the plugin against "
                           "this faultline's plugin_abi.h");
  }
  if (!t.name || !*t.name) return InvalidArgument(path + ": the plugin table has no name");
  const char* missing = !t.create ? "create" : !t.destroy ? "destroy" : !t.observe ? "observe" : nullptr;
  if (missing) return InvalidArgument(path + ": plugin '" + t.name + "' lacks the required function " + missing);
  if (!t.save_state != !t.restore_state) {
    return InvalidArgument(path + ": plugin '" + t.name + "' has only one of save_state and restore_state");
  }
  p->name_ = t.name;
  return p;
}

DetectorPlugin::~DetectorPlugin() {
  if (handle_) dlclose(handle_);
}

Result<std::unique_ptr<PluginDetector>> DetectorPlugin::Create(const Params& params) const {
  std::vector<fl_param> c_params;
  for (const auto& [k, v] : params) c_params.push_back({k.c_str(), v.c_str()});
  const char* error = nullptr;
  void* instance = table_->create(c_params.data(), c_params.size(), &error);
  if (!instance) return InvalidArgument(name_ + ": " + (error ? error : "create() failed without a message"));
  return std::unique_ptr<PluginDetector>(new PluginDetector(this, instance));
}

PluginDetector::~PluginDetector() { plugin_->table_->destroy(instance_); }

Verdict PluginDetector::Observe(int64_t time_s, double value) {
  fl_verdict out{};
  const int rc = plugin_->table_->observe(instance_, time_s, value, &out);
  std::string problem;
  if (rc != 0) {
    problem = "observe() returned " + std::to_string(rc);
  } else if (!std::isfinite(out.score) || out.score < 0 || out.score > 1) {
    problem = "score " + std::to_string(out.score) + " is outside [0, 1]";
  } else if (out.direction < FL_DIRECTION_NONE || out.direction > FL_DIRECTION_DOWN) {
    problem = "direction " + std::to_string(out.direction) + " is not 0, 1 or 2";
  } else if ((out.anomalous != 0 && out.anomalous != 1) || (out.has_band != 0 && out.has_band != 1)) {
    problem = "anomalous/has_band must be 0 or 1";
  }
  if (!problem.empty()) {
    if (garbage_++ == 0) first_garbage_ = plugin_->name_ + ": at t=" + std::to_string(time_s) + ": " + problem;
    return Verdict{};
  }
  Verdict v;
  v.anomalous = out.anomalous == 1;
  v.score = out.score;
  v.direction = static_cast<Direction>(out.direction);
  v.has_band = out.has_band == 1;
  v.expected = out.expected;
  v.lower = out.lower;
  v.upper = out.upper;
  return v;
}

std::string PluginDetector::SaveState() const {
  const auto* t = plugin_->table_;
  if (!t->save_state) return {};
  std::string buf(256, '\0');
  size_t n = t->save_state(instance_, reinterpret_cast<uint8_t*>(buf.data()), buf.size());
  if (n > buf.size()) {
    buf.resize(n);
    n = t->save_state(instance_, reinterpret_cast<uint8_t*>(buf.data()), buf.size());
  }
  buf.resize(std::min(n, buf.size()));
  return buf;
}

Status PluginDetector::RestoreState(std::string_view bytes) {
  const auto* t = plugin_->table_;
  if (!t->restore_state) {
    return bytes.empty() ? Status::Ok() : InvalidArgument(plugin_->name_ + ": stateless plugin given state");
  }
  const char* error = nullptr;
  if (t->restore_state(instance_, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), &error) != 0) {
    return InvalidArgument(plugin_->name_ + ": restore_state: " + (error ? error : "failed without a message"));
  }
  return Status::Ok();
}

}  // namespace faultline::detectors

namespace faultline::detectors {

Status RegisterDetectorPlugin(const std::string& path) {
  static std::mutex mu;
  static std::vector<std::unique_ptr<DetectorPlugin>> loaded;  // for the process's life
  FAULTLINE_ASSIGN_OR_RETURN(std::unique_ptr<DetectorPlugin> plugin, DetectorPlugin::Load(path));
  const DetectorPlugin* p = plugin.get();
  std::lock_guard<std::mutex> lock(mu);
  FAULTLINE_RETURN_IF_ERROR(DetectorRegistry::Global().Register(
      {p->name(), "plugin " + p->path(), [p](const Params& params) -> Result<std::unique_ptr<Detector>> {
         FAULTLINE_ASSIGN_OR_RETURN(std::unique_ptr<PluginDetector> d, p->Create(params));
         return std::unique_ptr<Detector>(std::move(d));
       }}));
  loaded.push_back(std::move(plugin));
  return Status::Ok();
}

}  // namespace faultline::detectors
