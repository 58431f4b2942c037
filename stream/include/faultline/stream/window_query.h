// Reading what the stream stored: every partition database under a state directory, filtered by
// entity and time, partial windows of the same series merged across partitions, rendered as JSON
// (for `faultline stream query`, the processor's HTTP endpoint, and people) or as the protobuf
// WindowRecord published to `faultline.metrics`.
//
// Thread-safe: each call opens the databases read-only, which works while a processor writes them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/common/status.h"
#include "faultline/stream/partition_state.h"

namespace faultline::v1 {
class WindowRecord;  // metrics.pb.h
}  // namespace faultline::v1

namespace faultline::stream {

struct WindowQuery {
  // Only this kind. Default: all.
  std::optional<EntityKind> kind;
  // Only series whose entity (SeriesKey::Entity) equals this, or whose dimensions include it as a
  // value ("db" matches the service db and the edges api->db). Default: "" (all).
  std::string entity;
  // Windows starting at or after this. Default: all.
  int64_t since_s = INT64_MIN;
  // Include windows still open. Default: true.
  bool include_open = true;
  // Merge the same series and window from different partitions into one. Default: true.
  bool merge_partitions = true;
};

// Whether an address ("127.0.0.1:80", "[::1]:80", or a bare host) is a loopback one.
bool IsLoopbackAddress(std::string_view address);
// How a listening address is looked up across machines: a loopback address names a listener only
// on its own machine, so it is qualified by it ("m1|127.0.0.1:80"); others stand alone.
std::string ListenerKey(std::string_view address, std::string_view machine);
// Whether a server-side edge's caller is an address ("10.0.0.1", "[fd00::1]") rather than the
// calling service's name (which the stream knows when both ends are on one node).
bool IsAddressHost(std::string_view caller);
// Whether a client-side edge's callee is an entity the agent named (a Kubernetes Service,
// "{namespace}/{name}": it holds a '/', which no address does) rather than an address.
inline bool IsNamedCallee(std::string_view callee) {
  return callee.find('/') != std::string_view::npos;
}
// Linux's default ephemeral port range starts here (net.ipv4.ip_local_port_range).
inline constexpr int kFirstEphemeralPort = 32768;
// An external endpoint's entity name: its address with the port when the port is a service port
// (below kFirstEphemeralPort), the address alone otherwise, so that one outside host's ephemeral
// ports make one peer, never one entity per port ("10.0.0.9:5432", "10.0.0.9").
std::string ExternalName(std::string_view address);

// Scans <state_dir>/<topic>-<partition>/ for every partition found. Sorted by window start, then
// series key. Client-side edges get their callee_service from the listener series of all
// partitions (the latest binding of the address; loopback addresses only on the same machine).
// Errors: kNotFound when no partition directory exists; RocksDB errors with the path.
// `window_s`, when given, receives the window length the state was built with.
Result<std::vector<StoredWindow>> QueryWindows(const std::string& state_dir,
                                               const std::string& topic, const WindowQuery& query,
                                               int64_t* window_s = nullptr);

// One JSON object (a single line) per window; window_s is the window length the stream used.
std::string WindowToJson(const StoredWindow& w, int64_t window_s);

// The record published for a closed window of `partition`.
void ToWindowRecord(const StoredWindow& w, int64_t window_s, int32_t partition,
                    v1::WindowRecord* out);

}  // namespace faultline::stream
