#include "gateway/http/http_api.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"

namespace convocore::http {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

rapidjson::Document ParseJson(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(text.c_str(), text.size());
  EXPECT_FALSE(doc.HasParseError()) << text;
  return doc;
}

TEST(MatchRouteTest, KnownPathsAndMethods) {
  EXPECT_EQ(MatchRoute("POST", "/webhooks").route, Route::kWebhooks);
  EXPECT_TRUE(MatchRoute("POST", "/webhooks").method_allowed);
  EXPECT_FALSE(MatchRoute("GET", "/webhooks").method_allowed);
  EXPECT_EQ(MatchRoute("GET", "/webhooks").allowed_method, "POST");
  EXPECT_TRUE(MatchRoute("GET", "/healthz").method_allowed);
  EXPECT_TRUE(MatchRoute("GET", "/readyz").method_allowed);
  EXPECT_TRUE(MatchRoute("GET", "/metrics").method_allowed);
  EXPECT_FALSE(MatchRoute("DELETE", "/metrics").method_allowed);
}

TEST(MatchRouteTest, UnknownPathsAreNotFound) {
  EXPECT_EQ(MatchRoute("POST", "/webhooks/").route, Route::kNotFound);
  EXPECT_EQ(MatchRoute("POST", "/").route, Route::kNotFound);
  EXPECT_EQ(MatchRoute("GET", "/WEBHOOKS").route, Route::kNotFound);
  EXPECT_EQ(RouteLabel(Route::kNotFound), "other");
}

TEST(ContentTypeTest, JsonVariantsAreJson) {
  EXPECT_TRUE(IsJsonContentType("application/json"));
  EXPECT_TRUE(IsJsonContentType("application/json; charset=utf-8"));
  EXPECT_TRUE(IsJsonContentType("Application/JSON;charset=\"UTF-8\""));
  EXPECT_TRUE(IsJsonContentType("application/vnd.convocore+json"));
  EXPECT_TRUE(IsJsonContentType(" application/json ; foo=bar"));
}

TEST(ContentTypeTest, OtherTypesAreNot) {
  EXPECT_FALSE(IsJsonContentType("text/plain"));
  EXPECT_FALSE(IsJsonContentType("application/x-www-form-urlencoded"));
  EXPECT_FALSE(IsJsonContentType("application/jsonp"));
  EXPECT_FALSE(IsJsonContentType("text/json"));
  EXPECT_FALSE(IsJsonContentType(""));
  EXPECT_FALSE(IsJsonContentType("application/json; charset=latin1"));
}

TEST(ReasonPhraseTest, NamesEveryCodeTheServerSends) {
  EXPECT_EQ(ReasonPhrase(200), "OK");
  EXPECT_EQ(ReasonPhrase(400), "Bad Request");
  EXPECT_EQ(ReasonPhrase(413), "Content Too Large");
  EXPECT_EQ(ReasonPhrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(ReasonPhrase(501), "Not Implemented");
  EXPECT_EQ(ReasonPhrase(503), "Service Unavailable");
  EXPECT_EQ(ReasonPhrase(505), "HTTP Version Not Supported");
  EXPECT_EQ(ReasonPhrase(299), "Unknown");
}

TEST(ReasonPhraseTest, ErrorBodiesNameTheFramingCodes) {
  EXPECT_NE(ErrorReply(501, "x").body.find("\"UNIMPLEMENTED\""),
            std::string::npos);
  EXPECT_NE(ErrorReply(505, "x").body.find("\"HTTP_VERSION_NOT_SUPPORTED\""),
            std::string::npos);
}

TEST(StatusMappingTest, EveryIngestErrorHasItsCode) {
  EXPECT_EQ(HttpCodeForStatus(absl::InvalidArgumentError("x")), 400);
  EXPECT_EQ(HttpCodeForStatus(absl::UnauthenticatedError("x")), 401);
  EXPECT_EQ(HttpCodeForStatus(absl::ResourceExhaustedError("x")), 413);
  EXPECT_EQ(HttpCodeForStatus(absl::UnavailableError("x")), 503);
  EXPECT_EQ(HttpCodeForStatus(absl::AbortedError("x")), 503);
  EXPECT_EQ(HttpCodeForStatus(absl::DeadlineExceededError("x")), 503);
  EXPECT_EQ(HttpCodeForStatus(absl::InternalError("x")), 500);
}

TEST(RepliesTest, AcceptedReplyIsJson) {
  const Reply reply = AcceptedReply(42, "abc\"def", true);
  EXPECT_EQ(reply.code, 200);
  rapidjson::Document doc = ParseJson(reply.body);
  EXPECT_EQ(doc["sequence"].GetUint64(), 42u);
  EXPECT_STREQ(doc["id"].GetString(), "abc\"def");
  EXPECT_TRUE(doc["duplicate"].GetBool());
}

TEST(RepliesTest, ErrorMessagesAreEscaped) {
  const std::string message =
      "payload.createdAt: expected an integer, got string \"a\\b\"\n\x01\xff";
  const Reply reply = StatusReply(absl::InvalidArgumentError(message));
  EXPECT_EQ(reply.code, 400);
  rapidjson::Document doc = ParseJson(reply.body);
  EXPECT_EQ(doc["error"]["code"].GetInt(), 400);
  EXPECT_STREQ(doc["error"]["status"].GetString(), "INVALID_ARGUMENT");
  EXPECT_EQ(std::string(doc["error"]["message"].GetString()),
            "payload.createdAt: expected an integer, got string \"a\\b\"\n\x01"
            "\xef\xbf\xbd");
}

TEST(RepliesTest, NotFoundCutsALongPath) {
  const Reply reply = NotFoundReply("/" + std::string(10'000, 'a'));
  EXPECT_EQ(reply.code, 404);
  EXPECT_LT(reply.body.size(), 200u);
  EXPECT_THAT(reply.body, HasSubstr("aaa...\\\""));
  ParseJson(reply.body);
}

TEST(RepliesTest, NotFoundNeverEchoesTheQuery) {
  const Reply reply = NotFoundReply("/webhook?token=s3cr3t");
  EXPECT_EQ(reply.code, 404);
  EXPECT_THAT(reply.body, HasSubstr("no such path \\\"/webhook\\\""));
  EXPECT_THAT(reply.body, Not(HasSubstr("s3cr3t")));
}

TEST(RepliesTest, MethodNotAllowedNamesTheMethod) {
  const Reply reply =
      MethodNotAllowedReply("GET", MatchRoute("GET", "/webhooks"));
  EXPECT_EQ(reply.code, 405);
  EXPECT_EQ(reply.allow, "POST");
  EXPECT_EQ(ParseJson(reply.body)["error"]["status"].GetString(),
            std::string("METHOD_NOT_ALLOWED"));
}

TEST(RepliesTest, ReadinessReplies) {
  EXPECT_EQ(ReadinessReply(absl::OkStatus()).code, 200);
  const Reply reply = ReadinessReply(absl::UnavailableError("disk full"));
  EXPECT_EQ(reply.code, 503);
  EXPECT_STREQ(ParseJson(reply.body)["reason"].GetString(), "disk full");
  EXPECT_EQ(HealthReply().code, 200);
  EXPECT_EQ(UnsupportedMediaTypeReply("text/plain").code, 415);
  EXPECT_EQ(TooLargeReply(1024).code, 413);
}

TEST(SerializeResponseTest, WritesTheStatusLineHeadersAndBody) {
  EXPECT_EQ(SerializeResponse(AcceptedReply(7, "abc", false), "HTTP/1.1", "OK",
                              /*close=*/false),
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: application/json\r\n"
            "Connection: Keep-Alive\r\n"
            "Content-Length: 43\r\n"
            "\r\n"
            R"({"sequence":7,"id":"abc","duplicate":false})");
}

TEST(SerializeResponseTest, NamesTheAllowedMethodAndTheClose) {
  const Reply reply =
      MethodNotAllowedReply("GET", MatchRoute("GET", "/webhooks"));
  const std::string bytes =
      SerializeResponse(reply, "HTTP/1.0", "Method Not Allowed",
                        /*close=*/true);
  EXPECT_TRUE(absl::StartsWith(bytes, "HTTP/1.0 405 Method Not Allowed\r\n"))
      << bytes;
  EXPECT_THAT(bytes, HasSubstr("\r\nAllow: POST\r\n"));
  EXPECT_THAT(bytes, HasSubstr("\r\nConnection: Close\r\n"));
  EXPECT_TRUE(
      absl::EndsWith(bytes, absl::StrCat("Content-Length: ", reply.body.size(),
                                         "\r\n\r\n", reply.body)))
      << bytes;
}

TEST(SerializeResponseTest, KeepsTheMetricsContentType) {
  const std::string bytes = SerializeResponse(
      Reply{.body = "x 1\n", .content_type = kMetricsContentType, .allow = {}},
      "HTTP/1.1", "OK", /*close=*/false);
  EXPECT_THAT(bytes, HasSubstr("\r\nContent-Type: " +
                               std::string(kMetricsContentType) + "\r\n"));
  EXPECT_THAT(bytes, Not(HasSubstr("Allow:")));
}

}  // namespace
}  // namespace convocore::http
