// Tests of the translator against the sender's spec: every sample with every
// field, realistic variants, every class of bad input, the order of checks,
// and that the secret never comes out of it.
#include "gateway/core/translator.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/strings/substitute.h"
#include "absl/time/time.h"
#include "convocore/webhooks/v1/events.pb.h"
#include "gateway/core/payload_schema.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace convocore::gateway {
namespace {

namespace v1 = ::convocore::webhooks::v1;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::Not;

// The spec samples' secret, and a second one as during a rotation.
constexpr char kSecret[] = "your_workspace_secret";
constexpr char kNextSecret[] = "next_workspace_secret";
const absl::Time kReceiveTime = absl::FromUnixMillis(1718035201234);

MATCHER_P(EqualsProto, expected, "") {
  std::string diff;
  google::protobuf::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&diff);
  if (differencer.Compare(expected, arg)) return true;
  *result_listener << diff;
  return false;
}

MATCHER_P2(StatusIs, code, message_part, "") {
  if (arg.status().code() == code &&
      absl::StrContains(arg.status().message(), message_part)) {
    return true;
  }
  *result_listener << "status is " << arg.status();
  return false;
}

std::string ReadSample(absl::string_view file) {
  std::ifstream in(absl::StrCat(GATEWAY_TESTDATA_DIR, "/samples/", file),
                   std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

v1::Event ParseEvent(absl::string_view text) {
  v1::Event event;
  EXPECT_TRUE(
      google::protobuf::TextFormat::ParseFromString(std::string(text), &event))
      << text;
  return event;
}

// What every translation of these tests should produce but for the id.
v1::Event ExpectedEvent(absl::string_view text) {
  v1::Event event = ParseEvent(text);
  event.mutable_receive_time()->set_seconds(1718035201);
  event.mutable_receive_time()->set_nanos(234'000'000);
  return event;
}

const Translator& DefaultTranslator() {
  static const Translator* translator = [] {
    auto t = Translator::Create({.secrets = {kSecret, kNextSecret}});
    EXPECT_TRUE(t.ok()) << t.status();
    return t->release();
  }();
  return *translator;
}

absl::StatusOr<Translation> Translate(absl::string_view body) {
  return DefaultTranslator().Translate(
      std::string_view(body.data(), body.size()), kReceiveTime);
}

// A webhook of `type` whose payload holds the JSON members `fields` and the
// secret.
std::string Webhook(absl::string_view type, absl::string_view fields,
                    absl::string_view secret = kSecret) {
  return absl::Substitute(
      R"({"type":"$0","payload":{$1,"workspaceSecret":"$2"}})", type, fields,
      secret);
}

// A webhook_test event whose payload holds the textproto fields `payload`,
// whose create_time holds `create_time`, followed by the top-level fields
// `more`.
std::string TestEvent(absl::string_view payload,
                      absl::string_view create_time = "",
                      absl::string_view more = "") {
  return absl::Substitute(R"pb(
                            event_type: EVENT_TYPE_WEBHOOK_TEST
                            type_raw: "webhook_test"
                            create_time { $1 }
                            webhook_test { $0 } $2
                          )pb",
                          payload, create_time, more);
}

// A message_received webhook on `channel` saying `content` (JSON string
// text), with the JSON members `more` (each after a comma) added.
std::string MessageWebhook(absl::string_view more = "",
                           absl::string_view channel = "whatsapp",
                           absl::string_view content = "hi") {
  return Webhook(
      "message_received",
      absl::Substitute(
          R"("agentId":"agent_1","convoId":"convo_1","messageContent":"$0",)"
          R"("channel":"$1","createdAt":1718035200000$2)",
          content, channel, more));
}

// Its event, with the textproto fields `more` added to the payload.
std::string MessageEvent(absl::string_view more = "",
                         absl::string_view channel_value = "CHANNEL_WHATSAPP",
                         absl::string_view channel = "whatsapp",
                         absl::string_view content = "hi") {
  return absl::Substitute(R"pb(
                            event_type: EVENT_TYPE_MESSAGE_RECEIVED
                            type_raw: "message_received"
                            create_time { seconds: 1718035200 }
                            message_received {
                              agent_id: "agent_1"
                              convo_id: "convo_1"
                              message_content: "$3"
                              channel: $1
                              channel_raw: "$2"
                              create_time_millis: 1718035200000 $0
                            }
                          )pb",
                          more, channel_value, channel, content);
}

// ---------------------------------------------------------------------------
// Every sample of the spec, every field.

struct SampleCase {
  std::string file;
  std::string expected;  // the Event but for `id` and `receive_time`
};

// The agent, organisation and client samples differ only in type and
// operation: the event of `type` with operation `op` whose payload also holds
// `fields`.
std::string OperationEvent(absl::string_view type, absl::string_view op,
                           absl::string_view fields) {
  return absl::Substitute(R"pb(
                            event_type: EVENT_TYPE_$1
                            type_raw: "$0"
                            create_time { seconds: 1718035200 }
                            $0 {
                              $2 operation: OPERATION_$4
                              operation_raw: "$3"
                              create_time_millis: 1718035200000
                            }
                          )pb",
                          type, absl::AsciiStrToUpper(type), fields, op,
                          absl::AsciiStrToUpper(op));
}

constexpr char kAgentFields[] = R"pb(
  agent_id: "agent_123456"
  agent_name: "Customer Support Bot"
  agent_platform: AGENT_PLATFORM_VF
  agent_platform_raw: "vf"
)pb";
constexpr char kOrganisationFields[] = R"pb(
  organisation_id: "org_345678"
  organisation_name: "Acme Corporation"
)pb";
constexpr char kClientFields[] = R"pb(
  organisation_id: "org_345678"
  organisation_name: "Acme Corporation"
  client_id: "client_901234"
  client_name: "John Doe"
  client_email: "[email\302\240protected]"
)pb";

std::vector<SampleCase> SampleCases() {
  std::vector<SampleCase> cases;
  for (const auto& [noun, fields] :
       {std::pair{"agent", kAgentFields},
        std::pair{"organisation", kOrganisationFields},
        std::pair{"client", kClientFields}}) {
    for (const char* op : {"created", "updated", "deleted"}) {
      const std::string type = absl::StrCat(noun, "_", op);
      cases.push_back(
          {absl::StrCat(type, ".json"), OperationEvent(type, op, fields)});
    }
  }
  const std::vector<SampleCase> others = {
      {"message_received.json", R"pb(
         event_type: EVENT_TYPE_MESSAGE_RECEIVED
         type_raw: "message_received"
         create_time { seconds: 1718035200 }
         message_received {
           agent_id: "agent_123456"
           agent_name: "Customer Support Bot"
           convo_id: "convo_789012"
           message_content: "Hello, I need help with my order"
           channel: CHANNEL_WHATSAPP
           channel_raw: "whatsapp"
           message_type: "text"
           sender: "+1234567890"
           create_time_millis: 1718035200000
         }
       )pb"},
      {"lead_captured.json", R"pb(
         event_type: EVENT_TYPE_LEAD_CAPTURED
         type_raw: "lead_captured"
         create_time { seconds: 1718035200 }
         lead_captured {
           agent_id: "agent_123456"
           agent_name: "Sales Bot"
           lead_name: "Jane Smith"
           lead_email: "[email\302\240protected]"
           lead_phone: "+9876543210"
           channel: CHANNEL_WEB_CHAT
           channel_raw: "web-chat"
           operation: OPERATION_CAPTURED
           operation_raw: "captured"
           create_time_millis: 1718035200000
         }
       )pb"},
      {"form_submitted.json", R"pb(
         event_type: EVENT_TYPE_FORM_SUBMITTED
         type_raw: "form_submitted"
         create_time { seconds: 1718035200 }
         form_submitted {
           agent_id: "agent_123456"
           agent_name: "Support Bot"
           convo_id: "convo_789012"
           form_type: FORM_TYPE_UI_ENGINE_FORM
           form_type_raw: "ui_engine_form"
           form_data_json: "{\"name\":\"John Doe\",\"email\":\"[email\302\240protected]\",\"message\":\"I need help with my order\"}"
           channel: CHANNEL_WEBCHAT
           channel_raw: "webchat"
           create_time_millis: 1718035200000
         }
       )pb"},
      {"chat_delegated.json", R"pb(
         event_type: EVENT_TYPE_CHAT_DELEGATED
         type_raw: "chat_delegated"
         create_time { seconds: 1718035200 }
         chat_delegated {
           agent_id: "agent_123456"
           agent_name: "Support Bot"
           convo_id: "convo_789012"
           assigned_to_user_id: "user_456789"
           assigned_to_user_name: "Support Agent"
           assigned_to_user_email: "[email\302\240protected]"
           delegated_by_user_id: "user_111222"
           delegated_by_user_name: "Manager"
           customer_name: "Jane Doe"
           customer_email: "[email\302\240protected]"
           customer_phone: "+1234567890"
           channel: CHANNEL_WEBCHAT
           channel_raw: "webchat"
           operation: OPERATION_DELEGATED
           operation_raw: "delegated"
           create_time_millis: 1718035200000
         }
       )pb"},
      {"bug_reported.json", R"pb(
         event_type: EVENT_TYPE_BUG_REPORTED
         type_raw: "bug_reported"
         create_time { seconds: 1718035200 }
         bug_reported {
           agent_id: "agent_123456"
           agent_name: "Support Bot"
           convo_id: "convo_789012"
           bug_description: "The bot is not responding to user inputs correctly"
           image_url: "https://cdn.voiceglow.org/bug-reports/user_123/1234567890.png"
           reported_by_user_id: "user_345678"
           reported_by_user_name: "John Doe"
           reported_by_user_email: "[email\302\240protected]"
           channel: CHANNEL_WEBCHAT
           channel_raw: "webchat"
           operation: OPERATION_REPORTED
           operation_raw: "reported"
           create_time_millis: 1718035200000
         }
       )pb"},
      {"webhook_test.json",
       TestEvent(R"pb(message: "This is a test event"
                      create_time_millis: 1718035200000)pb",
                 "seconds: 1718035200")},
  };
  cases.insert(cases.end(), others.begin(), others.end());
  return cases;
}

void PrintTo(const SampleCase& c, std::ostream* os) { *os << c.file; }

class SampleTest : public testing::TestWithParam<SampleCase> {};

TEST_P(SampleTest, TranslatesEveryField) {
  const absl::StatusOr<Translation> t = Translate(ReadSample(GetParam().file));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(t->event.id(), MatchesRegex("evt_[0-9a-f]{32}"));
  v1::Event expected = ExpectedEvent(GetParam().expected);
  expected.set_id(t->event.id());
  EXPECT_THAT(t->event, EqualsProto(expected));
  EXPECT_FALSE(t->observations.unknown_type);
  EXPECT_THAT(t->observations.unknown_fields, IsEmpty());
  EXPECT_THAT(t->observations.unknown_enum_values, IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(Spec, SampleTest, testing::ValuesIn(SampleCases()),
                         [](const testing::TestParamInfo<SampleCase>& info) {
                           return info.param.file.substr(
                               0, info.param.file.find('.'));
                         });

TEST(SampleCoverageTest, EverySampleFileAndEveryTypeIsInTheTable) {
  std::set<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(
           absl::StrCat(GATEWAY_TESTDATA_DIR, "/samples"))) {
    if (entry.path().extension() == ".json") {
      files.insert(entry.path().filename().string());
    }
  }
  std::set<std::string> in_table;
  for (const SampleCase& c : SampleCases()) in_table.insert(c.file);
  EXPECT_EQ(files, in_table);
  EXPECT_EQ(in_table.size(), 15u);
  std::set<std::string> types;
  const auto* oneof = v1::Event::descriptor()->FindOneofByName("payload");
  for (int i = 0; i < oneof->field_count(); ++i) {
    const std::string& type = oneof->field(i)->name();
    if (PayloadSchema::Get()->Find(type) != nullptr) {
      types.insert(absl::StrCat(type, ".json"));
    }
  }
  EXPECT_EQ(types, in_table);
}

TEST(SampleIdTest, IdsAreStableAcrossReleases) {
  // Ids are stored in the durable log and compared after a restart: a
  // change of the id derivation must be deliberate (see content_id.h).
  const absl::StatusOr<Translation> t =
      Translate(ReadSample("agent_created.json"));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->event.id(), "evt_d186e94b9d8b59ac20679d7b0c6f971c");
}

// ---------------------------------------------------------------------------
// Realistic variants.

struct VariantCase {
  std::string name;
  std::string body;
  std::string expected;  // the Event but for `id` and `receive_time`
  std::vector<std::string> unknown_fields = {};
  std::vector<std::string> unknown_enum_values = {};
  bool unknown_type = false;
  bool secret_redacted = false;
};

std::vector<VariantCase> VariantCases() {
  const std::string large(64 << 10, 'x');
  return {
      {"RealEmailAddresses",
       Webhook("client_created",
               R"("organisationId":"org_1","clientId":"client_1",)"
               R"("clientEmail":"john.o'neil+orders@mail.example.co.uk",)"
               R"("operation":"created","createdAt":1718035200000)"),
       R"pb(
         event_type: EVENT_TYPE_CLIENT_CREATED
         type_raw: "client_created"
         create_time { seconds: 1718035200 }
         client_created {
           organisation_id: "org_1"
           client_id: "client_1"
           client_email: "john.o'neil+orders@mail.example.co.uk"
           operation: OPERATION_CREATED
           operation_raw: "created"
           create_time_millis: 1718035200000
         }
       )pb"},
      {"EmojiCjkAndEscapes",
       MessageWebhook(R"(,"agentName":"サポート担当")", "whatsapp",
                      R"(注文について 🙏🏽 caf\u00e9 \ud83d\ude00)"),
       MessageEvent(R"pb(agent_name: "サポート担当")pb", "CHANNEL_WHATSAPP",
                    "whatsapp", "注文について 🙏🏽 café 😀")},
      {"OptionalFieldsAbsent", MessageWebhook(), MessageEvent()},
      {"OptionalFieldsNull",
       MessageWebhook(absl::StrCat(R"(,"agentName":null,)",
                                   R"("messageType":null,"from":null)")),
       MessageEvent()},
      {"OptionalEnumAbsentAndNull",
       Webhook("agent_deleted",
               R"("agentId":"a","agentPlatform":null,"operation":"deleted",)"
               R"("createdAt":1718035200000)"),
       R"pb(
         event_type: EVENT_TYPE_AGENT_DELETED
         type_raw: "agent_deleted"
         create_time { seconds: 1718035200 }
         agent_deleted {
           agent_id: "a"
           operation: OPERATION_DELETED
           operation_raw: "deleted"
           create_time_millis: 1718035200000
         }
       )pb"},
      {"ExtraFieldsKept",
       absl::StrCat(R"({"version":2,)",
                    MessageWebhook(
                        R"(,"language":"en","meta":{"tags":["a",1,true,null]})")
                        .substr(1)),
       absl::StrCat(MessageEvent(), R"pb(
         envelope_extras_json: "{\"version\":2}"
         payload_extras_json: "{\"language\":\"en\",\"meta\":{\"tags\":[\"a\",1,true,null]}}"
       )pb"),
       {"version", "payload.language", "payload.meta"}},
      {"NestedNonStringFormData",
       Webhook("form_submitted",
               R"("agentId":"a","convoId":"c","formType":"ui_engine_input",)"
               R"("channel":"gb-chat","createdAt":1718035200000,)"
               R"("formData":{"age":42,"ok":false,"none":null,)"
               R"("address":{"city":"Zürich","zip":[8,0,0,1]}})"),
       R"pb(
         event_type: EVENT_TYPE_FORM_SUBMITTED
         type_raw: "form_submitted"
         create_time { seconds: 1718035200 }
         form_submitted {
           agent_id: "a"
           convo_id: "c"
           form_type: FORM_TYPE_UI_ENGINE_INPUT
           form_type_raw: "ui_engine_input"
           channel: CHANNEL_GB_CHAT
           channel_raw: "gb-chat"
           create_time_millis: 1718035200000
           form_data_json: "{\"age\":42,\"ok\":false,\"none\":null,\"address\":{\"city\":\"Zürich\",\"zip\":[8,0,0,1]}}"
         }
       )pb"},
      {"NumbersKeptExactlyAsSent",
       absl::StrCat(
           R"({"big":9007199254740993,)",
           Webhook("form_submitted",
                   R"("agentId":"a","convoId":"c","formType":"ui_engine_form",)"
                   R"("channel":"voice","createdAt":1718035200000,)"
                   R"("formData":{"big":9007199254740993,)"
                   R"("min":-9223372036854775808,"huge":1e400,"tenth":0.1,)"
                   R"("long":123456789012345678901234567890,"neg":-1E-7},)"
                   R"("score":1e400)")
               .substr(1)),
       R"pb(
         event_type: EVENT_TYPE_FORM_SUBMITTED
         type_raw: "form_submitted"
         create_time { seconds: 1718035200 }
         envelope_extras_json: "{\"big\":9007199254740993}"
         payload_extras_json: "{\"score\":1e400}"
         form_submitted {
           agent_id: "a"
           convo_id: "c"
           form_type: FORM_TYPE_UI_ENGINE_FORM
           form_type_raw: "ui_engine_form"
           channel: CHANNEL_VOICE
           channel_raw: "voice"
           create_time_millis: 1718035200000
           form_data_json: "{\"big\":9007199254740993,\"min\":-9223372036854775808,\"huge\":1e400,\"tenth\":0.1,\"long\":123456789012345678901234567890,\"neg\":-1E-7}"
         }
       )pb",
       {"big", "payload.score"}},
      {"UnknownTypeNumbersKeptExactlyAsSent",
       Webhook("agent_archived",
               R"("n":[9007199254740993,-9223372036854775808,1e400,0.1])"),
       R"pb(
         event_type: EVENT_TYPE_OTHER
         type_raw: "agent_archived"
         other_json: "{\"n\":[9007199254740993,-9223372036854775808,1e400,0.1]}"
       )pb",
       {},
       {},
       true},
      {"UnknownChannelKeptVerbatim",
       MessageWebhook("", "WhatsApp Business"),
       MessageEvent("", "CHANNEL_OTHER", "WhatsApp Business"),
       {},
       {"payload.channel"}},
      {"UnknownOperationAndPlatform",
       Webhook("agent_updated",
               R"("agentId":"a","agentPlatform":"vx","operation":"renamed",)"
               R"("createdAt":1718035200000)"),
       R"pb(
         event_type: EVENT_TYPE_AGENT_UPDATED
         type_raw: "agent_updated"
         create_time { seconds: 1718035200 }
         agent_updated {
           agent_id: "a"
           agent_platform: AGENT_PLATFORM_OTHER
           agent_platform_raw: "vx"
           operation: OPERATION_OTHER
           operation_raw: "renamed"
           create_time_millis: 1718035200000
         }
       )pb",
       {},
       {"payload.agentPlatform", "payload.operation"}},
      {"UnknownTypeKeptWithoutSecret",
       Webhook("agent_archived",
               R"("agentId":"a","createdAt":1718035200000,"why":[1])"),
       R"pb(
         event_type: EVENT_TYPE_OTHER
         type_raw: "agent_archived"
         create_time { seconds: 1718035200 }
         other_json: "{\"agentId\":\"a\",\"createdAt\":1718035200000,\"why\":[1]}"
       )pb",
       {},
       {},
       true},
      {"UnknownTypeWithoutUsableCreatedAt",
       Webhook("future_thing", R"("createdAt":"soon")"),
       R"pb(
         event_type: EVENT_TYPE_OTHER
         type_raw: "future_thing"
         other_json: "{\"createdAt\":\"soon\"}"
       )pb",
       {},
       {},
       true},
      {"CreatedAtAsStringOfDigits",
       Webhook("webhook_test", R"("message":"m","createdAt":"1718035200123")"),
       TestEvent(R"pb(message: "m" create_time_millis: 1718035200123)pb",
                 "seconds: 1718035200 nanos: 123000000")},
      {"CreatedAtZero",
       Webhook("webhook_test", R"("message":"m","createdAt":0)"),
       TestEvent(R"pb(message: "m")pb")},
      {"CreatedAtLatestTimestamp",
       Webhook("webhook_test", R"("message":"m","createdAt":253402300799999)"),
       TestEvent(R"pb(message: "m" create_time_millis: 253402300799999)pb",
                 "seconds: 253402300799 nanos: 999000000")},
      {"LargeMessageContent", MessageWebhook("", "whatsapp", large),
       MessageEvent("", "CHANNEL_WHATSAPP", "whatsapp", large)},
      {"MisplacedSecretIsDropped",
       absl::StrCat(
           R"({"workspaceSecret":"your_workspace_secret",)",
           R"("type":"webhook_test","payload":{"message":"m",)",
           R"("createdAt":0,"workspaceSecret":"your_workspace_secret"}})"),
       TestEvent(R"pb(message: "m")pb"),
       {"workspaceSecret"},
       {},
       false,
       true},
      {"SecretElsewhereIsRedacted",
       absl::StrCat(
           R"({"note":{"your_workspace_secret":1},)",
           Webhook("webhook_test", R"("message":"key=your_workspace_secret;",)"
                                   R"("createdAt":0)")
               .substr(1)),
       TestEvent(
           R"pb(message: "key=[redacted];")pb", "",
           R"pb(envelope_extras_json: "{\"note\":{\"[redacted]\":1}}")pb"),
       {"note"},
       {},
       false,
       true},
      {"RotatedSecretAccepted",
       Webhook("webhook_test", R"("message":"m","createdAt":0)", kNextSecret),
       TestEvent(R"pb(message: "m")pb")},
      {"KeyOrderAndWhitespaceFree",
       "\n\t{ \"payload\" : { \"workspaceSecret\" : \"your_workspace_secret\" ,"
       " \"createdAt\" : 0 , \"message\" : \"m\" } , \"type\" : "
       "\"webhook_test\" }\r\n",
       TestEvent(R"pb(message: "m")pb")},
  };
}

void PrintTo(const VariantCase& c, std::ostream* os) { *os << c.name; }

class VariantTest : public testing::TestWithParam<VariantCase> {};

TEST_P(VariantTest, Translates) {
  const VariantCase& c = GetParam();
  const absl::StatusOr<Translation> t = Translate(c.body);
  ASSERT_TRUE(t.ok()) << t.status();
  v1::Event expected = ExpectedEvent(c.expected);
  expected.set_id(t->event.id());
  EXPECT_THAT(t->event, EqualsProto(expected));
  EXPECT_THAT(t->observations.unknown_fields,
              ElementsAreArray(c.unknown_fields));
  EXPECT_THAT(t->observations.unknown_enum_values,
              ElementsAreArray(c.unknown_enum_values));
  EXPECT_EQ(t->observations.unknown_type, c.unknown_type);
  EXPECT_EQ(t->observations.secret_redacted, c.secret_redacted);
}

INSTANTIATE_TEST_SUITE_P(Realistic, VariantTest,
                         testing::ValuesIn(VariantCases()),
                         [](const testing::TestParamInfo<VariantCase>& info) {
                           return info.param.name;
                         });

// ---------------------------------------------------------------------------
// Bad input: each class maps to one error kind and names what was wrong.

struct BadCase {
  std::string name;
  std::string body;
  absl::StatusCode code;
  std::string message;  // a part of the error message
};

std::string Nested(int depth) {
  std::string inner = "1";
  for (int i = 0; i < depth; ++i) inner = absl::StrCat("{\"a\":", inner, "}");
  return inner;
}

std::vector<BadCase> BadCases() {
  using absl::StatusCode;
  const std::string many_keys = [] {
    std::string fields;
    for (int i = 0; i < 10'001; ++i)
      absl::StrAppend(&fields, ",\"k", i, "\":0");
    return fields;
  }();
  const std::string many_values = absl::StrCat(
      "\"list\":[", absl::StrJoin(std::vector<int>(100'001, 0), ","), "]");
  constexpr char kCreatedAtExpected[] =
      "payload.createdAt: expected an integer of milliseconds from 0 to "
      "253402300799999, got ";
  const auto created_at = [](absl::string_view value) {
    return Webhook("webhook_test",
                   absl::StrCat(R"("message":"m","createdAt":)", value));
  };
  return {
      // Size, syntax, encoding and limits.
      {"BodyTooLarge",
       MessageWebhook(
           absl::StrCat(R"(,"x":")", std::string(1 << 20, 'x'), "\"")),
       StatusCode::kResourceExhausted, "body: "},
      {"EmptyBody", "", StatusCode::kInvalidArgument,
       "body: invalid JSON at byte 0"},
      {"NotJson", "type=message_received", StatusCode::kInvalidArgument,
       "body: invalid JSON at byte 1: Invalid value."},
      {"TruncatedJson", R"({"type":"webhook_test","payload":{)",
       StatusCode::kInvalidArgument, "body: invalid JSON"},
      {"TrailingGarbage",
       absl::StrCat(Webhook("webhook_test", R"("a":1)"), "x"),
       StatusCode::kInvalidArgument, "body: invalid JSON"},
      {"NulThenGarbage",
       absl::StrCat(Webhook("webhook_test", R"("a":1)"), std::string(1, '\0'),
                    "{}"),
       StatusCode::kInvalidArgument, "unexpected bytes after the value"},
      {"InvalidUtf8",
       MessageWebhook(absl::StrCat(",\"agentName\":\"\xC3\x28\"")),
       StatusCode::kInvalidArgument, "body: invalid JSON"},
      {"LoneSurrogateEscape",
       MessageWebhook(absl::StrCat(R"(,"agentName":"\udc00")")),
       StatusCode::kInvalidArgument, "unpaired surrogate"},
      {"NestedTooDeep", MessageWebhook(absl::StrCat(",\"x\":", Nested(31))),
       StatusCode::kInvalidArgument, "body: nested deeper than 32 levels"},
      {"TooManyKeys", MessageWebhook(many_keys), StatusCode::kInvalidArgument,
       "body: more than 10000 object keys"},
      {"TooManyValues", MessageWebhook(absl::StrCat(",", many_values)),
       StatusCode::kInvalidArgument, "body: more than 100000 values"},
      {"StringTooLong",
       MessageWebhook(
           absl::StrCat(R"(,"x":")", std::string((256 << 10) + 1, 'x'), "\"")),
       StatusCode::kInvalidArgument,
       "body: a string or key longer than 262144 bytes"},
      // The envelope.
      {"TopLevelArray", "[1,2]", StatusCode::kInvalidArgument,
       "body: expected a JSON object, got array"},
      {"TopLevelString", "\"webhook\"", StatusCode::kInvalidArgument,
       "body: expected a JSON object, got string"},
      {"PayloadMissing", R"({"type":"webhook_test"})",
       StatusCode::kInvalidArgument, "payload: required object is missing"},
      {"PayloadNotObject", R"({"type":"webhook_test","payload":"x"})",
       StatusCode::kInvalidArgument, "payload: expected an object, got string"},
      {"PayloadTwice", R"({"type":"webhook_test","payload":{},"payload":{}})",
       StatusCode::kInvalidArgument, "payload: the key appears more than once"},
      {"TypeMissing",
       R"({"payload":{"workspaceSecret":"your_workspace_secret"}})",
       StatusCode::kInvalidArgument, "type: required string is missing"},
      {"TypeNotString",
       R"({"type":7,"payload":{"workspaceSecret":"your_workspace_secret"}})",
       StatusCode::kInvalidArgument, "type: expected a string, got number"},
      {"TypeEmpty",
       R"({"type":"","payload":{"workspaceSecret":"your_workspace_secret"}})",
       StatusCode::kInvalidArgument, "type: expected a non-empty string"},
      {"TypeTwice",
       R"({"type":"a","type":"b","payload":{"workspaceSecret":"your_workspace_secret"}})",
       StatusCode::kInvalidArgument, "type: the key appears more than once"},
      // The secret.
      {"SecretMissing", R"({"type":"webhook_test","payload":{"message":"m"}})",
       StatusCode::kUnauthenticated,
       "payload.workspaceSecret: required string is missing"},
      {"SecretWrong", Webhook("webhook_test", R"("message":"m")", "guess"),
       StatusCode::kUnauthenticated,
       "payload.workspaceSecret: does not match any configured secret"},
      {"SecretPrefixOfRealOne",
       Webhook("webhook_test", R"("message":"m")", "your_workspace"),
       StatusCode::kUnauthenticated, "payload.workspaceSecret: does not match"},
      {"SecretNotString",
       R"({"type":"webhook_test","payload":{"workspaceSecret":12345}})",
       StatusCode::kUnauthenticated,
       "payload.workspaceSecret: expected a string, got number"},
      {"SecretTwice",
       R"({"type":"webhook_test","payload":{"workspaceSecret":"x",)"
       R"("workspaceSecret":"your_workspace_secret"}})",
       StatusCode::kUnauthenticated,
       "payload.workspaceSecret: the key appears more than once"},
      // Checks after the secret are not answered without it.
      {"WrongSecretHidesMissingType",
       R"({"payload":{"workspaceSecret":"guess"}})",
       StatusCode::kUnauthenticated, "payload.workspaceSecret"},
      {"WrongSecretHidesInvalidField",
       Webhook("webhook_test", R"("createdAt":"abc")", "guess"),
       StatusCode::kUnauthenticated, "payload.workspaceSecret"},
      // Documented fields.
      {"RequiredStringMissing",
       Webhook("agent_created", R"("operation":"created","createdAt":0)"),
       StatusCode::kInvalidArgument,
       "payload.agentId: required string is missing"},
      {"RequiredStringNull",
       Webhook("agent_created",
               R"("agentId":null,"operation":"created","createdAt":0)"),
       StatusCode::kInvalidArgument,
       "payload.agentId: expected a string, got null"},
      {"RequiredStringNumber",
       Webhook("message_received",
               R"("agentId":1,"convoId":"c","messageContent":"m",)"
               R"("channel":"whatsapp","createdAt":0)"),
       StatusCode::kInvalidArgument,
       "payload.agentId: expected a string, got number"},
      {"OptionalStringWrongType",
       MessageWebhook(absl::StrCat(R"(,"agentName":["Bot"])")),
       StatusCode::kInvalidArgument,
       "payload.agentName: expected a string or null, got array"},
      {"EnumMissing",
       Webhook(
           "message_received",
           R"("agentId":"a","convoId":"c","messageContent":"m","createdAt":0)"),
       StatusCode::kInvalidArgument,
       "payload.channel: required string is missing"},
      {"EnumWrongType",
       Webhook("lead_captured", R"("agentId":"a","channel":{"name":"voice"},)"
                                R"("operation":"captured","createdAt":0)"),
       StatusCode::kInvalidArgument,
       "payload.channel: expected a string, got object"},
      {"OptionalEnumWrongType",
       Webhook("agent_created",
               R"("agentId":"a","agentPlatform":1,"operation":"created",)"
               R"("createdAt":0)"),
       StatusCode::kInvalidArgument,
       "payload.agentPlatform: expected a string or null, got number"},
      {"FormDataMissing",
       Webhook("form_submitted",
               R"("agentId":"a","convoId":"c","formType":"ui_engine_form",)"
               R"("channel":"voice","createdAt":0)"),
       StatusCode::kInvalidArgument,
       "payload.formData: required object is missing"},
      {"FormDataNotObject",
       Webhook("form_submitted",
               R"("agentId":"a","convoId":"c","formType":"ui_engine_form",)"
               R"("formData":["x"],"channel":"voice","createdAt":0)"),
       StatusCode::kInvalidArgument,
       "payload.formData: expected an object, got array"},
      {"CreatedAtMissing", Webhook("webhook_test", R"("message":"m")"),
       StatusCode::kInvalidArgument,
       "payload.createdAt: required integer of milliseconds is missing"},
      {"CreatedAtFraction", created_at("1.5"), StatusCode::kInvalidArgument,
       absl::StrCat(kCreatedAtExpected, "number 1.5")},
      {"CreatedAtExponent", created_at("1e3"), StatusCode::kInvalidArgument,
       absl::StrCat(kCreatedAtExpected, "number 1e3")},
      {"CreatedAtNonNumeric", created_at(R"("abc")"),
       StatusCode::kInvalidArgument,
       absl::StrCat(kCreatedAtExpected, "string \"abc\"")},
      {"CreatedAtEmptyString", created_at(R"("")"),
       StatusCode::kInvalidArgument,
       absl::StrCat(kCreatedAtExpected, "string \"\"")},
      {"CreatedAtNegative", created_at("-5"), StatusCode::kInvalidArgument,
       absl::StrCat(kCreatedAtExpected, "number -5")},
      {"CreatedAtNegativeString", created_at(R"("-5")"),
       StatusCode::kInvalidArgument,
       absl::StrCat(kCreatedAtExpected, "string \"-5\"")},
      {"CreatedAtBeyondTimestamp", created_at("253402300800000"),
       StatusCode::kInvalidArgument,
       absl::StrCat(kCreatedAtExpected, "number 253402300800000")},
      {"CreatedAtBeyondUint64String",
       created_at(R"("99999999999999999999999")"), StatusCode::kInvalidArgument,
       absl::StrCat(kCreatedAtExpected, "string \"99999999999999999999999\"")},
      {"CreatedAtHuge", created_at("1e300"), StatusCode::kInvalidArgument,
       absl::StrCat(kCreatedAtExpected, "number 1e300")},
      {"CreatedAtBoolean", created_at("true"), StatusCode::kInvalidArgument,
       absl::StrCat(kCreatedAtExpected, "boolean")},
      {"CreatedAtLongStringNotQuoted",
       created_at(absl::StrCat("\"", std::string(40, 'a'), "\"")),
       StatusCode::kInvalidArgument,
       absl::StrCat(kCreatedAtExpected, "a string of 40 bytes")},
      // Keys given twice have no single meaning.
      {"PayloadKeyTwice",
       Webhook("webhook_test", R"("message":"a","message":"b","createdAt":0)"),
       StatusCode::kInvalidArgument, "payload: duplicate key \"message\""},
      {"NestedKeyTwice",
       Webhook(
           "form_submitted",
           R"("agentId":"a","convoId":"c","formType":"ui_engine_form",)"
           R"("formData":{"x":{"y":1,"y":2}},"channel":"voice","createdAt":0)"),
       StatusCode::kInvalidArgument, "payload.formData.x: duplicate key \"y\""},
      {"EnvelopeExtraKeyTwice",
       absl::StrCat(
           R"({"v":1,"v":2,)",
           Webhook("webhook_test", R"("message":"m","createdAt":0)").substr(1)),
       StatusCode::kInvalidArgument, "body: duplicate key \"v\""},
  };
}

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class BadInputTest : public testing::TestWithParam<BadCase> {};

TEST_P(BadInputTest, IsRejectedWithItsKindAndPath) {
  EXPECT_THAT(Translate(GetParam().body),
              StatusIs(GetParam().code, GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(Rejections, BadInputTest,
                         testing::ValuesIn(BadCases()),
                         [](const testing::TestParamInfo<BadCase>& info) {
                           return info.param.name;
                         });

// ---------------------------------------------------------------------------
// The secret never comes out.

std::string EverythingOut(const absl::StatusOr<Translation>& t) {
  if (!t.ok()) return t.status().ToString();
  return absl::StrCat(t->event.SerializeAsString(), t->event.DebugString(),
                      absl::StrJoin(t->observations.unknown_fields, "\n"),
                      absl::StrJoin(t->observations.unknown_enum_values, "\n"));
}

// Every input of this file, and some that put the secret where a careless
// translator would copy it.
std::vector<std::string> SecretCorpus() {
  std::vector<std::string> corpus;
  for (const auto& c : SampleCases()) corpus.push_back(ReadSample(c.file));
  for (const auto& c : VariantCases()) corpus.push_back(c.body);
  for (const auto& c : BadCases()) corpus.push_back(c.body);
  for (absl::string_view fields : {
           R"("createdAt":"your_workspace_secret")",
           R"("createdAt":{"workspaceSecret":"your_workspace_secret"})",
           R"("message":1,"createdAt":0)",
       }) {
    corpus.push_back(Webhook("webhook_test", fields));
    corpus.push_back(Webhook("unknown_type", fields));
  }
  corpus.push_back(
      R"({"type":"x","payload":{"workspaceSecret":"your_workspace_secret"},)"
      R"("workspaceSecret":"your_workspace_secret"})");
  corpus.push_back(
      R"({"type":"x","payload":{"workspaceSecret":"your_workspace_secret",)"
      R"("workspaceSecret":"your_workspace_secret"}})");
  return corpus;
}

TEST(SecretTest, NeverInAnyOutput) {
  for (const std::string& body : SecretCorpus()) {
    const std::string out = EverythingOut(Translate(body));
    EXPECT_THAT(out, Not(HasSubstr(kSecret))) << body.substr(0, 200);
  }
}

TEST(SecretTest, AWrongSecretIsNeverEchoed) {
  auto other = Translator::Create({.secrets = {"some_other_secret"}});
  ASSERT_TRUE(other.ok());
  for (const std::string& body : SecretCorpus()) {
    const absl::StatusOr<Translation> t =
        (*other)->Translate(body, kReceiveTime);
    EXPECT_FALSE(t.ok());
    EXPECT_THAT(EverythingOut(t), Not(HasSubstr(kSecret)))
        << body.substr(0, 200);
  }
}

TEST(SecretTest, SecretsAreReplacedAtomicallyAndABadSetKeepsTheOld) {
  auto translator = Translator::Create({.secrets = {"old-secret"}});
  ASSERT_TRUE(translator.ok());
  const std::string old_body =
      Webhook("webhook_test", R"("message":"m","createdAt":1)", "old-secret");
  const std::string new_body =
      Webhook("webhook_test", R"("message":"m","createdAt":1)", "new-secret");
  auto code = [&](const std::string& body) {
    return (*translator)->Translate(body, kReceiveTime).status().code();
  };
  EXPECT_EQ(code(old_body), absl::StatusCode::kOk);
  EXPECT_EQ(code(new_body), absl::StatusCode::kUnauthenticated);

  // While requests with the old secret keep coming, the new one is added:
  // none of them is refused at any moment.
  std::atomic<bool> stop{false};
  std::atomic<int> refused{0};
  std::atomic<int> checked{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < 4; ++t) {
    senders.emplace_back([&] {
      while (!stop.load()) {
        if (code(old_body) != absl::StatusCode::kOk) refused.fetch_add(1);
        checked.fetch_add(1);
      }
    });
  }
  for (int round = 0; round < 200; ++round) {
    ASSERT_TRUE((*translator)->SetSecrets({"old-secret", "new-secret"}).ok());
    ASSERT_TRUE((*translator)->SetSecrets({"new-secret", "old-secret"}).ok());
  }
  stop.store(true);
  for (std::thread& sender : senders) sender.join();
  EXPECT_EQ(refused.load(), 0) << "of " << checked.load();
  EXPECT_EQ(code(new_body), absl::StatusCode::kOk);

  // Then the old one goes.
  ASSERT_TRUE((*translator)->SetSecrets({"new-secret"}).ok());
  EXPECT_EQ(code(old_body), absl::StatusCode::kUnauthenticated);
  // No secret, or an empty one, is refused and changes nothing.
  EXPECT_FALSE((*translator)->SetSecrets({}).ok());
  EXPECT_FALSE((*translator)->SetSecrets({""}).ok());
  EXPECT_EQ(code(new_body), absl::StatusCode::kOk);
}

TEST(SecretTest, ALabelledSecretNamesItsWorkspaceInTheEvent) {
  auto translator = Translator::Create(
      {.secrets = {"acme=acme-secret", "globex=globex-secret", "plain-secret",
                   "=looks=labelled", "Upper=case"}});
  ASSERT_TRUE(translator.ok()) << translator.status();
  auto translate = [&](absl::string_view secret) {
    return (*translator)
        ->Translate(
            Webhook("webhook_test", R"("message":"m","createdAt":1)", secret),
            kReceiveTime);
  };
  absl::StatusOr<Translation> acme = translate("acme-secret");
  absl::StatusOr<Translation> globex = translate("globex-secret");
  absl::StatusOr<Translation> plain = translate("plain-secret");
  ASSERT_TRUE(acme.ok() && globex.ok() && plain.ok());
  EXPECT_EQ(acme->event.workspace(), "acme");
  EXPECT_EQ(globex->event.workspace(), "globex");
  EXPECT_EQ(plain->event.workspace(), "");
  // The same webhook from two workspaces is two events.
  EXPECT_NE(acme->event.id(), globex->event.id());
  EXPECT_NE(acme->event.id(), plain->event.id());
  // A label is only a lowercase name before the first "=": the rest are
  // secrets as written, "=" and all.
  EXPECT_EQ(translate("looks=labelled")->event.workspace(), "");
  EXPECT_EQ(translate("Upper=case")->event.workspace(), "");
  EXPECT_EQ(translate("acme=acme-secret").status().code(),
            absl::StatusCode::kUnauthenticated);
  for (const auto* t : {&acme, &globex}) {
    EXPECT_THAT(EverythingOut(*t), Not(HasSubstr("-secret")));
  }
  // An unlabelled secret keeps the ids it always gave.
  auto unlabelled = Translator::Create({.secrets = {"plain-secret"}});
  ASSERT_TRUE(unlabelled.ok());
  EXPECT_EQ(
      (*unlabelled)
          ->Translate(Webhook("webhook_test", R"("message":"m","createdAt":1)",
                              "plain-secret"),
                      kReceiveTime)
          ->event.id(),
      plain->event.id());
  // A label without a secret is refused, naming the label only.
  absl::StatusOr<std::unique_ptr<Translator>> empty =
      Translator::Create({.secrets = {"acme="}});
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.status().message(), HasSubstr("labelled \"acme\""));
}

// ---------------------------------------------------------------------------
// The id.

std::string IdOf(absl::string_view body) {
  const absl::StatusOr<Translation> t = Translate(body);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? t->event.id() : "";
}

TEST(IdTest, IndependentOfKeyOrderWhitespaceEscapesSecretAndEnvelope) {
  const std::string id = IdOf(ReadSample("form_submitted.json"));
  EXPECT_EQ(
      id,
      IdOf(
          R"({"payload":{"workspaceSecret":"next_workspace_secret","createdAt":1718035200000,)"
          R"("channel":"webchat","formData":{"message":"I need help with my order",)"
          R"("email":"[email\u00a0protected]","name":"John Doe"},"formType":"ui_engine_form",)"
          R"("convoId":"convo_789012","agentName":"Support Bot","agentId":"agent_\u0031\u00323456"},)"
          R"("type":"form_submitted","deliveredBy":"proxy-2"})"));
}

TEST(IdTest, ChangesWithTypeAndEveryPartOfThePayload) {
  const std::set<std::string> ids = {
      IdOf(Webhook("webhook_test", R"("message":"m","createdAt":1)")),
      IdOf(Webhook("webhook_test", R"("message":"m","createdAt":2)")),
      IdOf(Webhook("webhook_test", R"("message":"n","createdAt":1)")),
      IdOf(Webhook("webhook_test", R"("message":"m","createdAt":"1")")),
      IdOf(Webhook("webhook_test", R"("message":"m","createdAt":1,"x":null)")),
      IdOf(Webhook("other_type", R"("message":"m","createdAt":1)")),
  };
  EXPECT_EQ(ids.size(), 6u);
}

// ---------------------------------------------------------------------------
// Limits and nesting keep events readable by any protobuf parser.

TEST(DepthTest, DeepestAcceptedEventsParseWithDefaultProtobufLimits) {
  // Each JSON level kept in a Struct costs three message levels; protobuf
  // parsers refuse more than 100.
  const std::vector<std::string> deepest = {
      absl::StrCat(
          R"({"x":)", Nested(31), ",",
          Webhook("webhook_test", R"("message":"m","createdAt":0)").substr(1)),
      Webhook("webhook_test",
              absl::StrCat(R"("message":"m","createdAt":0,"x":)", Nested(30))),
      Webhook("unknown_type", absl::StrCat(R"("x":)", Nested(30))),
      Webhook("form_submitted",
              absl::StrCat(R"("agentId":"a","convoId":"c","formType":"f",)",
                           R"("channel":"voice","createdAt":0,"formData":)",
                           Nested(30))),
  };
  for (const std::string& body : deepest) {
    const absl::StatusOr<Translation> t = Translate(body);
    ASSERT_TRUE(t.ok()) << t.status();
    v1::Event parsed;
    EXPECT_TRUE(parsed.ParseFromString(t->event.SerializeAsString()));
    EXPECT_THAT(parsed, EqualsProto(t->event));
  }
}

TEST(LimitsTest, ConfiguredLimitsApply) {
  auto t = Translator::Create({.secrets = {kSecret},
                               .limits = {.max_body_bytes = 200,
                                          .max_depth = 3,
                                          .max_keys = 4,
                                          .max_string_bytes = 8,
                                          .max_values = 6}});
  ASSERT_TRUE(t.ok()) << t.status();
  const auto translate = [&](absl::string_view body) {
    return (*t)->Translate(std::string_view(body.data(), body.size()),
                           kReceiveTime);
  };
  EXPECT_THAT(translate(std::string(201, ' ')),
              StatusIs(absl::StatusCode::kResourceExhausted, "200"));
  EXPECT_THAT(translate(R"({"a":{"b":{"c":[]}}})"),
              StatusIs(absl::StatusCode::kInvalidArgument, "deeper than 3"));
  EXPECT_THAT(translate(R"({"a":1,"b":2,"c":3,"d":4,"e":5})"),
              StatusIs(absl::StatusCode::kInvalidArgument, "more than 4"));
  EXPECT_THAT(translate(R"({"a":"123456789"})"),
              StatusIs(absl::StatusCode::kInvalidArgument, "longer than 8"));
  EXPECT_THAT(translate(R"({"a":[1,2,3,4,5,6]})"),
              StatusIs(absl::StatusCode::kInvalidArgument, "more than 6"));
}

// ---------------------------------------------------------------------------
// Options and the rest of the contract of Translate().

TEST(CreateTest, RefusesUnusableOptions) {
  EXPECT_FALSE(Translator::Create({}).ok());
  EXPECT_FALSE(Translator::Create({.secrets = {kSecret, ""}}).ok());
  EXPECT_FALSE(
      Translator::Create({.secrets = {kSecret}, .limits = {.max_depth = 33}})
          .ok());
  EXPECT_FALSE(
      Translator::Create({.secrets = {kSecret}, .limits = {.max_keys = 0}})
          .ok());
  EXPECT_FALSE(Translator::Create(
                   {.secrets = {kSecret}, .limits = {.max_body_bytes = 0}})
                   .ok());
}

TEST(TranslateTest, ReceiveTimeOutsideTimestampRangeIsInternal) {
  EXPECT_THAT(DefaultTranslator().Translate(ReadSample("webhook_test.json"),
                                            absl::InfiniteFuture()),
              StatusIs(absl::StatusCode::kInternal, "receive_time"));
}

TEST(TranslateTest, ConcurrentCallsAgree) {
  const std::string body = ReadSample("chat_delegated.json");
  const absl::StatusOr<Translation> reference = Translate(body);
  ASSERT_TRUE(reference.ok());
  std::vector<std::thread> threads;
  std::vector<int> mismatches(8, 0);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      for (int n = 0; n < 500; ++n) {
        const absl::StatusOr<Translation> t = Translate(body);
        if (!t.ok() || t->event.SerializeAsString() !=
                           reference->event.SerializeAsString()) {
          ++mismatches[i];
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_THAT(mismatches, testing::Each(0));
}

}  // namespace
}  // namespace convocore::gateway
