// Checks the contract in protos/ against the sender's documentation
// (shared/spec/convocore-webhooks.md): every documented event type has its
// oneof case, every documented payload field exists under its documented JSON
// name, and the secret is a field of no message.
#include <set>
#include <string>
#include <vector>

#include "convocore/webhooks/v1/event_stream_service.pb.h"
#include "convocore/webhooks/v1/events.pb.h"
#include "gtest/gtest.h"

namespace convocore::webhooks::v1 {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

struct DocumentedType {
  std::string type;
  std::vector<std::string> keys;  // documented payload keys but the secret
};

const std::vector<std::string> kAgentKeys = {
    "agentId", "agentName", "agentPlatform", "operation", "createdAt"};
const std::vector<std::string> kOrganisationKeys = {
    "organisationId", "organisationName", "operation", "createdAt"};
const std::vector<std::string> kClientKeys = {
    "organisationId", "organisationName", "clientId",  "clientName",
    "clientEmail",    "operation",        "createdAt"};

// Transcribed from the spec's "Payload fields" lists.
const std::vector<DocumentedType>& Documented() {
  static const auto* types = new std::vector<DocumentedType>{
      {"message_received",
       {"agentId", "agentName", "convoId", "messageContent", "channel",
        "messageType", "from", "createdAt"}},
      {"chat_delegated",
       {"agentId", "agentName", "convoId", "assignedToUserId",
        "assignedToUserName", "assignedToUserEmail", "delegatedByUserId",
        "delegatedByUserName", "customerName", "customerEmail",
        "customerPhone", "channel", "operation", "createdAt"}},
      {"bug_reported",
       {"agentId", "agentName", "convoId", "bugDescription", "imageUrl",
        "reportedByUserId", "reportedByUserName", "reportedByUserEmail",
        "channel", "operation", "createdAt"}},
      {"agent_created", kAgentKeys},
      {"agent_updated", kAgentKeys},
      {"agent_deleted", kAgentKeys},
      {"webhook_test", {"message", "createdAt"}},
      {"lead_captured",
       {"agentId", "agentName", "leadName", "leadEmail", "leadPhone",
        "channel", "operation", "createdAt"}},
      {"form_submitted",
       {"agentId", "agentName", "convoId", "formType", "formData", "channel",
        "createdAt"}},
      {"organisation_created", kOrganisationKeys},
      {"organisation_updated", kOrganisationKeys},
      {"organisation_deleted", kOrganisationKeys},
      {"client_created", kClientKeys},
      {"client_updated", kClientKeys},
      {"client_deleted", kClientKeys},
  };
  return *types;
}

// The field whose JSON name is `json_name`, or null.
const FieldDescriptor* FieldByJsonName(const Descriptor* d,
                                       const std::string& json_name) {
  for (int i = 0; i < d->field_count(); ++i) {
    if (d->field(i)->json_name() == json_name) return d->field(i);
  }
  return nullptr;
}

TEST(ContractTest, SpecListsFifteenTypes) { EXPECT_EQ(Documented().size(), 15); }

TEST(ContractTest, EveryTypeHasItsOneofCaseAndEnumValue) {
  const Descriptor* event = Event::descriptor();
  const auto* oneof = event->FindOneofByName("payload");
  ASSERT_NE(oneof, nullptr);
  for (const DocumentedType& t : Documented()) {
    SCOPED_TRACE(t.type);
    const FieldDescriptor* field = event->FindFieldByName(t.type);
    ASSERT_NE(field, nullptr) << "no oneof case named " << t.type;
    EXPECT_EQ(field->containing_oneof(), oneof);
    EXPECT_EQ(field->type(), FieldDescriptor::TYPE_MESSAGE);

    std::string enum_name = "EVENT_TYPE_" + t.type;
    for (char& c : enum_name) c = std::toupper(static_cast<unsigned char>(c));
    EXPECT_NE(EventType_descriptor()->FindValueByName(enum_name), nullptr)
        << enum_name;
  }
  // Types the contract does not know yet are kept, as JSON text.
  const FieldDescriptor* other = event->FindFieldByName("other_json");
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->containing_oneof(), oneof);
  EXPECT_EQ(other->type(), FieldDescriptor::TYPE_STRING);
  EXPECT_EQ(oneof->field_count(), 16);
}

TEST(ContractTest, EveryDocumentedFieldHasItsJsonName) {
  const Descriptor* event = Event::descriptor();
  for (const DocumentedType& t : Documented()) {
    SCOPED_TRACE(t.type);
    const Descriptor* payload = event->FindFieldByName(t.type)->message_type();
    for (const std::string& key : t.keys) {
      const FieldDescriptor* field = FieldByJsonName(payload, key);
      ASSERT_NE(field, nullptr) << payload->name() << " lacks " << key;
      EXPECT_EQ(field->json_name(), key);
    }
  }
}

TEST(ContractTest, FormDataIsArbitraryJsonKeptAsText) {
  const FieldDescriptor* form_data =
      FieldByJsonName(FormPayload::descriptor(), "formData");
  ASSERT_NE(form_data, nullptr);
  EXPECT_EQ(form_data->name(), "form_data_json");
  EXPECT_EQ(form_data->type(), FieldDescriptor::TYPE_STRING);
}

TEST(ContractTest, ClosedSetsAreTypedAndKeptVerbatim) {
  const std::set<std::string> enum_keys = {"channel", "agentPlatform",
                                           "operation", "formType"};
  const Descriptor* event = Event::descriptor();
  for (const DocumentedType& t : Documented()) {
    const Descriptor* payload = event->FindFieldByName(t.type)->message_type();
    for (const std::string& key : t.keys) {
      if (!enum_keys.count(key)) continue;
      SCOPED_TRACE(t.type + "." + key);
      const FieldDescriptor* typed = FieldByJsonName(payload, key);
      ASSERT_NE(typed, nullptr);
      EXPECT_EQ(typed->type(), FieldDescriptor::TYPE_ENUM);
      // An unlisted value maps to *_OTHER and is kept verbatim beside it.
      const FieldDescriptor* raw = payload->FindFieldByName(typed->name() + "_raw");
      ASSERT_NE(raw, nullptr);
      EXPECT_EQ(raw->type(), FieldDescriptor::TYPE_STRING);
      bool has_other = false;
      for (int i = 0; i < typed->enum_type()->value_count(); ++i) {
        const std::string& name = typed->enum_type()->value(i)->name();
        has_other |= name.size() > 6 && name.substr(name.size() - 6) == "_OTHER";
      }
      EXPECT_TRUE(has_other);
    }
  }
}

TEST(ContractTest, ChannelsOfTheSpecAreDistinctValues) {
  const auto* channel = Channel_descriptor();
  for (const char* name :
       {"CHANNEL_WHATSAPP", "CHANNEL_INSTAGRAM", "CHANNEL_FACEBOOK",
        "CHANNEL_TELEGRAM", "CHANNEL_WEBCHAT", "CHANNEL_WEB_CHAT",
        "CHANNEL_VOICE", "CHANNEL_VAPI", "CHANNEL_DISCORD", "CHANNEL_GB_CHAT",
        "CHANNEL_MESSENGER", "CHANNEL_TELEPHONY"}) {
    EXPECT_NE(channel->FindValueByName(name), nullptr) << name;
  }
  EXPECT_NE(AgentPlatform_descriptor()->FindValueByName("AGENT_PLATFORM_VG"),
            nullptr);
  EXPECT_NE(AgentPlatform_descriptor()->FindValueByName("AGENT_PLATFORM_VF"),
            nullptr);
}

// Walks every message reachable from the streamed types.
void CollectFields(const Descriptor* d, std::set<const Descriptor*>* seen,
                   std::vector<const FieldDescriptor*>* out) {
  if (!seen->insert(d).second) return;
  for (int i = 0; i < d->field_count(); ++i) {
    out->push_back(d->field(i));
    if (d->field(i)->message_type() != nullptr) {
      CollectFields(d->field(i)->message_type(), seen, out);
    }
  }
}

TEST(ContractTest, SecretIsNoFieldOfAnyMessage) {
  std::set<const Descriptor*> seen;
  std::vector<const FieldDescriptor*> fields;
  CollectFields(SubscribeResponse::descriptor(), &seen, &fields);
  CollectFields(SubscribeRequest::descriptor(), &seen, &fields);
  ASSERT_GT(fields.size(), 50u);
  for (const FieldDescriptor* f : fields) {
    std::string lower = f->name();
    for (char& c : lower) c = std::tolower(static_cast<unsigned char>(c));
    EXPECT_EQ(lower.find("secret"), std::string::npos) << f->full_name();
  }
}

TEST(ContractTest, EnvelopeCarriesCursorTimesAndExtras) {
  const Descriptor* event = Event::descriptor();
  EXPECT_EQ(event->FindFieldByName("sequence")->type(),
            FieldDescriptor::TYPE_UINT64);
  EXPECT_EQ(event->FindFieldByName("id")->type(), FieldDescriptor::TYPE_STRING);
  EXPECT_EQ(event->FindFieldByName("type_raw")->type(),
            FieldDescriptor::TYPE_STRING);
  EXPECT_EQ(event->FindFieldByName("event_type")->enum_type(),
            EventType_descriptor());
  for (const char* ts : {"receive_time", "create_time"}) {
    EXPECT_EQ(event->FindFieldByName(ts)->message_type()->full_name(),
              "google.protobuf.Timestamp")
        << ts;
  }
  for (const char* extras : {"envelope_extras_json", "payload_extras_json"}) {
    ASSERT_NE(event->FindFieldByName(extras), nullptr) << extras;
    EXPECT_EQ(event->FindFieldByName(extras)->type(),
              FieldDescriptor::TYPE_STRING)
        << extras;
  }
}

// Keywords of the languages clients are generated for: a name among them is
// renamed, mangled or dropped by some generator (protoc's Python `.pyi`
// leaves out a field named `from`, and `event.from` is a SyntaxError).
// Compared case-sensitively, as each language does.
const std::set<std::string>& Keywords() {
  static const auto* keywords = new std::set<std::string>{
      // Python 3 (keyword.kwlist and the soft keywords).
      "False", "None", "True", "and", "as", "assert", "async", "await",
      "break", "class", "continue", "def", "del", "elif", "else", "except",
      "finally", "for", "from", "global", "if", "import", "in", "is",
      "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try",
      "while", "with", "yield", "match", "case", "type", "_",
      // Go.
      "break", "case", "chan", "const", "continue", "default", "defer",
      "else", "fallthrough", "for", "func", "go", "goto", "if", "import",
      "interface", "map", "package", "range", "return", "select", "struct",
      "switch", "type", "var",
      // C++ (C++20, alternative tokens included).
      "alignas", "alignof", "and_eq", "asm", "auto", "bitand", "bitor",
      "bool", "char", "char8_t", "char16_t", "char32_t", "compl", "concept",
      "const_cast", "consteval", "constexpr", "constinit", "co_await",
      "co_return", "co_yield", "decltype", "delete", "do", "double",
      "dynamic_cast", "enum", "explicit", "export", "extern", "false",
      "float", "friend", "inline", "int", "long", "mutable", "namespace",
      "new", "noexcept", "not_eq", "nullptr", "operator", "or_eq",
      "private", "protected", "public", "register", "reinterpret_cast",
      "requires", "short", "signed", "sizeof", "static", "static_assert",
      "static_cast", "template", "this", "thread_local", "throw", "true",
      "typedef", "typeid", "typename", "union", "unsigned", "using",
      "virtual", "void", "volatile", "wchar_t", "xor", "xor_eq",
      // Java.
      "abstract", "boolean", "byte", "catch", "extends", "final", "goto",
      "implements", "instanceof", "native", "null", "strictfp", "super",
      "synchronized", "throws", "transient", "var", "record", "sealed",
      "permits", "yield",
      // JavaScript (reserved words, strict mode included).
      "arguments", "debugger", "eval", "function", "let", "of", "typeof",
      "undefined", "with",
  };
  return *keywords;
}

// Every name a generator turns into an identifier: messages, fields,
// oneofs, enums and their values, services and methods, in both files.
std::vector<std::string> ContractNames() {
  std::vector<std::string> names;
  std::set<const Descriptor*> seen;
  std::vector<const Descriptor*> messages;
  const auto add_message = [&](const Descriptor* d, auto&& self) -> void {
    if (!seen.insert(d).second) return;
    names.push_back(d->name());
    for (int i = 0; i < d->field_count(); ++i) names.push_back(d->field(i)->name());
    for (int i = 0; i < d->oneof_decl_count(); ++i) {
      names.push_back(d->oneof_decl(i)->name());
    }
    for (int i = 0; i < d->nested_type_count(); ++i) {
      self(d->nested_type(i), self);
    }
  };
  for (const google::protobuf::FileDescriptor* file :
       {Event::descriptor()->file(), SubscribeRequest::descriptor()->file()}) {
    for (int i = 0; i < file->message_type_count(); ++i) {
      add_message(file->message_type(i), add_message);
    }
    for (int i = 0; i < file->enum_type_count(); ++i) {
      const google::protobuf::EnumDescriptor* e = file->enum_type(i);
      names.push_back(e->name());
      for (int v = 0; v < e->value_count(); ++v) {
        names.push_back(e->value(v)->name());
      }
    }
    for (int i = 0; i < file->service_count(); ++i) {
      const google::protobuf::ServiceDescriptor* s = file->service(i);
      names.push_back(s->name());
      for (int m = 0; m < s->method_count(); ++m) {
        names.push_back(s->method(m)->name());
      }
    }
  }
  return names;
}

TEST(ContractTest, NoNameIsAKeywordOfAClientLanguage) {
  const std::vector<std::string> names = ContractNames();
  ASSERT_GT(names.size(), 150u);
  for (const std::string& name : names) {
    EXPECT_EQ(Keywords().count(name), 0u)
        << "\"" << name << "\" is a keyword of a client language: rename it "
        << "and keep the sender's key with json_name";
  }
}

TEST(ContractTest, TheKeywordCheckCatchesTheNamesItExistsFor) {
  for (const char* name : {"from", "type", "default", "class", "function"}) {
    EXPECT_EQ(Keywords().count(name), 1u) << name;
  }
}

TEST(ContractTest, TimestampFieldsEndInTime) {
  std::set<const Descriptor*> seen;
  std::vector<const FieldDescriptor*> fields;
  CollectFields(SubscribeResponse::descriptor(), &seen, &fields);
  CollectFields(SubscribeRequest::descriptor(), &seen, &fields);
  CollectFields(ResumeInfo::descriptor(), &seen, &fields);
  for (const FieldDescriptor* f : fields) {
    if (f->message_type() == nullptr ||
        f->message_type()->full_name() != "google.protobuf.Timestamp") {
      continue;
    }
    EXPECT_TRUE(f->name().size() > 5 &&
                f->name().substr(f->name().size() - 5) == "_time")
        << f->full_name();
  }
}

}  // namespace
}  // namespace convocore::webhooks::v1
