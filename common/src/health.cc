#include "faultline/common/health.h"

#include <fmt/format.h>

namespace faultline {

Health::Health(std::chrono::milliseconds stall)
    : stall_(stall), last_beat_ns_(Clock::now().time_since_epoch().count()) {}

void Health::SetReady(bool ready, std::string why_not) {
  std::lock_guard<std::mutex> lock(mu_);
  ready_ = ready;
  why_not_ = ready ? "" : std::move(why_not);
}

std::pair<int, std::string> Health::Liveness(Clock::time_point now) const {
  const auto since = now - Clock::time_point(Clock::duration(last_beat_ns_.load(std::memory_order_relaxed)));
  if (since <= stall_) return {200, "ok\n"};
  return {503, fmt::format("the main loop has not run for {:.1f} s (the limit is {:.1f} s)\n",
                           std::chrono::duration<double>(since).count(),
                           std::chrono::duration<double>(stall_).count())};
}

std::pair<int, std::string> Health::Readiness() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (ready_) return {200, "ready\n"};
  return {503, "not ready: " + why_not_ + "\n"};
}

}  // namespace faultline
