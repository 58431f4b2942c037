// Loading YAML from outside (configurations, fault trees) the one way: nesting bounded first
// (yaml-cpp recurses once per level, so adversarial nesting would exhaust the stack), then parsed,
// with errors that name the source and the line.
#pragma once

#include <string>
#include <string_view>

#include "faultline/common/status.h"

namespace YAML {
class Node;
}  // namespace YAML

namespace faultline {

// Parses `text` into `*root`. Errors: kInvalidArgument "SOURCE:LINE: nested deeper than 200
// levels" or "SOURCE:LINE: not valid YAML: …".
Status LoadYaml(std::string_view text, const std::string& source, YAML::Node* root);

}  // namespace faultline
