// Status and Result<T>: how every faultline library function reports failure.
//
// A Status is either OK or carries a code and a message that names what was wrong and where
// (file, field, flag) and what was expected. Result<T> holds a T or a non-OK Status. Both are
// cheap to move, [[nodiscard]], and never throw. Thread-compatible (no shared state).
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace faultline {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // the caller's input (flag, config, bytes) is malformed
  kNotFound,
  kUnavailable,  // an environmental dependency (kernel feature, broker, disk) is missing
  kPermissionDenied,
  kFailedPrecondition,  // the input is fine but the state it meets is not (e.g. another window length)
  kInternal,
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "CODE: message", or "OK".
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status PermissionDenied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }
inline Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok() && "Result built from an OK Status has no value");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  // The error; OK when a value is held.
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace faultline

#define FAULTLINE_RETURN_IF_ERROR(expr)              \
  do {                                               \
    ::faultline::Status fl_status_ = (expr);         \
    if (!fl_status_.ok()) return fl_status_;         \
  } while (0)

#define FAULTLINE_CONCAT_INNER_(a, b) a##b
#define FAULTLINE_CONCAT_(a, b) FAULTLINE_CONCAT_INNER_(a, b)
// FAULTLINE_ASSIGN_OR_RETURN(auto x, MakeX()); returns the error of a failed Result.
#define FAULTLINE_ASSIGN_OR_RETURN(lhs, expr) \
  FAULTLINE_ASSIGN_OR_RETURN_(FAULTLINE_CONCAT_(fl_result_, __LINE__), lhs, expr)
#define FAULTLINE_ASSIGN_OR_RETURN_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()
