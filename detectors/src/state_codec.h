// Little-endian, length-checked encoding of detector state (private to detectors/).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/common/status.h"

namespace faultline::detectors {

class StateWriter {
 public:
  explicit StateWriter(std::string_view tag) { Bytes(tag); }
  StateWriter& U64(uint64_t v) { return Raw(&v, sizeof(v)); }
  StateWriter& F64(double v) { return Raw(&v, sizeof(v)); }
  StateWriter& Doubles(const std::vector<double>& v) {
    U64(v.size());
    return Raw(v.data(), v.size() * sizeof(double));
  }
  // A length-prefixed byte string (a nested detector's state).
  StateWriter& Bytes(std::string_view s) {
    U64(s.size());
    out_.append(s);
    return *this;
  }
  std::string Take() { return std::move(out_); }

 private:
  StateWriter& Raw(const void* p, size_t n) {
    if (n) out_.append(static_cast<const char*>(p), n);  // an empty vector's data() may be null
    return *this;
  }
  std::string out_;
};

class StateReader {
 public:
  StateReader(std::string_view bytes, std::string_view tag) : in_(bytes), tag_(tag) {
    uint64_t n = 0;
    if (!U64(&n) || n != tag.size() || in_.size() < n || in_.substr(0, n) != tag) {
      ok_ = false;
    } else {
      in_.remove_prefix(n);
    }
  }
  bool U64(uint64_t* v) { return Raw(v, sizeof(*v)); }
  bool F64(double* v) { return Raw(v, sizeof(*v)); }
  bool Doubles(std::vector<double>* v, uint64_t max_size) {
    uint64_t n = 0;
    if (!U64(&n) || n > max_size || in_.size() < n * sizeof(double)) return ok_ = false;
    v->resize(n);
    return Raw(v->data(), n * sizeof(double));
  }
  // A length-prefixed byte string; the view points into the input.
  bool Bytes(std::string_view* v) {
    uint64_t n = 0;
    if (!U64(&n) || in_.size() < n) return ok_ = false;
    *v = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }
  // OK when everything was read and nothing is left over.
  Status Finish() const {
    if (!ok_) return InvalidArgument(std::string(tag_) + " state: truncated or not this detector's state");
    if (!in_.empty()) return InvalidArgument(std::string(tag_) + " state: " + std::to_string(in_.size()) + " trailing bytes");
    return Status::Ok();
  }

 private:
  bool Raw(void* p, size_t n) {
    if (!ok_ || in_.size() < n) return ok_ = false;
    if (n == 0) return true;  // an empty vector's data() may be null
    std::memcpy(p, in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  std::string_view in_;
  std::string_view tag_;
  bool ok_ = true;
};

}  // namespace faultline::detectors
