// A window as others read it: one JSON object (for `faultline stream query`, the processor's HTTP
// endpoint, and people) or the protobuf WindowRecord published to `faultline.metrics` (the
// contract between the stream and the diagnosis stage, schema/metrics.proto).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "faultline/model/window_stats.h"

namespace faultline::v1 {
class WindowRecord;  // metrics.pb.h
}  // namespace faultline::v1

namespace faultline::model {

// The kind of a WindowRecord that carries no window: "every window of input partition P before
// window_start_unix_s was published" (metrics.proto). Other records carry an entity kind's name.
inline constexpr std::string_view kWatermarkRecordKind = "watermark";

// One JSON object (a single line) per window; window_s is the window length the stream used.
std::string WindowToJson(const StoredWindow& w, int64_t window_s);

// The record published for a closed window of `partition`.
void ToWindowRecord(const StoredWindow& w, int64_t window_s, int32_t partition,
                    v1::WindowRecord* out);

}  // namespace faultline::model
