// The HTTP/1.1 request parser on its own: framing, limits and the requests
// it refuses, however the bytes are split.
#include "gateway/http/request_parser.h"

#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace convocore::http {
namespace {

using ::testing::HasSubstr;

struct Parsed {
  std::vector<HttpRequest> requests;
  int heads = 0;
  int error_code = 0;
  std::string error_message;
  // Bytes left unconsumed at the end (a partial request).
  std::size_t left = 0;
};

// Feeds `input` in pieces of `piece` bytes (all at once for 0) as the
// server's reader does: unconsumed bytes are given again with the next.
Parsed ParseAll(std::string_view input, std::size_t piece = 0,
                RequestLimits limits = {}) {
  RequestParser parser(limits);
  Parsed out;
  std::string buffer;
  std::size_t fed = 0;
  while (fed < input.size() && out.error_code == 0) {
    const std::size_t n = piece == 0 ? input.size() : piece;
    buffer.append(input.substr(fed, n).data(), std::min(n, input.size() - fed));
    fed += std::min(n, input.size() - fed);
    std::size_t used = 0;
    for (;;) {
      if (used == buffer.size() && !parser.in_request()) break;
      const RequestParser::Result result =
          parser.Parse(std::string_view(buffer).substr(used));
      used += result.consumed;
      if (result.state == RequestParser::State::kNeedMore) break;
      if (result.state == RequestParser::State::kHeadComplete) ++out.heads;
      if (result.state == RequestParser::State::kComplete) {
        out.requests.push_back(parser.TakeRequest());
      }
      if (result.state == RequestParser::State::kError) {
        out.error_code = parser.error_code();
        out.error_message = parser.error_message();
        break;
      }
    }
    buffer.erase(0, used);
  }
  out.left = buffer.size();
  return out;
}

std::string Post(const std::string& body, const std::string& extra = "") {
  return absl::StrCat("POST /webhooks HTTP/1.1\r\nHost: gw\r\n", extra,
                      "Content-Length: ", body.size(), "\r\n\r\n", body);
}

TEST(RequestParserTest, ReadsARequestWithItsHeadersAndBody) {
  Parsed parsed = ParseAll(
      "POST /webhooks?x=1 HTTP/1.1\r\nHost: gw\r\nX-A:  padded \t\r\n"
      "Content-Length: 2\r\n\r\n{}");
  ASSERT_EQ(parsed.error_code, 0) << parsed.error_message;
  ASSERT_EQ(parsed.requests.size(), 1u);
  const HttpRequest& request = parsed.requests[0];
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.path, "/webhooks");
  EXPECT_EQ(request.version, HttpVersion::kHttp11);
  EXPECT_EQ(request.Header("x-a"), "padded");
  EXPECT_EQ(request.body, "{}");
  EXPECT_EQ(parsed.heads, 1);
}

TEST(RequestParserTest, ReadsPipelinedRequestsOneByOne) {
  for (int n : {1, 2, 5, 20, 100}) {
    std::string input;
    for (int i = 0; i < n; ++i) input += Post(absl::StrCat("{\"n\":", i, "}"));
    Parsed parsed = ParseAll(input);
    ASSERT_EQ(parsed.error_code, 0) << parsed.error_message;
    ASSERT_EQ(parsed.requests.size(), static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(parsed.requests[i].body, absl::StrCat("{\"n\":", i, "}"));
    }
    EXPECT_EQ(parsed.left, 0u);
  }
}

TEST(RequestParserTest, AnySplitReadsTheSameRequests) {
  const std::string input =
      Post("{\"a\":1}") + "GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n" +
      "POST /webhooks HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n"
      "\r\n3;ext=1\r\n{\"b\r\n4\r\n\":2}\r\n0\r\nTrailer: x\r\n\r\n";
  for (std::size_t piece = 1; piece <= input.size(); ++piece) {
    Parsed parsed = ParseAll(input, piece);
    ASSERT_EQ(parsed.error_code, 0) << piece << ": " << parsed.error_message;
    ASSERT_EQ(parsed.requests.size(), 3u) << piece;
    EXPECT_EQ(parsed.requests[0].body, "{\"a\":1}");
    EXPECT_EQ(parsed.requests[1].path, "/healthz");
    EXPECT_EQ(parsed.requests[2].body, "{\"b\":2}") << piece;
  }
  // And cut once at every byte.
  for (std::size_t cut = 0; cut <= input.size(); ++cut) {
    RequestParser parser({});
    std::string buffer(input.substr(0, cut));
    std::vector<HttpRequest> requests;
    for (int round = 0; round < 2; ++round) {
      std::size_t used = 0;
      for (;;) {
        if (used == buffer.size() && !parser.in_request()) break;
        auto result = parser.Parse(std::string_view(buffer).substr(used));
        used += result.consumed;
        ASSERT_NE(result.state, RequestParser::State::kError) << cut;
        if (result.state == RequestParser::State::kNeedMore) break;
        if (result.state == RequestParser::State::kComplete) {
          requests.push_back(parser.TakeRequest());
        }
      }
      buffer.erase(0, used);
      buffer += input.substr(cut);
    }
    ASSERT_EQ(requests.size(), 3u) << cut;
    EXPECT_EQ(requests[2].body, "{\"b\":2}") << cut;
  }
}

TEST(RequestParserTest, AHeadWithoutABodyIsCompleteAtOnce) {
  Parsed parsed = ParseAll("GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n");
  ASSERT_EQ(parsed.requests.size(), 1u);
  EXPECT_EQ(parsed.requests[0].body, "");
}

TEST(RequestParserTest, IgnoresEmptyLinesBeforeARequest) {
  Parsed parsed = ParseAll("\r\n\r\nGET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n");
  ASSERT_EQ(parsed.error_code, 0) << parsed.error_message;
  EXPECT_EQ(parsed.requests.size(), 1u);
}

TEST(RequestParserTest, AcceptsAbsoluteFormTargets) {
  Parsed parsed = ParseAll(
      "POST http://gateway.example:8080/webhooks?x HTTP/1.1\r\n"
      "Host: gateway.example:8080\r\nContent-Length: 0\r\n\r\n"
      "GET HTTPS://h HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(parsed.error_code, 0) << parsed.error_message;
  ASSERT_EQ(parsed.requests.size(), 2u);
  EXPECT_EQ(parsed.requests[0].path, "/webhooks");
  EXPECT_EQ(parsed.requests[1].path, "/");
}

TEST(RequestParserTest, AcceptsARepeatedEqualContentLength) {
  Parsed parsed =
      ParseAll(Post("{}", "Content-Length: 2\r\n") +
               "POST /webhooks HTTP/1.1\r\nHost: gw\r\nContent-Length: 2, 2"
               "\r\n\r\n{}");
  ASSERT_EQ(parsed.error_code, 0) << parsed.error_message;
  EXPECT_EQ(parsed.requests.size(), 2u);
}

TEST(RequestParserTest, Http10NeedsNoHost) {
  Parsed parsed = ParseAll("GET /healthz HTTP/1.0\r\n\r\n");
  ASSERT_EQ(parsed.error_code, 0) << parsed.error_message;
  ASSERT_EQ(parsed.requests.size(), 1u);
  EXPECT_EQ(parsed.requests[0].version, HttpVersion::kHttp10);
}

struct Refused {
  std::string name;
  std::string input;
  int code;
  std::string message;
};

class RefusedRequestTest : public ::testing::TestWithParam<Refused> {};

TEST_P(RefusedRequestTest, IsAnsweredWithItsCodeInOurWords) {
  const Refused& refused = GetParam();
  for (std::size_t piece : {std::size_t{0}, std::size_t{1}, std::size_t{7},
                            std::size_t{4096}}) {
    Parsed parsed = ParseAll(refused.input, piece);
    EXPECT_EQ(parsed.error_code, refused.code) << piece << " "
                                               << parsed.error_message;
    EXPECT_THAT(parsed.error_message, HasSubstr(refused.message)) << piece;
    EXPECT_TRUE(parsed.requests.empty());
  }
}

std::string ManyHeaders(int n) {
  std::string headers;
  for (int i = 0; i < n; ++i) absl::StrAppend(&headers, "X-", i, ": v\r\n");
  return headers;
}

INSTANTIATE_TEST_SUITE_P(
    Framing, RefusedRequestTest,
    ::testing::Values(
        Refused{"TwoDifferentContentLengths",
                Post("{}", "Content-Length: 3\r\n"), 400,
                "conflicting Content-Length"},
        Refused{"AListOfDifferentContentLengths",
                "POST /webhooks HTTP/1.1\r\nHost: gw\r\nContent-Length: 2, 3"
                "\r\n\r\n{}",
                400, "conflicting Content-Length"},
        Refused{"NegativeContentLength",
                "POST /webhooks HTTP/1.1\r\nHost: gw\r\nContent-Length: -1"
                "\r\n\r\n",
                400, "invalid Content-Length \"-1\""},
        Refused{"ContentLengthNotANumber",
                "POST /webhooks HTTP/1.1\r\nHost: gw\r\nContent-Length: 1e3"
                "\r\n\r\n",
                400, "invalid Content-Length"},
        Refused{"ContentLengthBeyond64Bits",
                "POST /webhooks HTTP/1.1\r\nHost: gw\r\nContent-Length: "
                "99999999999999999999999\r\n\r\n",
                413, "larger than the limit of 1048576 bytes"},
        Refused{"ContentLengthOverTheLimit",
                "POST /webhooks HTTP/1.1\r\nHost: gw\r\nContent-Length: "
                "1048577\r\n\r\n",
                413, "larger than the limit"},
        Refused{"OversizedChunkSize",
                "POST /webhooks HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: "
                "chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFFFFFF\r\n",
                400, "chunk size \"FFFFFFFFFFFFFFFFFFFFFFFF\" is too large"},
        Refused{"ChunksOverTheLimit",
                "POST /webhooks HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: "
                "chunked\r\n\r\n100001\r\n",
                413, "larger than the limit"},
        Refused{"InvalidChunkSize",
                "POST /webhooks HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: "
                "chunked\r\n\r\nzz\r\n",
                400, "invalid chunk size"},
        Refused{"ChunkWithoutItsCrlf",
                "POST /webhooks HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: "
                "chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
                400, "not followed by CRLF"},
        Refused{"TransferEncodingAndContentLength",
                Post("{}", "Transfer-Encoding: chunked\r\n"), 400,
                "both Transfer-Encoding and Content-Length"},
        Refused{"UnknownTransferCoding",
                "POST /webhooks HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: "
                "gzip, chunked\r\n\r\n",
                501, "transfer coding \"gzip\" is not supported"},
        Refused{"BareLfInTheHead",
                "POST /webhooks HTTP/1.1\nHost: gw\nContent-Length: 0\n\n",
                400, "bare LF"},
        Refused{"BareLfAfterTheRequestLine",
                "GET /healthz HTTP/1.1\r\nHost: gw\n\r\n", 400, "bare LF"},
        Refused{"ObsFold",
                "GET /healthz HTTP/1.1\r\nHost: gw\r\nX-A: one\r\n two\r\n\r\n",
                400, "obsolete line folding"},
        Refused{"WhitespaceBeforeTheColon",
                "GET /healthz HTTP/1.1\r\nHost : gw\r\n\r\n", 400,
                "invalid header name \"Host \""},
        Refused{"ControlCharacterInAValue",
                "GET /healthz HTTP/1.1\r\nHost: g\rw\r\n\r\n", 400,
                "control character"},
        Refused{"Http11WithoutHost", "GET /healthz HTTP/1.1\r\n\r\n", 400,
                "without a Host header"},
        Refused{"TwoHosts",
                "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400,
                "more than one Host"},
        Refused{"UnsupportedVersion", "GET /healthz HTTP/2.0\r\n\r\n", 505,
                "HTTP version \"HTTP/2.0\" is not supported"},
        Refused{"Garbage", "NOT HTTP AT ALL\r\n\r\n", 400,
                "malformed HTTP request line"},
        Refused{"AMegabyteHeaderLine",
                "GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Big: " +
                    std::string(1 << 20, 'x') + "\r\n\r\n",
                431, "larger than the limit of 65536 bytes"},
        Refused{"A200KilobyteHeader",
                "GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Big: " +
                    std::string(200 << 10, 'x') + "\r\n\r\n",
                431, "larger than the limit of 65536 bytes"},
        Refused{"AMegabyteTarget",
                "GET /" + std::string(1 << 20, 't') +
                    " HTTP/1.1\r\nHost: gw\r\n\r\n",
                414, "request line is longer than the limit of 65536"},
        Refused{"ARequestLineJustOverTheLimit",
                "GET /" + std::string(64 << 10, 't') + " HTTP/1.1\r\n",
                414, "request line is longer than the limit of 65536"},
        Refused{"TenThousandHeaders",
                "GET /healthz HTTP/1.1\r\nHost: gw\r\n" + ManyHeaders(10000) +
                    "\r\n",
                431, "more than 256 header fields"}),
    [](const ::testing::TestParamInfo<Refused>& info) {
      return info.param.name;
    });

TEST(RequestParserTest, ErrorsQuoteAtMostAFewBytesOfTheClient) {
  Parsed parsed = ParseAll(
      "POST /webhooks HTTP/1.1\r\nHost: gw\r\nContent-Length: " +
      std::string(5000, 'z') + "\r\n\r\n");
  EXPECT_EQ(parsed.error_code, 400);
  EXPECT_LT(parsed.error_message.size(), 120u);
}

}  // namespace
}  // namespace convocore::http
