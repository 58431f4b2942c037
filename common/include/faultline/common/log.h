// Logging for every faultline process: spdlog to stderr, plus a rate limiter so that a warning
// about dropped data is logged at a bounded rate however often the drop happens.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

#include <spdlog/spdlog.h>

namespace faultline {

// Sets the global level from a name ("trace", "debug", "info", "warn", "error", "off").
// Returns false for an unknown name and leaves the level unchanged.
bool SetLogLevel(std::string_view level);

// Allows one event per interval; counts the suppressed ones so the next allowed message can say
// how many were folded into it. Thread-safe (lock-free).
class LogRateLimiter {
 public:
  explicit LogRateLimiter(std::chrono::milliseconds interval) : interval_ns_(interval.count() * 1000000) {}
  // True when the caller should log now; `suppressed` receives how many calls were swallowed
  // since the last allowed one.
  bool Allow(uint64_t* suppressed);

 private:
  int64_t interval_ns_;
  std::atomic<int64_t> next_ns_{0};
  std::atomic<uint64_t> suppressed_{0};
};

}  // namespace faultline

// Logs a warning at most once per 10 s per call site, saying how many were suppressed.
#define FAULTLINE_WARN_RATE_LIMITED(...)                                                    \
  do {                                                                                      \
    static ::faultline::LogRateLimiter fl_limiter_(std::chrono::seconds(10));               \
    uint64_t fl_suppressed_ = 0;                                                            \
    if (fl_limiter_.Allow(&fl_suppressed_)) {                                               \
      if (fl_suppressed_) spdlog::warn("({} similar messages suppressed)", fl_suppressed_); \
      spdlog::warn(__VA_ARGS__);                                                            \
    }                                                                                       \
  } while (0)
