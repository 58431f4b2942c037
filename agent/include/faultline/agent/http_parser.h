// HTTP/1.x parsing of one TCP connection's two byte streams, as seen at the syscall layer.
//
// The kernel reports each read/write as: the first bytes it moved (the capture), how many it moved
// in all, and the last few bytes when the capture did not reach them. HttpConnectionParser turns
// that into request/response exchanges: it frames messages (Content-Length, chunked,
// until-close, no-body rules for HEAD/1xx/204/304), follows keep-alive and pipelining, pairs
// responses with requests in order, and accounts for bytes it never saw without losing framing
// when they fall inside a body. Garbage is counted and skipped; the parser resynchronizes at the
// next syscall that starts a message. Privacy: only method, path (without query or fragment),
// version and status are kept; header values and bodies are never stored.
//
// Not thread-safe: one parser per connection, fed in syscall order.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace faultline::agent {

// Which way bytes moved on a connection, from the traced process's side.
enum class ByteDirection : uint8_t { kEgress, kIngress };
enum class HttpRole : uint8_t { kUnknown, kClient, kServer };
enum class HttpOutcome : uint8_t { kComplete, kConnectionClosed, kTruncated };

// One request and its response as one side of the connection saw them. Times are the
// timestamps (any monotonic clock) of the syscalls that moved the bytes.
struct HttpExchange {
  HttpRole role = HttpRole::kUnknown;
  std::string method;
  std::string path;     // without query string or fragment, at most kMaxPathBytes
  std::string version;  // "HTTP/1.1"
  uint32_t status = 0;  // 0 when no response
  uint64_t request_bytes = 0;
  uint64_t response_bytes = 0;
  uint64_t request_start_ns = 0;
  uint64_t response_first_ns = 0;  // 0 when no response
  uint64_t response_end_ns = 0;    // 0 when no response
  HttpOutcome outcome = HttpOutcome::kComplete;
};

// Why bytes were given up on; cumulative per parser.
struct HttpParserStats {
  uint64_t garbage = 0;           // data that did not start an HTTP message where one was due
  uint64_t header_too_large = 0;  // a header block beyond kMaxHeaderBytes
  uint64_t framing_lost = 0;      // uncaptured bytes outside a body: the stream was lost
  uint64_t orphan_responses = 0;  // a response with no request to pair with
  uint64_t pending_overflow = 0;  // more unanswered requests than kMaxPending
  uint64_t unanswered_dropped = 0;  // requests whose responses fell into a gap of lost events
};

class HttpConnectionParser {
 public:
  static constexpr size_t kMaxHeaderBytes = 16 * 1024;
  static constexpr size_t kMaxPathBytes = 256;
  static constexpr size_t kMaxPending = 64;

  // `role` is what the kernel knows (accept -> server, connect -> client); kUnknown lets the
  // parser infer it from which direction carries requests.
  explicit HttpConnectionParser(HttpRole role);
  ~HttpConnectionParser();
  HttpConnectionParser(const HttpConnectionParser&) = delete;
  HttpConnectionParser& operator=(const HttpConnectionParser&) = delete;

  // Feeds one syscall's data: `head` = the first captured bytes, `total` = all bytes moved
  // (>= head.size() + tail.size()), `tail` = the last bytes when not covered by `head`.
  // Completed exchanges are appended to `out`. A call with no bytes at all and total > 0 is a
  // gap: events were lost; on the response side the next response then answers the newest
  // pending request (the older ones are dropped and counted).
  void OnData(ByteDirection dir, std::string_view head, uint64_t total, std::string_view tail,
              uint64_t ts_ns, std::vector<HttpExchange>* out);
  // The connection closed: an until-close response ends here; unanswered requests are reported
  // with outcome kConnectionClosed.
  void OnClose(uint64_t ts_ns, std::vector<HttpExchange>* out);

  HttpRole role() const { return role_; }
  const HttpParserStats& stats() const { return stats_; }

 private:
  class Stream;
  struct Pending;
  void OnRequest(Pending request);
  void OnResponse(const Pending& response, HttpOutcome outcome, std::vector<HttpExchange>* out);
  void NoteRequestDirection(ByteDirection dir);
  bool RequestDirectionIs(ByteDirection dir) const;
  std::string_view OldestPendingMethod() const;
  void PushLostRequest();
  HttpExchange ExchangeFor(Pending&& request) const;  // the request half of an exchange

  HttpRole role_;
  std::unique_ptr<Stream> egress_;
  std::unique_ptr<Stream> ingress_;
  std::deque<Pending> pending_;
  HttpParserStats stats_;
  bool trim_pending_ = false;
};

// True when `data` begins like an HTTP/1.x request line or status line.
bool LooksLikeHttpStart(std::string_view data);

}  // namespace faultline::agent
