#include "gateway/log/json_string.h"

#include <string>
#include <string_view>

#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"

namespace convocore::log {
namespace {

std::string JsonString(std::string_view text) {
  std::string out;
  AppendJsonString(&out, text);
  return out;
}

// What a strict JSON parser reads back from JsonString(text).
std::string RoundTrip(const std::string& quoted) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(quoted.c_str(),
                                                   quoted.size());
  EXPECT_FALSE(doc.HasParseError())
      << rapidjson::GetParseError_En(doc.GetParseError()) << " in " << quoted;
  if (doc.HasParseError() || !doc.IsString()) return "<invalid>";
  return std::string(doc.GetString(), doc.GetStringLength());
}

TEST(JsonStringTest, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(JsonString("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(JsonString("line\nfeed\ttab\r"), R"("line\nfeed\ttab\r")");
  EXPECT_EQ(JsonString(std::string("nul\0bell\a", 9)),
            R"("nul\u0000bell\u0007")");
  EXPECT_EQ(JsonString("\x7f"), R"("\u007f")");
}

TEST(JsonStringTest, KeepsValidUtf8) {
  const std::string text = "caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80";
  EXPECT_EQ(JsonString(text), "\"" + text + "\"");
  EXPECT_EQ(RoundTrip(JsonString(text)), text);
}

TEST(JsonStringTest, ReplacesInvalidUtf8) {
  const std::string replacement = "\xef\xbf\xbd";
  // A lone continuation byte, a truncated sequence, an overlong form, a
  // surrogate, and a code point above U+10FFFF.
  EXPECT_EQ(RoundTrip(JsonString("a\x80z")), "a" + replacement + "z");
  EXPECT_EQ(RoundTrip(JsonString("a\xc3")), "a" + replacement);
  EXPECT_EQ(RoundTrip(JsonString("\xc0\xaf")), replacement + replacement);
  EXPECT_EQ(RoundTrip(JsonString("\xed\xa0\x80")),
            replacement + replacement + replacement);
  EXPECT_EQ(RoundTrip(JsonString("\xf4\x90\x80\x80")),
            replacement + replacement + replacement + replacement);
}

TEST(JsonStringTest, EveryByteStringIsValidJson) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  RoundTrip(JsonString(all));
}

}  // namespace
}  // namespace convocore::log
