#include "gateway/log/logger.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"

namespace convocore::log {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const absl::Time kTime = absl::FromUnixMicros(1718035200123456);

TEST(LoggerTest, ParsesLevelsAndFormats) {
  EXPECT_EQ(*ParseLevel("DEBUG"), Level::kDebug);
  EXPECT_EQ(*ParseLevel("warn"), Level::kWarning);
  EXPECT_EQ(*ParseFormat("json"), Format::kJson);
  EXPECT_THAT(ParseLevel("loud").status().message(), HasSubstr("loud"));
  EXPECT_FALSE(ParseFormat("xml").ok());
}

TEST(LoggerTest, PlainLineHasTimeLevelMessageAndFields) {
  EXPECT_EQ(FormatLine(Format::kPlain, kTime, Level::kInfo, "listening",
                       {{"port", 8080}, {"address", "0.0.0.0"}}),
            "2024-06-10T16:00:00.123456Z INFO listening port=8080 "
            "address=0.0.0.0");
}

TEST(LoggerTest, PlainValuesWithSpacesOrQuotesAreQuoted) {
  EXPECT_EQ(FormatLine(Format::kPlain, kTime, Level::kError, "two\nlines",
                       {{"error", "a \"b\""}, {"empty", ""}}),
            "2024-06-10T16:00:00.123456Z ERROR two lines "
            "error=\"a \\\"b\\\"\" empty=\"\"");
}

TEST(LoggerTest, JsonLineParsesWithTypedFields) {
  const std::string line =
      FormatLine(Format::kJson, kTime, Level::kWarning, "he said \"hi\"",
                 {{"count", 3},
                  {"ok", true},
                  {"ratio", 0.5},
                  {"text", "a\nb"},
                  {"took", absl::Milliseconds(1500)}});
  rapidjson::Document doc;
  doc.Parse(line.c_str());
  ASSERT_FALSE(doc.HasParseError()) << line;
  EXPECT_STREQ(doc["time"].GetString(), "2024-06-10T16:00:00.123456Z");
  EXPECT_STREQ(doc["level"].GetString(), "warning");
  EXPECT_STREQ(doc["message"].GetString(), "he said \"hi\"");
  EXPECT_EQ(doc["count"].GetInt(), 3);
  EXPECT_TRUE(doc["ok"].GetBool());
  EXPECT_EQ(doc["ratio"].GetDouble(), 0.5);
  EXPECT_STREQ(doc["text"].GetString(), "a\nb");
  EXPECT_STREQ(doc["took"].GetString(), "1.5s");
}

TEST(LoggerTest, FiltersByLevel) {
  std::vector<std::string> lines;
  SetSinkForTesting(
      [&lines](std::string_view line) { lines.emplace_back(line); });
  Configure(Level::kWarning, Format::kPlain);
  Debug("d");
  Info("i");
  Warning("w");
  Error("e");
  Configure(Level::kInfo, Format::kPlain);
  SetSinkForTesting(nullptr);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[0], HasSubstr(" WARNING w\n"));
  EXPECT_THAT(lines[1], HasSubstr(" ERROR e\n"));
}

}  // namespace
}  // namespace convocore::log
