// Tests of the pieces the translator is built from: the bounded JSON parse,
// paths and quoting in messages, the content id, the secret check and the
// schema read from the contract.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "convocore/webhooks/v1/events.pb.h"
#include "gateway/core/content_id.h"
#include "gateway/core/json_document.h"
#include "gateway/core/json_path.h"
#include "gateway/core/payload_schema.h"
#include "gateway/core/secret_verifier.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace convocore::gateway {
namespace {

namespace v1 = ::convocore::webhooks::v1;
using ::testing::HasSubstr;

// ---------------------------------------------------------------------------
// JsonDocument: each limit is inclusive.

absl::Status ParseWith(absl::string_view text, JsonLimits limits) {
  JsonDocument document;
  return document.Parse(text, limits);
}

TEST(JsonDocumentTest, LimitsAreInclusive) {
  const JsonLimits limits{
      .max_depth = 2, .max_keys = 2, .max_values = 4, .max_string_bytes = 3};
  EXPECT_TRUE(ParseWith(R"({"ab":{"c":"xyz"}})", limits).ok());
  EXPECT_THAT(ParseWith(R"({"a":{"b":[]}})", limits).message(),
              HasSubstr("nested deeper than 2 levels"));
  EXPECT_THAT(ParseWith(R"({"a":1,"b":2,"c":3})", limits).message(),
              HasSubstr("more than 2 object keys"));
  EXPECT_THAT(ParseWith(R"([1,2,3,4])", limits).message(),
              HasSubstr("more than 4 values"));
  EXPECT_THAT(ParseWith(R"({"abcd":1})", limits).message(),
              HasSubstr("longer than 3 bytes"));
  EXPECT_THAT(ParseWith(R"(["abcd"])", limits).message(),
              HasSubstr("longer than 3 bytes"));
}

TEST(JsonDocumentTest, DeepArraysFailWithoutExhaustingTheStack) {
  const std::string deep = std::string(1'000'000, '[');
  EXPECT_THAT(ParseWith(deep, {}).message(),
              HasSubstr("nested deeper than 32 levels"));
}

TEST(JsonDocumentTest, SurrogatePairsDecodeAndLoneOnesFail) {
  JsonDocument document;
  ASSERT_TRUE(document.Parse(R"(["\ud83d\ude00"])", {}).ok());
  EXPECT_EQ(StringOf(document.root()[0]), "\xF0\x9F\x98\x80");
  EXPECT_FALSE(ParseWith(R"(["\udfff"])", {}).ok());
  EXPECT_FALSE(ParseWith(R"(["\ud800"])", {}).ok());
  EXPECT_FALSE(ParseWith("[\"\xED\xA0\x80\"]", {}).ok());  // raw surrogate
}

TEST(JsonDocumentTest, NumbersAreKeptAsTheirText) {
  const std::vector<std::string> numbers = {
      "0",         "-0",       "1718035200000", "9007199254740993",
      "18446744073709551616",  "-9223372036854775808",
      "0.1",       "0.10",     "2.2250738585072011e-308",
      "0e-50",     "1e3",      "1E+3",          "1e400",
      "-1e400",    "123456789012345678901234567890.5"};
  JsonDocument document;
  ASSERT_TRUE(
      document.Parse(absl::StrCat("[", absl::StrJoin(numbers, ", "), "]"), {})
          .ok());
  const rapidjson::Value& n = document.root();
  ASSERT_EQ(n.Size(), numbers.size());
  for (rapidjson::SizeType i = 0; i < n.Size(); ++i) {
    EXPECT_TRUE(IsJsonNumber(n[i])) << numbers[i];
    EXPECT_FALSE(IsJsonString(n[i])) << numbers[i];
    EXPECT_EQ(JsonTypeName(n[i]), "number");
    EXPECT_EQ(JsonNumberText(n[i]), numbers[i]);
  }
}

TEST(JsonDocumentTest, HugeNumbersNextToStringsAndMalformedOnes) {
  JsonDocument document;
  ASSERT_TRUE(document
                  .Parse(R"({"1e400":"1e400 \"1e999\"","n":[-1e400,1e-400,)"
                         R"(1E+999,0.5]})",
                         {})
                  .ok());
  const rapidjson::Value& root = document.root();
  EXPECT_EQ(StringOf(root["1e400"]), R"(1e400 "1e999")");
  const rapidjson::Value& n = root["n"];
  ASSERT_EQ(n.Size(), 4u);
  EXPECT_EQ(JsonNumberText(n[0]), "-1e400");
  EXPECT_EQ(JsonNumberText(n[1]), "1e-400");
  EXPECT_EQ(JsonNumberText(n[2]), "1E+999");
  EXPECT_EQ(JsonNumberText(n[3]), "0.5");
  // Malformed numbers stay malformed, huge or not.
  for (const char* bad : {"[1e4e400]", "[01e400]", "[1.e400]", "[1e+]",
                          "[-e400]", "[1e400.5]", "[--1e400]"}) {
    JsonDocument d;
    EXPECT_FALSE(d.Parse(bad, {}).ok()) << bad;
  }
  std::string long_digits(400, '7');
  JsonDocument d;
  ASSERT_TRUE(d.Parse(absl::StrCat("[", long_digits, "]"), {}).ok());
  EXPECT_EQ(JsonNumberText(d.root()[0]), long_digits);
}

TEST(JsonDocumentTest, StringsOfDigitsStayStrings) {
  JsonDocument document;
  ASSERT_TRUE(document.Parse(R"(["1", "", "\u00ff"])", {}).ok());
  for (const rapidjson::Value& v : document.root().GetArray()) {
    EXPECT_TRUE(IsJsonString(v));
    EXPECT_FALSE(IsJsonNumber(v));
    EXPECT_EQ(JsonTypeName(v), "string");
  }
}

TEST(JsonDocumentTest, MessagesNameTheByteAndNeverQuoteTheInput) {
  const absl::Status status = ParseWith(R"({"secret-ish": tru})", {});
  EXPECT_THAT(status.message(), HasSubstr("body: invalid JSON at byte"));
  EXPECT_THAT(status.message(), testing::Not(HasSubstr("secret-ish")));
}

TEST(JsonDocumentTest, DomLargerThanTheInlineArenaStillParses) {
  std::string big = "[";
  for (int i = 0; i < 5000; ++i) absl::StrAppend(&big, "\"value ", i, "\",");
  big.back() = ']';
  JsonDocument document;
  ASSERT_TRUE(document.Parse(big, {}).ok());
  EXPECT_EQ(document.root().Size(), 5000u);
}

// ---------------------------------------------------------------------------
// JsonPath and QuoteForMessage.

TEST(JsonPathTest, RendersKeysAndIndexes) {
  const JsonPath root;
  const JsonPath payload(root, "payload");
  const JsonPath data(payload, "formData");
  const JsonPath item(data, 2);
  const JsonPath odd(item, "a b\"c");
  EXPECT_EQ(root.ToString(), "body");
  EXPECT_EQ(payload.ToString(), "payload");
  EXPECT_EQ(item.ToString(), "payload.formData[2]");
  EXPECT_EQ(odd.ToString(), R"(payload.formData[2]["a b\"c"])");
}

TEST(QuoteForMessageTest, EscapesAndCutsAtACharacterBoundary) {
  EXPECT_EQ(QuoteForMessage("a\nb\\\x01"), R"("a\u000ab\\\u0001")");
  // "é" is two bytes; a cut after 2 bytes must not split it.
  EXPECT_EQ(QuoteForMessage("aéb", 2), "\"a\"...");
  EXPECT_EQ(QuoteForMessage("aéb", 3), "\"aé\"...");
}

// ---------------------------------------------------------------------------
// ContentId.

std::string IdOf(absl::string_view type, absl::string_view payload) {
  JsonDocument document;
  EXPECT_TRUE(document.Parse(payload, {}).ok());
  const JsonPath root;
  auto id = ContentId(type, document.root(), JsonPath(root, "payload"),
                      "workspaceSecret");
  EXPECT_TRUE(id.ok()) << id.status();
  return id.value_or("");
}

TEST(ContentIdTest, NumbersCountByValue) {
  EXPECT_EQ(IdOf("t", R"({"n":1})"), IdOf("t", R"({"n":1.0})"));
  EXPECT_EQ(IdOf("t", R"({"n":1})"), IdOf("t", R"({"n":1e0})"));
  EXPECT_EQ(IdOf("t", R"({"n":0})"), IdOf("t", R"({"n":-0.0})"));
  EXPECT_EQ(IdOf("t", R"({"n":-3})"), IdOf("t", R"({"n":-3.0})"));
  EXPECT_NE(IdOf("t", R"({"n":1})"), IdOf("t", R"({"n":1.5})"));
  EXPECT_NE(IdOf("t", R"({"n":1})"), IdOf("t", R"({"n":"1"})"));
}

TEST(ContentIdTest, EncodingIsUnambiguous) {
  EXPECT_NE(IdOf("t", R"({"a":"b"})"), IdOf("t", R"({"ab":""})"));
  EXPECT_NE(IdOf("t", R"({"a":["b","c"]})"), IdOf("t", R"({"a":["bc"]})"));
  EXPECT_NE(IdOf("t", R"({"a":[[]]})"), IdOf("t", R"({"a":[]})"));
  EXPECT_NE(IdOf("t", R"({"a":{}})"), IdOf("t", R"({"a":[]})"));
  EXPECT_NE(IdOf("t", R"({"a":null})"), IdOf("t", R"({})"));
  EXPECT_NE(IdOf("ab", R"({})"), IdOf("a", R"({"b":null})"));
}

TEST(ContentIdTest, SecretOnlySkippedAtTheTop) {
  EXPECT_EQ(IdOf("t", R"({"a":1,"workspaceSecret":"x"})"),
            IdOf("t", R"({"a":1})"));
  EXPECT_NE(IdOf("t", R"({"a":{"workspaceSecret":"x"}})"),
            IdOf("t", R"({"a":{}})"));
}

// ---------------------------------------------------------------------------
// SecretVerifier.

TEST(SecretVerifierTest, MatchesAnyConfiguredSecretExactly) {
  auto verifier = SecretVerifier::Create({"old-secret", "new-secret"});
  ASSERT_TRUE(verifier.ok());
  EXPECT_TRUE(verifier->Matches("old-secret"));
  EXPECT_TRUE(verifier->Matches("new-secret"));
  EXPECT_FALSE(verifier->Matches("new-secre"));
  EXPECT_FALSE(verifier->Matches("new-secret "));
  EXPECT_FALSE(verifier->Matches(""));
  EXPECT_FALSE(verifier->Matches(absl::string_view("new-secret\0", 11)));
}

TEST(SecretVerifierTest, RefusesNoOrEmptySecrets) {
  EXPECT_FALSE(SecretVerifier::Create({}).ok());
  EXPECT_FALSE(SecretVerifier::Create({"a", ""}).ok());
}

// ---------------------------------------------------------------------------
// PayloadSchema.

// The sender's type strings the contract knows: the names of Event's
// payload cases but the one for unknown types.
std::vector<std::string> KnownTypes() {
  std::vector<std::string> types;
  const auto* oneof = v1::Event::descriptor()->FindOneofByName("payload");
  for (int i = 0; i < oneof->field_count(); ++i) {
    if (oneof->field(i)->name() != "other_json") {
      types.push_back(oneof->field(i)->name());
    }
  }
  return types;
}

TEST(PayloadSchemaTest, BuildsFromTheContract) {
  const auto& schema = PayloadSchema::Get();
  ASSERT_TRUE(schema.ok()) << schema.status();
  EXPECT_EQ(KnownTypes().size(), 15u);
  for (const std::string& type : KnownTypes()) {
    EXPECT_NE(schema->Find(type), nullptr) << type;
  }
  // Every EventType but UNSPECIFIED and OTHER has its type.
  const auto* event_types = v1::EventType_descriptor();
  for (int i = 0; i < event_types->value_count(); ++i) {
    const int number = event_types->value(i)->number();
    if (number == v1::EVENT_TYPE_UNSPECIFIED ||
        number == v1::EVENT_TYPE_OTHER) {
      continue;
    }
    bool found = false;
    for (const std::string& type : KnownTypes()) {
      found |= schema->Find(type)->event_type == number;
    }
    EXPECT_TRUE(found) << event_types->value(i)->name();
  }
  EXPECT_EQ(schema->Find("other"), nullptr);
}

TEST(PayloadSchemaTest, RulesFollowTheSpec) {
  const PayloadRules* agent = PayloadSchema::Get()->Find("agent_created");
  ASSERT_NE(agent, nullptr);
  EXPECT_EQ(agent->Find("agentId")->kind, FieldKind::kRequiredString);
  EXPECT_EQ(agent->Find("agentName")->kind, FieldKind::kOptionalString);
  EXPECT_EQ(agent->Find("agentPlatform")->kind, FieldKind::kOptionalEnum);
  EXPECT_EQ(agent->Find("operation")->kind, FieldKind::kRequiredEnum);
  EXPECT_EQ(agent->Find("createdAt")->kind, FieldKind::kCreatedAt);
  EXPECT_EQ(agent->Find("agentPlatformRaw"), nullptr);
  EXPECT_EQ(agent->Find("workspaceSecret"), nullptr);
  const PayloadRules* form = PayloadSchema::Get()->Find("form_submitted");
  EXPECT_EQ(form->Find("formData")->kind, FieldKind::kRequiredObject);
  EXPECT_EQ(form->Find("formType")->kind, FieldKind::kRequiredEnum);
}

TEST(PayloadSchemaTest, SenderStringsAreDistinct) {
  const EnumStrings* channels =
      PayloadSchema::Get()->StringsOf(v1::Channel_descriptor());
  ASSERT_NE(channels, nullptr);
  EXPECT_EQ(channels->numbers.at("webchat"), v1::CHANNEL_WEBCHAT);
  EXPECT_EQ(channels->numbers.at("web-chat"), v1::CHANNEL_WEB_CHAT);
  EXPECT_EQ(channels->numbers.size(), 12u);
}

}  // namespace
}  // namespace convocore::gateway
