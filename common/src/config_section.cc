#include "faultline/common/config_section.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>

namespace faultline {

Status ConfigError(const std::string& source, const YAML::Node& node, const std::string& what) {
  return InvalidArgument(source + ":" + std::to_string(node.Mark().line + 1) + ": " + what);
}

ConfigSection::ConfigSection(std::string prefix, std::string what)
    : prefix_(std::move(prefix)), what_(std::move(what)) {}

ConfigSection& ConfigSection::IntegerWith(std::string name, int64_t lo, int64_t hi,
                                          std::function<void(int64_t)> set) {
  fields_.push_back({std::move(name), [lo, hi, set = std::move(set)](const std::string& source,
                                                                      const YAML::Node& v,
                                                                      const std::string& field) {
                       const std::string s = v.IsScalar() ? v.Scalar() : "";
                       char* end = nullptr;
                       errno = 0;
                       const long long n = std::strtoll(s.c_str(), &end, 10);
                       if (s.empty() || *end || errno == ERANGE || n < lo || n > hi)
                         return ConfigError(source, v,
                                            field + ": expected an integer in " +
                                                std::to_string(lo) + ".." + std::to_string(hi) +
                                                ", got '" + s + "'");
                       set(n);
                       return Status::Ok();
                     }});
  return *this;
}

ConfigSection& ConfigSection::Bool(std::string name, bool* out) {
  fields_.push_back({std::move(name), [out](const std::string& source, const YAML::Node& v,
                                            const std::string& field) {
                       const std::string s = v.IsScalar() ? v.Scalar() : "";
                       if (s != "true" && s != "false")
                         return ConfigError(source, v,
                                            field + ": expected true or false, got '" + s + "'");
                       *out = s == "true";
                       return Status::Ok();
                     }});
  return *this;
}

ConfigSection& ConfigSection::Text(std::string name, std::string* out, std::string expected) {
  fields_.push_back({std::move(name), [out, expected = std::move(expected)](
                                          const std::string& source, const YAML::Node& v,
                                          const std::string& field) {
                       if (!v.IsScalar()) return ConfigError(source, v, field + ": expected " + expected);
                       *out = v.Scalar();
                       return Status::Ok();
                     }});
  return *this;
}

ConfigSection& ConfigSection::TextList(std::string name, std::vector<std::string>* out,
                                       std::string expected) {
  fields_.push_back({std::move(name), [out, expected = std::move(expected)](
                                          const std::string& source, const YAML::Node& v,
                                          const std::string& field) {
                       if (!v.IsSequence())
                         return ConfigError(source, v, field + ": expected a list of " + expected);
                       std::vector<std::string> items;
                       for (const YAML::Node& item : v) {
                         if (!item.IsScalar())
                           return ConfigError(source, item, field + ": expected " + expected);
                         items.push_back(item.Scalar());
                       }
                       *out = std::move(items);
                       return Status::Ok();
                     }});
  return *this;
}

ConfigSection& ConfigSection::Custom(
    std::string name, std::function<Status(const YAML::Node&, const std::string&)> read) {
  fields_.push_back({std::move(name), [read = std::move(read)](const std::string& source,
                                                               const YAML::Node& v,
                                                               const std::string& field) {
                       Status s = read(v, field);
                       // Errors that already name their place ("SOURCE:LINE: …", or a nested
                       // document's "SOURCE (…, from line N): …") stand as they are.
                       if (s.ok() || s.message().rfind(source, 0) == 0) return s;
                       return ConfigError(source, v, s.message());
                     }});
  return *this;
}

std::vector<std::string> ConfigSection::names() const {
  std::vector<std::string> out;
  for (const Field& f : fields_) out.push_back(f.name);
  return out;
}

Status ConfigSection::Read(const std::string& source, const YAML::Node& node) const {
  if (node.IsNull()) return Status::Ok();
  if (!node.IsMap()) return ConfigError(source, node, "expected a mapping of " + what_);
  try {
    for (const auto& kv : node) {
      const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
      const Field* field = nullptr;
      for (const Field& f : fields_)
        if (f.name == key) field = &f;
      if (!field) {
        std::string known;
        for (const Field& f : fields_) known += (known.empty() ? "" : ", ") + f.name;
        const std::string where = prefix_.empty() ? "" : prefix_.substr(0, prefix_.size() - 1) + ": ";
        return ConfigError(source, kv.first,
                           where + "unknown " + (what_ == "settings" ? "setting" : "field") +
                               " '" + key + "' (known: " + known + ")");
      }
      FAULTLINE_RETURN_IF_ERROR(field->read(source, kv.second, prefix_ + key));
    }
  } catch (const YAML::Exception& e) {
    return InvalidArgument(source + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  return Status::Ok();
}

}  // namespace faultline
