#include "gateway/core/payload_schema.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace convocore::gateway {
namespace {

namespace v1 = ::convocore::webhooks::v1;
using ::google::protobuf::Descriptor;
using ::google::protobuf::EnumDescriptor;
using ::google::protobuf::FieldDescriptor;

struct EnumString {
  absl::string_view text;
  int number;
};

struct EnumTable {
  const EnumDescriptor* (*type)();
  std::vector<EnumString> strings;
  int other;
};

// The sender's strings, from the spec. "web-chat" and "webchat" are distinct.
const std::vector<EnumTable>& EnumTables() {
  static const auto* tables = new std::vector<EnumTable>{
      {v1::Channel_descriptor,
       {{"whatsapp", v1::CHANNEL_WHATSAPP},
        {"instagram", v1::CHANNEL_INSTAGRAM},
        {"facebook", v1::CHANNEL_FACEBOOK},
        {"telegram", v1::CHANNEL_TELEGRAM},
        {"webchat", v1::CHANNEL_WEBCHAT},
        {"web-chat", v1::CHANNEL_WEB_CHAT},
        {"voice", v1::CHANNEL_VOICE},
        {"vapi", v1::CHANNEL_VAPI},
        {"discord", v1::CHANNEL_DISCORD},
        {"gb-chat", v1::CHANNEL_GB_CHAT},
        {"messenger", v1::CHANNEL_MESSENGER},
        {"telephony", v1::CHANNEL_TELEPHONY}},
       v1::CHANNEL_OTHER},
      {v1::AgentPlatform_descriptor,
       {{"vg", v1::AGENT_PLATFORM_VG}, {"vf", v1::AGENT_PLATFORM_VF}},
       v1::AGENT_PLATFORM_OTHER},
      {v1::Operation_descriptor,
       {{"created", v1::OPERATION_CREATED},
        {"updated", v1::OPERATION_UPDATED},
        {"deleted", v1::OPERATION_DELETED},
        {"captured", v1::OPERATION_CAPTURED},
        {"delegated", v1::OPERATION_DELEGATED},
        {"reported", v1::OPERATION_REPORTED}},
       v1::OPERATION_OTHER},
      {v1::FormType_descriptor,
       {{"ui_engine_form", v1::FORM_TYPE_UI_ENGINE_FORM},
        {"ui_engine_input", v1::FORM_TYPE_UI_ENGINE_INPUT}},
       v1::FORM_TYPE_OTHER},
  };
  return *tables;
}

// Enum fields the spec documents as optional ("agentPlatform (...,
// optional)"); proto3 cannot say so of an enum with a *_raw sibling.
bool IsOptionalEnum(const FieldDescriptor* field) {
  return field->full_name() ==
         "convocore.webhooks.v1.AgentPayload.agent_platform";
}

constexpr absl::string_view kRawSuffix = "_raw";
constexpr absl::string_view kJsonSuffix = "_json";
constexpr absl::string_view kOtherCase = "other_json";

}  // namespace

const FieldRule* PayloadRules::Find(absl::string_view key) const {
  for (const FieldRule& rule : fields) {
    if (rule.json_name == key) return &rule;
  }
  return nullptr;
}

const absl::StatusOr<PayloadSchema>& PayloadSchema::Get() {
  static const auto* schema = new absl::StatusOr<PayloadSchema>(Build());
  return *schema;
}

const PayloadRules* PayloadSchema::Find(absl::string_view type) const {
  auto it = by_type_.find(type);
  return it == by_type_.end() ? nullptr : &it->second;
}

const EnumStrings* PayloadSchema::StringsOf(const EnumDescriptor* type) const {
  for (const auto& e : enums_) {
    if (e->type == type) return e.get();
  }
  return nullptr;
}

absl::Status PayloadSchema::AddEnums() {
  for (const EnumTable& table : EnumTables()) {
    auto strings = std::make_unique<EnumStrings>();
    strings->type = table.type();
    strings->other = table.other;
    for (const EnumString& s : table.strings) {
      if (!strings->numbers.emplace(s.text, s.number).second) {
        return absl::InternalError(
            absl::StrCat("enum string \"", s.text, "\" listed twice"));
      }
    }
    // Every value but UNSPECIFIED and OTHER must have its string, once.
    absl::flat_hash_set<int> mapped;
    for (const auto& [text, number] : strings->numbers) mapped.insert(number);
    for (int i = 0; i < strings->type->value_count(); ++i) {
      const auto* value = strings->type->value(i);
      const bool special =
          value->number() == 0 || value->number() == table.other;
      if (special == mapped.contains(value->number())) {
        return absl::InternalError(
            absl::StrCat("enum value ", value->full_name(),
                         special ? " must not have a sender's string"
                                 : " has no sender's string"));
      }
    }
    enums_.push_back(std::move(strings));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<FieldRule>> PayloadSchema::RulesFor(
    const Descriptor* payload) const {
  std::vector<FieldRule> rules;
  for (int i = 0; i < payload->field_count(); ++i) {
    const FieldDescriptor* field = payload->field(i);
    const std::string& name = field->name();
    FieldRule rule{field->json_name(), FieldKind::kRequiredString, field};
    switch (field->type()) {
      case FieldDescriptor::TYPE_STRING:
        if (absl::EndsWith(name, kJsonSuffix)) {
          rule.kind = FieldKind::kRequiredObject;
          break;
        }
        if (absl::EndsWith(name, kRawSuffix)) {
          const auto* e = payload->FindFieldByName(
              name.substr(0, name.size() - kRawSuffix.size()));
          if (e != nullptr && e->type() == FieldDescriptor::TYPE_ENUM) {
            continue;  // filled with its enum
          }
        }
        rule.kind = field->has_presence() ? FieldKind::kOptionalString
                                          : FieldKind::kRequiredString;
        break;
      case FieldDescriptor::TYPE_ENUM:
        rule.kind = IsOptionalEnum(field) ? FieldKind::kOptionalEnum
                                          : FieldKind::kRequiredEnum;
        rule.raw_field =
            payload->FindFieldByName(absl::StrCat(name, kRawSuffix));
        rule.strings = StringsOf(field->enum_type());
        if (rule.raw_field == nullptr || rule.strings == nullptr) {
          return absl::InternalError(absl::StrCat(
              field->full_name(), ": enum without *_raw sibling or strings"));
        }
        break;
      case FieldDescriptor::TYPE_INT64:
        if (name != "create_time_millis") {
          return absl::InternalError(
              absl::StrCat(field->full_name(), ": unhandled int64 field"));
        }
        rule.kind = FieldKind::kCreatedAt;
        break;
      default:
        return absl::InternalError(
            absl::StrCat(field->full_name(), ": unhandled field type"));
    }
    rules.push_back(std::move(rule));
  }
  return rules;
}

absl::StatusOr<PayloadSchema> PayloadSchema::Build() {
  PayloadSchema schema;
  if (absl::Status s = schema.AddEnums(); !s.ok()) return s;
  const Descriptor* event = v1::Event::descriptor();
  const auto* oneof = event->FindOneofByName("payload");
  if (oneof == nullptr)
    return absl::InternalError("Event has no oneof payload");
  // Each case is named exactly as the `type` it carries, and its EventType
  // value is EVENT_TYPE_ followed by that name in upper case.
  for (int i = 0; i < oneof->field_count(); ++i) {
    const FieldDescriptor* field = oneof->field(i);
    if (field->name() == kOtherCase) continue;
    const auto* type_value = v1::EventType_descriptor()->FindValueByName(
        absl::StrCat("EVENT_TYPE_", absl::AsciiStrToUpper(field->name())));
    if (type_value == nullptr || field->message_type() == nullptr) {
      return absl::InternalError(
          absl::StrCat("oneof case ", field->name(), " has no EventType"));
    }
    auto rules = schema.RulesFor(field->message_type());
    if (!rules.ok()) return rules.status();
    if (rules->size() > 64) {  // the translator tracks them in a 64-bit mask
      return absl::InternalError(
          absl::StrCat(field->name(), ": more than 64 payload fields"));
    }
    schema.by_type_.emplace(
        field->name(),
        PayloadRules{static_cast<v1::EventType>(type_value->number()), field,
                     *std::move(rules)});
  }
  return schema;
}

}  // namespace convocore::gateway
