#include "faultline/agent/http_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace faultline::agent {
namespace {

constexpr ByteDirection kIn = ByteDirection::kIngress;
constexpr ByteDirection kOut = ByteDirection::kEgress;

class ParserTest : public ::testing::Test {
 protected:
  explicit ParserTest(HttpRole role = HttpRole::kServer) : parser_(role) {}
  // Feeds `data` as one fully captured syscall.
  void Feed(ByteDirection d, const std::string& data, uint64_t ts) { parser_.OnData(d, data, data.size(), {}, ts, &out_); }
  // Feeds a syscall of which only the first `head` and last `tail` bytes were captured.
  void FeedPartial(ByteDirection d, const std::string& data, size_t head, size_t tail, uint64_t ts) {
    parser_.OnData(d, std::string_view(data).substr(0, head), data.size(),
                   std::string_view(data).substr(data.size() - tail), ts, &out_);
  }
  HttpConnectionParser parser_;
  std::vector<HttpExchange> out_;
};

class ClientParserTest : public ParserTest {
 protected:
  ClientParserTest() : ParserTest(HttpRole::kClient) {}
};

std::string Response(int status, const std::string& body, const std::string& extra = "") {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         extra + "\r\n" + body;
}

std::string Chunked(const std::vector<std::string>& chunks) {
  std::string s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const auto& c : chunks) {
    char size[32];
    snprintf(size, sizeof(size), "%zx\r\n", c.size());
    s += size + c + "\r\n";
  }
  return s + "0\r\n\r\n";
}

TEST_F(ParserTest, KeepAliveRequestsPairInOrderWithExactSizesAndTimes) {
  const std::string req = "GET /a?secret=1 HTTP/1.1\r\nHost: x\r\nCookie: c=1\r\n\r\n";
  for (int i = 0; i < 3; ++i) {
    Feed(kIn, req, 1000 + i * 100);
    Feed(kOut, Response(200 + i, std::string(10 + i, 'b')), 1050 + i * 100);
  }
  ASSERT_EQ(out_.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const HttpExchange& x = out_[i];
    EXPECT_EQ(x.role, HttpRole::kServer);
    EXPECT_EQ(x.method, "GET");
    EXPECT_EQ(x.path, "/a");  // query string dropped
    EXPECT_EQ(x.version, "HTTP/1.1");
    EXPECT_EQ(x.status, 200u + i);
    EXPECT_EQ(x.request_bytes, req.size());
    EXPECT_EQ(x.response_bytes, Response(200 + i, std::string(10 + i, 'b')).size());
    EXPECT_EQ(x.request_start_ns, 1000u + i * 100);
    EXPECT_EQ(x.response_end_ns, 1050u + i * 100);
    EXPECT_EQ(x.outcome, HttpOutcome::kComplete);
  }
  EXPECT_EQ(parser_.stats().garbage, 0u);
}

TEST_F(ParserTest, PipelinedRequestsInOneReadAndResponsesInOneWrite) {
  Feed(kIn, "GET /1 HTTP/1.1\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\n\r\n", 10);
  Feed(kOut, Response(200, "x") + Response(201, "yy") + Response(404, ""), 20);
  ASSERT_EQ(out_.size(), 3u);
  EXPECT_EQ(out_[0].path, "/1");
  EXPECT_EQ(out_[1].method, "POST");
  EXPECT_EQ(out_[1].request_bytes, std::string("POST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").size());
  EXPECT_EQ(out_[1].status, 201u);
  EXPECT_EQ(out_[2].path, "/3");
  EXPECT_EQ(out_[2].status, 404u);
}

TEST_F(ParserTest, MessagesSplitAcrossSingleByteSyscalls) {
  const std::string req = "PUT /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
  const std::string resp = Chunked({"abc", "defgh", std::string(300, 'z')});
  uint64_t ts = 1;
  for (char c : req) Feed(kIn, std::string(1, c), ts++);
  for (char c : resp) Feed(kOut, std::string(1, c), ts++);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(out_[0].request_bytes, req.size());
  EXPECT_EQ(out_[0].response_bytes, resp.size());
  EXPECT_EQ(out_[0].request_start_ns, 1u);
  EXPECT_EQ(out_[0].response_first_ns, req.size() + 1);
  EXPECT_EQ(out_[0].response_end_ns, ts - 1);
}

TEST_F(ClientParserTest, UncapturedBodyBytesKeepContentLengthFraming) {
  Feed(kOut, "GET /big HTTP/1.1\r\n\r\n", 5);
  const std::string resp = Response(200, std::string(1 << 20, 'q'));
  // The client reads 64 KiB at a time; the kernel captured 1 KiB of each read and 16 tail bytes.
  size_t off = 0;
  uint64_t ts = 10;
  while (off < resp.size()) {
    const std::string piece = resp.substr(off, 65536);
    FeedPartial(kIn, piece, std::min<size_t>(1024, piece.size()), piece.size() > 1040 ? 16 : 0, ts++);
    off += piece.size();
  }
  Feed(kOut, "GET /next HTTP/1.1\r\n\r\n", 100);
  Feed(kIn, Response(200, "ok"), 101);
  ASSERT_EQ(out_.size(), 2u);
  EXPECT_EQ(out_[0].response_bytes, resp.size());
  EXPECT_EQ(out_[0].response_end_ns, ts - 1);
  EXPECT_EQ(out_[1].path, "/next");
  EXPECT_EQ(parser_.stats().framing_lost, 0u);
}

TEST_F(ClientParserTest, ChunkedBodyWhoseFramingIsLostEndsAtTheTerminatorInTheTail) {
  Feed(kOut, "GET /c HTTP/1.1\r\n\r\n", 1);
  const std::string resp = Chunked({std::string(5000, 'a'), std::string(7000, 'b'), std::string(100, 'c')});
  FeedPartial(kIn, resp, 1024, 16, 2);  // one read: head and tail only, chunk boundaries unseen
  Feed(kOut, "GET /d HTTP/1.1\r\n\r\n", 3);
  Feed(kIn, Response(500, "e"), 4);
  ASSERT_EQ(out_.size(), 2u);
  EXPECT_EQ(out_[0].response_bytes, resp.size());
  EXPECT_EQ(out_[0].status, 200u);
  EXPECT_EQ(out_[1].status, 500u);
}

TEST_F(ClientParserTest, HeadAnd204And304HaveNoBody) {
  Feed(kOut, "HEAD /h HTTP/1.1\r\n\r\n", 1);
  Feed(kIn, "HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n", 2);
  Feed(kOut, "DELETE /x HTTP/1.1\r\n\r\n", 3);
  Feed(kIn, "HTTP/1.1 204 No Content\r\n\r\n", 4);
  Feed(kOut, "GET /y HTTP/1.1\r\n\r\n", 5);
  Feed(kIn, "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", 6);
  ASSERT_EQ(out_.size(), 3u);
  EXPECT_EQ(out_[0].status, 200u);
  EXPECT_EQ(out_[1].status, 204u);
  EXPECT_EQ(out_[2].status, 304u);
  // The responses end with their headers: no byte of a body is counted, whatever the headers say.
  EXPECT_EQ(out_[0].response_bytes, std::string("HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n").size());
  EXPECT_EQ(out_[1].response_bytes, std::string("HTTP/1.1 204 No Content\r\n\r\n").size());
  EXPECT_EQ(out_[2].response_bytes,
            std::string("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n").size());
  for (const HttpExchange& x : out_) EXPECT_EQ(x.outcome, HttpOutcome::kComplete);
}

TEST_F(ClientParserTest, AResponseCutShortByCloseIsTruncatedWithTheBytesSeen) {
  Feed(kOut, "GET /cut HTTP/1.1\r\n\r\n", 1);
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
  Feed(kIn, head + std::string(40, 'x'), 2);
  EXPECT_TRUE(out_.empty());
  parser_.OnClose(3, &out_);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(out_[0].path, "/cut");
  EXPECT_EQ(out_[0].status, 200u);
  EXPECT_EQ(out_[0].outcome, HttpOutcome::kTruncated);
  EXPECT_EQ(out_[0].response_bytes, head.size() + 40);
  EXPECT_EQ(out_[0].response_end_ns, 2u);
}

TEST_F(ClientParserTest, AResponseWhoseFramingIsLostMidBodyIsTruncated) {
  Feed(kOut, "GET /a HTTP/1.1\r\n\r\n", 1);
  // Chunked, and the chunk-size line is garbage: the parser gives up on this response.
  Feed(kIn, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 2);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(out_[0].path, "/a");
  EXPECT_EQ(out_[0].outcome, HttpOutcome::kTruncated);
  EXPECT_EQ(parser_.stats().garbage, 1u);  // a chunk size that is not hex
  // The next exchange on the connection pairs with its own request.
  Feed(kOut, "GET /b HTTP/1.1\r\n\r\n", 3);
  Feed(kIn, Response(201, "ok"), 4);
  ASSERT_EQ(out_.size(), 2u);
  EXPECT_EQ(out_[1].path, "/b");
  EXPECT_EQ(out_[1].status, 201u);
  EXPECT_EQ(out_[1].outcome, HttpOutcome::kComplete);
}

TEST_F(ClientParserTest, ResponseWithoutLengthEndsAtClose) {
  Feed(kOut, "GET /stream HTTP/1.0\r\n\r\n", 1);
  Feed(kIn, "HTTP/1.0 200 OK\r\n\r\nsome", 2);
  Feed(kIn, "more", 3);
  EXPECT_TRUE(out_.empty());
  parser_.OnClose(9, &out_);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(out_[0].response_bytes, std::string("HTTP/1.0 200 OK\r\n\r\nsomemore").size());
  EXPECT_EQ(out_[0].response_end_ns, 3u);
  EXPECT_EQ(out_[0].outcome, HttpOutcome::kComplete);
}

TEST_F(ParserTest, UnansweredRequestIsReportedAtClose) {
  Feed(kIn, "GET /slow HTTP/1.1\r\n\r\n", 1);
  parser_.OnClose(5, &out_);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(out_[0].path, "/slow");
  EXPECT_EQ(out_[0].status, 0u);
  EXPECT_EQ(out_[0].outcome, HttpOutcome::kConnectionClosed);
}

TEST_F(ParserTest, GarbageIsCountedAndTheParserResyncsAtTheNextMessage) {
  Feed(kIn, "\x16\x03\x01\x02\x00 binary junk", 1);
  EXPECT_EQ(parser_.stats().garbage, 1u);
  Feed(kIn, "more junk that continues", 2);
  Feed(kIn, "GET /ok HTTP/1.1\r\n\r\n", 3);
  Feed(kOut, Response(200, ""), 4);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(out_[0].path, "/ok");
  EXPECT_EQ(parser_.stats().garbage, 1u);
}

TEST_F(ParserTest, MalformedFramingHeadersAreGarbage) {
  Feed(kIn, "POST /a HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", 1);
  EXPECT_EQ(parser_.stats().garbage, 1u);
  Feed(kIn, "POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 2);
  EXPECT_EQ(parser_.stats().garbage, 2u);
  Feed(kIn, "GET /a HTTP/2.0\r\n\r\n", 3);
  EXPECT_EQ(parser_.stats().garbage, 3u);
  EXPECT_TRUE(out_.empty());
}

TEST_F(ParserTest, AbsoluteFormTargetAndFragmentAreReducedToThePath) {
  Feed(kIn, "GET http://example.com:8080/x/y?q=1#f HTTP/1.1\r\n\r\n", 1);
  Feed(kOut, Response(200, ""), 2);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(out_[0].path, "/x/y");
}

TEST_F(ParserTest, LongPathIsCut) {
  Feed(kIn, "GET /" + std::string(1000, 'p') + " HTTP/1.1\r\n\r\n", 1);
  Feed(kOut, Response(200, ""), 2);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(out_[0].path.size(), HttpConnectionParser::kMaxPathBytes);
}

TEST(HttpParserRole, InferredFromWhichDirectionCarriesRequests) {
  HttpConnectionParser p(HttpRole::kUnknown);
  std::vector<HttpExchange> out;
  const std::string req = "GET / HTTP/1.1\r\n\r\n";
  p.OnData(kOut, req, req.size(), {}, 1, &out);
  const std::string resp = Response(200, "");
  p.OnData(kIn, resp, resp.size(), {}, 2, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].role, HttpRole::kClient);
  EXPECT_EQ(p.role(), HttpRole::kClient);
}

TEST_F(ClientParserTest, ContinueResponseIsSkippedAndTheFinalOnePairs) {
  Feed(kOut, "POST /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n", 1);
  Feed(kIn, "HTTP/1.1 100 Continue\r\n\r\n", 2);
  Feed(kOut, "hi", 3);
  Feed(kIn, Response(201, ""), 4);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(out_[0].status, 201u);
}

TEST_F(ParserTest, OversizedHeaderBlockIsCountedAndDropped) {
  std::string req = "GET / HTTP/1.1\r\n";
  while (req.size() < HttpConnectionParser::kMaxHeaderBytes + 100) req += "X-Pad: " + std::string(100, 'a') + "\r\n";
  Feed(kIn, req + "\r\n", 1);
  EXPECT_EQ(parser_.stats().header_too_large, 1u);
  EXPECT_TRUE(out_.empty());
}

TEST_F(ParserTest, RequestHeadersBeyondTheCaptureLoseFramingButKeepPairingAligned) {
  // The request's headers were not fully captured: the stream is lost; its response must not
  // pair with the next request.
  const std::string req = "GET /lost HTTP/1.1\r\nX-Big: " + std::string(4000, 'h') + "\r\n\r\n";
  FeedPartial(kIn, req, 1024, 0, 1);
  EXPECT_EQ(parser_.stats().framing_lost, 1u);
  Feed(kOut, Response(200, "first"), 2);
  Feed(kIn, "GET /next HTTP/1.1\r\n\r\n", 3);
  Feed(kOut, Response(202, ""), 4);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(out_[0].path, "/next");
  EXPECT_EQ(out_[0].status, 202u);
}

TEST_F(ClientParserTest, AGapInTheResponseStreamLeavesOnlyTheNewestRequestPending) {
  Feed(kOut, "GET /1 HTTP/1.1\r\n\r\n", 1);
  Feed(kIn, "HTTP/1.1 200 X\r\nContent-Len", 2);  // response 1 starts, then events are lost:
  parser_.OnData(kIn, {}, 5000, {}, 3, &out_);       // the rest of 1, a request 2 and its response
  Feed(kOut, "GET /2 HTTP/1.1\r\n\r\n", 4);
  Feed(kOut, "GET /3 HTTP/1.1\r\n\r\n", 5);      // request 3 seen after the gap
  Feed(kIn, Response(202, "ok"), 6);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(out_[0].path, "/3");
  EXPECT_EQ(out_[0].status, 202u);
  EXPECT_EQ(out_[0].request_start_ns, 5u);
  EXPECT_EQ(parser_.stats().unanswered_dropped, 2u);  // /1 (its response broke off) and /2
}

TEST(LooksLikeHttpStart, AcceptsRequestAndStatusLinesOnly) {
  EXPECT_TRUE(LooksLikeHttpStart("GET / HTTP/1.1"));
  EXPECT_TRUE(LooksLikeHttpStart("HTTP/1.1 200 OK"));
  EXPECT_TRUE(LooksLikeHttpStart("OPTIONS * HTTP/1.1"));
  EXPECT_FALSE(LooksLikeHttpStart("GETX / HTTP/1.1"));
  EXPECT_FALSE(LooksLikeHttpStart("\x16\x03\x01"));
  EXPECT_FALSE(LooksLikeHttpStart("GE"));  // not yet decidable is not a start
}

}  // namespace
}  // namespace faultline::agent
