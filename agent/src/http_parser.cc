#include "faultline/agent/http_parser.h"

#include <algorithm>
#include <array>
#include <charconv>

namespace faultline::agent {
namespace {

constexpr std::array<std::string_view, 9> kMethods = {"GET",     "HEAD",    "POST",
                                                      "PUT",     "DELETE",  "CONNECT",
                                                      "OPTIONS", "TRACE",   "PATCH"};
constexpr size_t kMaxChunkLine = 1024;

enum class Start { kYes, kNo, kNeedMore };

// Whether `d` begins a request line ("GET ") or a status line ("HTTP/1.").
Start ClassifyStart(std::string_view d) {
  constexpr std::string_view kStatus = "HTTP/1.";
  if (d.substr(0, std::min(d.size(), kStatus.size())) == kStatus.substr(0, std::min(d.size(), kStatus.size()))) {
    return d.size() >= kStatus.size() ? Start::kYes : Start::kNeedMore;
  }
  bool need_more = false;
  for (std::string_view m : kMethods) {
    if (d.size() > m.size()) {
      if (d.substr(0, m.size()) == m && d[m.size()] == ' ') return Start::kYes;
    } else if (m.substr(0, d.size()) == d) {
      need_more = true;
    }
  }
  return need_more ? Start::kNeedMore : Start::kNo;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    // ASCII only, as header names are (RFC 9110 5.1): no locale lookup per character.
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// The path of a request target: absolute-form loses scheme and authority; query and fragment go.
std::string PathOf(std::string_view target) {
  if (auto scheme = target.find("://"); scheme != std::string_view::npos && scheme < 8) {
    auto slash = target.find('/', scheme + 3);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  target = target.substr(0, target.find_first_of("?#"));
  return std::string(target.substr(0, HttpConnectionParser::kMaxPathBytes));
}

}  // namespace

bool LooksLikeHttpStart(std::string_view data) { return ClassifyStart(data) == Start::kYes; }

// A message as it is being parsed, or a request waiting for its response.
struct HttpConnectionParser::Pending {
  bool is_request = false;
  bool lost = false;  // a placeholder for a request whose bytes were lost
  bool headers_done = false;
  std::string method, path, version;
  uint32_t status = 0;
  uint64_t bytes = 0;
  uint64_t start_ns = 0;
  uint64_t end_ns = 0;
};

class HttpConnectionParser::Stream {
 public:
  Stream(HttpConnectionParser* owner, ByteDirection dir) : owner_(owner), dir_(dir) {}

  void Feed(std::string_view head, uint64_t total, std::string_view tail, uint64_t ts,
            std::vector<HttpExchange>* out) {
    if (state_ == State::kOpaque) return;
    if (state_ == State::kLost && LooksLikeHttpStart(head)) state_ = State::kStart;
    ts_ = ts;
    out_ = out;
    Consume(head);
    const uint64_t seen = head.size() + tail.size();
    if (total > seen) Skip(total - seen);
    Consume(tail);
  }

  void Close(uint64_t ts, std::vector<HttpExchange>* out) {
    out_ = out;
    if (state_ == State::kUntilClose) {
      ts_ = cur_.end_ns;
      Complete(HttpOutcome::kComplete);
    } else if (InMessage() && cur_.headers_done && !cur_.is_request) {
      owner_->OnResponse(cur_, HttpOutcome::kTruncated, out_);
    }
    state_ = State::kLost;
  }

 private:
  enum class State {
    kStart, kHeaders, kBodyLength, kChunkSize, kChunkData, kChunkDataEnd, kTrailers,
    kChunkLost, kUntilClose, kLost, kOpaque
  };

  bool InMessage() const {
    return state_ != State::kStart && state_ != State::kLost && state_ != State::kOpaque;
  }

  void Take(size_t n) {
    cur_.bytes += n;
    cur_.end_ns = ts_;
  }

  void Consume(std::string_view d) {
    while (!d.empty()) {
      switch (state_) {
        case State::kStart:
          if (d.front() == '\r' || d.front() == '\n') {  // stray CRLF between messages
            d.remove_prefix(1);
            continue;
          }
          cur_ = Pending{};
          cur_.start_ns = ts_;
          buf_.clear();
          state_ = State::kHeaders;
          break;
        case State::kHeaders: d = ConsumeHeaders(d); break;
        case State::kBodyLength: {
          size_t n = std::min<uint64_t>(remaining_, d.size());
          Take(n);
          d.remove_prefix(n);
          remaining_ -= n;
          if (remaining_ == 0) Complete(HttpOutcome::kComplete);
          break;
        }
        case State::kChunkSize:
        case State::kTrailers: d = ConsumeLine(d); break;
        case State::kChunkData: {
          size_t n = std::min<uint64_t>(remaining_, d.size());
          Take(n);
          d.remove_prefix(n);
          remaining_ -= n;
          if (remaining_ == 0) {
            state_ = State::kChunkDataEnd;
            remaining_ = 2;
          }
          break;
        }
        case State::kChunkDataEnd: {
          size_t n = std::min<uint64_t>(remaining_, d.size());
          Take(n);
          d.remove_prefix(n);
          remaining_ -= n;
          if (remaining_ == 0) state_ = State::kChunkSize;
          break;
        }
        case State::kChunkLost: {
          // Framing inside the chunked body is lost; its end is the "0\r\n\r\n" terminator.
          constexpr std::string_view kEnd = "\r\n0\r\n\r\n";
          size_t i = 0;
          bool done = false;
          while (i < d.size() && !done) {
            window_.push_back(d[i++]);
            if (window_.size() > kEnd.size()) window_.erase(0, 1);
            done = window_ == kEnd;
          }
          Take(i);
          d.remove_prefix(i);
          if (done) Complete(HttpOutcome::kComplete);
          break;
        }
        case State::kUntilClose: Take(d.size()); return;
        case State::kLost:
        case State::kOpaque: return;
      }
    }
  }

  // Bytes the kernel did not capture: harmless inside a body, fatal to framing elsewhere.
  void Skip(uint64_t n) {
    switch (state_) {
      case State::kBodyLength:
        if (n <= remaining_) {
          Take(n);
          remaining_ -= n;
          if (remaining_ == 0) Complete(HttpOutcome::kComplete);
          return;
        }
        cur_.bytes += remaining_;
        Complete(HttpOutcome::kComplete);
        owner_->stats_.framing_lost++;
        state_ = State::kLost;
        return;
      case State::kChunkData:
        if (n <= remaining_) {
          Take(n);
          remaining_ -= n;
          return;
        }
        [[fallthrough]];
      case State::kChunkDataEnd:
      case State::kChunkSize:
      case State::kTrailers:
      case State::kChunkLost:
        Take(n);
        window_.clear();
        state_ = State::kChunkLost;
        return;
      case State::kUntilClose:
        Take(n);
        return;
      case State::kStart:
      case State::kHeaders:
        owner_->stats_.framing_lost++;
        GoLost();
        return;
      case State::kLost:
      case State::kOpaque: return;
    }
  }

  std::string_view ConsumeHeaders(std::string_view d) {
    if (buf_.empty()) {
      // The common case: the whole header block in this payload, parsed where it lies. What the
      // buffered path below does with a block that starts here, without the copy.
      const std::string_view w = d.substr(0, HttpConnectionParser::kMaxHeaderBytes);
      const size_t end = ClassifyStart(w) == Start::kNo ? std::string_view::npos : w.find("\r\n\r\n");
      if (end != std::string_view::npos) {
        Take(end + 4);
        if (!ParseHeaderBlock(w.substr(0, end + 2))) {  // with the last header's CRLF
          owner_->stats_.garbage++;
          GoLost();
          return {};
        }
        return d.substr(end + 4);
      }
    }
    const size_t old = buf_.size();
    const size_t room = HttpConnectionParser::kMaxHeaderBytes - std::min(old, HttpConnectionParser::kMaxHeaderBytes);
    buf_.append(d.substr(0, room));
    if (ClassifyStart(buf_) == Start::kNo) {
      owner_->stats_.garbage++;
      GoLost();
      return {};
    }
    const size_t end = buf_.find("\r\n\r\n", old >= 3 ? old - 3 : 0);
    if (end == std::string::npos) {
      if (buf_.size() >= HttpConnectionParser::kMaxHeaderBytes) {
        owner_->stats_.header_too_large++;
        GoLost();
        return {};
      }
      Take(d.size());
      return {};
    }
    const size_t used = end + 4 - old;
    Take(used);
    buf_.resize(end + 2);  // keep the last header's CRLF
    if (!ParseHeaderBlock(buf_)) {
      owner_->stats_.garbage++;
      GoLost();
      return {};
    }
    return d.substr(used);
  }

  // Parses the start line and the framing headers of `block` (ending in its last header's CRLF);
  // sets the body state.
  bool ParseHeaderBlock(std::string_view block) {
    const size_t eol = block.find("\r\n");
    std::string_view line = block.substr(0, eol);
    block.remove_prefix(eol + 2);
    if (line.substr(0, 5) == "HTTP/") {
      // HTTP/1.1 200 OK
      if (line.size() < 12 || line[8] != ' ') return false;
      cur_.version = std::string(line.substr(0, 8));
      int status = 0;
      auto [p, ec] = std::from_chars(line.data() + 9, line.data() + 12, status);
      if (ec != std::errc() || p != line.data() + 12 || status < 100 || status > 999) return false;
      if (line.size() > 12 && line[12] != ' ') return false;
      cur_.status = status;
      cur_.is_request = false;
    } else {
      const size_t sp1 = line.find(' ');
      const size_t sp2 = line.rfind(' ');
      if (sp1 == std::string_view::npos || sp2 == sp1) return false;
      std::string_view version = line.substr(sp2 + 1);
      if (version != "HTTP/1.1" && version != "HTTP/1.0") return false;
      cur_.method = std::string(line.substr(0, sp1));
      cur_.path = PathOf(Trim(line.substr(sp1 + 1, sp2 - sp1 - 1)));
      cur_.version = std::string(version);
      cur_.is_request = true;
    }
    cur_.headers_done = true;

    bool chunked = false;
    bool has_length = false;
    uint64_t length = 0;
    while (!block.empty()) {
      const size_t e = block.find("\r\n");
      std::string_view h = block.substr(0, e);
      block.remove_prefix(e == std::string_view::npos ? block.size() : e + 2);
      const size_t colon = h.find(':');
      if (colon == std::string_view::npos || colon == 0) return false;
      std::string_view name = h.substr(0, colon);
      std::string_view value = Trim(h.substr(colon + 1));
      if (EqualsIgnoreCase(name, "content-length")) {
        uint64_t v = 0;
        auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
        if (ec != std::errc() || p != value.data() + value.size()) return false;
        if (has_length && v != length) return false;  // conflicting lengths
        has_length = true;
        length = v;
      } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
        chunked = value.size() >= 7 && EqualsIgnoreCase(value.substr(value.size() - 7), "chunked");
      }
    }

    if (cur_.is_request) {
      owner_->NoteRequestDirection(dir_);
      if (chunked) {
        EnterChunked();
      } else if (has_length && length > 0) {
        EnterLength(length);
      } else {
        Complete(HttpOutcome::kComplete);
      }
      return true;
    }
    if (cur_.status >= 100 && cur_.status < 200) {
      if (cur_.status == 101) {  // protocol switch: the rest is not HTTP
        Complete(HttpOutcome::kComplete);
        state_ = State::kOpaque;
      } else {  // informational (100 Continue): the final response follows
        state_ = State::kStart;
      }
      return true;
    }
    const std::string_view request_method = owner_->OldestPendingMethod();
    if (request_method == "HEAD" || cur_.status == 204 || cur_.status == 304) {
      Complete(HttpOutcome::kComplete);
    } else if (request_method == "CONNECT" && cur_.status < 300) {
      Complete(HttpOutcome::kComplete);
      state_ = State::kOpaque;
    } else if (chunked) {
      EnterChunked();
    } else if (has_length) {
      if (length == 0) {
        Complete(HttpOutcome::kComplete);
      } else {
        EnterLength(length);
      }
    } else {
      state_ = State::kUntilClose;
    }
    return true;
  }

  void EnterLength(uint64_t n) {
    state_ = State::kBodyLength;
    remaining_ = n;
  }
  void EnterChunked() {
    state_ = State::kChunkSize;
    buf_.clear();
  }

  // A CRLF-terminated line of the chunked framing (a chunk size, or a trailer).
  std::string_view ConsumeLine(std::string_view d) {
    const size_t eol = d.find('\n');
    const size_t n = eol == std::string_view::npos ? d.size() : eol + 1;
    buf_.append(d.substr(0, std::min(n, kMaxChunkLine)));
    Take(n);
    d.remove_prefix(n);
    if (eol == std::string_view::npos) {
      if (buf_.size() >= kMaxChunkLine) {
        owner_->stats_.garbage++;
        GoLost();
        return {};
      }
      return d;
    }
    std::string_view line = buf_;
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    if (state_ == State::kTrailers) {
      const bool last = line.empty();
      buf_.clear();
      if (last) Complete(HttpOutcome::kComplete);
      return d;
    }
    line = Trim(line.substr(0, line.find(';')));
    uint64_t size = 0;
    auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), size, 16);
    buf_.clear();
    if (ec != std::errc() || p != line.data() + line.size() || line.empty()) {
      owner_->stats_.garbage++;
      GoLost();
      return {};
    }
    if (size == 0) {
      state_ = State::kTrailers;
    } else {
      state_ = State::kChunkData;
      remaining_ = size;
    }
    return d;
  }

  void Complete(HttpOutcome outcome) {
    cur_.end_ns = std::max(cur_.end_ns, ts_);
    state_ = State::kStart;
    if (cur_.is_request) {
      owner_->OnRequest(std::move(cur_));
    } else {
      owner_->OnResponse(cur_, outcome, out_);
    }
    cur_ = Pending{};
  }

  // Gives up on the byte stream until a syscall starts a new message; keeps request/response
  // pairing aligned by reporting or standing in for the message that was lost.
  void GoLost() {
    if (InMessage()) {
      if (cur_.headers_done && !cur_.is_request) {
        owner_->OnResponse(cur_, HttpOutcome::kTruncated, out_);
      } else if (cur_.headers_done) {
        owner_->OnRequest(std::move(cur_));
      } else if (ClassifyStart(buf_) != Start::kNo && owner_->RequestDirectionIs(dir_)) {
        owner_->PushLostRequest();  // a request began here and its framing was lost
      }
    }
    cur_ = Pending{};
    buf_.clear();
    state_ = State::kLost;
  }

  HttpConnectionParser* owner_;
  ByteDirection dir_;
  State state_ = State::kStart;
  Pending cur_;
  std::string buf_;
  std::string window_;
  uint64_t remaining_ = 0;
  uint64_t ts_ = 0;
  std::vector<HttpExchange>* out_ = nullptr;
};

HttpConnectionParser::HttpConnectionParser(HttpRole role)
    : role_(role),
      egress_(std::make_unique<Stream>(this, ByteDirection::kEgress)),
      ingress_(std::make_unique<Stream>(this, ByteDirection::kIngress)) {}

HttpConnectionParser::~HttpConnectionParser() = default;

void HttpConnectionParser::OnData(ByteDirection dir, std::string_view head, uint64_t total,
                                  std::string_view tail, uint64_t ts_ns,
                                  std::vector<HttpExchange>* out) {
  // A pure gap in the response stream may have swallowed responses whose requests are still
  // pending; the next response answers the newest request.
  if (head.empty() && tail.empty() && total > 0 && role_ != HttpRole::kUnknown &&
      !RequestDirectionIs(dir)) {
    trim_pending_ = true;
  }
  (dir == ByteDirection::kEgress ? egress_ : ingress_)->Feed(head, total, tail, ts_ns, out);
}

HttpExchange HttpConnectionParser::ExchangeFor(Pending&& request) const {
  HttpExchange x;
  x.role = role_;
  x.method = std::move(request.method);
  x.path = std::move(request.path);
  x.version = std::move(request.version);
  x.request_bytes = request.bytes;
  x.request_start_ns = request.start_ns;
  return x;
}

void HttpConnectionParser::OnClose(uint64_t ts_ns, std::vector<HttpExchange>* out) {
  // Requests first, so a request completed at close is still reported.
  const bool egress_requests = role_ != HttpRole::kServer;
  (egress_requests ? egress_ : ingress_)->Close(ts_ns, out);
  (egress_requests ? ingress_ : egress_)->Close(ts_ns, out);
  for (Pending& p : pending_) {
    if (p.lost) continue;
    HttpExchange x = ExchangeFor(std::move(p));
    x.outcome = HttpOutcome::kConnectionClosed;
    out->push_back(std::move(x));
  }
  pending_.clear();
}

void HttpConnectionParser::NoteRequestDirection(ByteDirection dir) {
  if (role_ == HttpRole::kUnknown) {
    role_ = dir == ByteDirection::kIngress ? HttpRole::kServer : HttpRole::kClient;
  }
}

bool HttpConnectionParser::RequestDirectionIs(ByteDirection dir) const {
  if (role_ == HttpRole::kUnknown) return false;
  return (role_ == HttpRole::kServer) == (dir == ByteDirection::kIngress);
}

std::string_view HttpConnectionParser::OldestPendingMethod() const {
  return pending_.empty() ? std::string_view() : std::string_view(pending_.front().method);
}

void HttpConnectionParser::OnRequest(Pending request) {
  if (pending_.size() >= kMaxPending) {
    stats_.pending_overflow++;
    pending_.pop_front();
  }
  pending_.push_back(std::move(request));
}

void HttpConnectionParser::PushLostRequest() {
  Pending p;
  p.lost = true;
  OnRequest(std::move(p));
}

void HttpConnectionParser::OnResponse(const Pending& response, HttpOutcome outcome,
                                      std::vector<HttpExchange>* out) {
  if (pending_.empty()) {
    stats_.orphan_responses++;
    return;
  }
  if (trim_pending_) {
    trim_pending_ = false;
    while (pending_.size() > 1) {
      pending_.pop_front();
      stats_.unanswered_dropped++;
    }
  }
  Pending request = std::move(pending_.front());
  pending_.pop_front();
  if (request.lost) return;
  HttpExchange x = ExchangeFor(std::move(request));
  x.status = response.status;
  x.response_bytes = response.bytes;
  x.response_first_ns = response.start_ns;
  x.response_end_ns = response.end_ns;
  x.outcome = outcome;
  out->push_back(std::move(x));
}

}  // namespace faultline::agent
