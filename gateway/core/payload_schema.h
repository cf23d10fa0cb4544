// What the translator knows about each event type, read from the contract's
// descriptors so that it cannot drift from events.proto: for each `type`
// string, its EventType, its oneof case in Event, and for each payload key
// how to check and store it. Only the sender's enum strings ("web-chat",
// "vg", ...) and which documented fields are optional beyond what proto3
// `optional` says are written out here, from the spec.
//
// Rules per payload field, from its descriptor:
//   string, proto3 optional    -> optional string (absent or null: unset)
//   string                     -> required string
//   enum with a `<name>_raw`   -> string mapped to the enum, kept verbatim in
//                                 the `_raw` sibling; required unless listed
//                                 as optional below
//   string `<name>_json`       -> required object, kept as JSON text
//   int64 create_time_millis   -> required createdAt (milliseconds)
#ifndef GATEWAY_CORE_PAYLOAD_SCHEMA_H_
#define GATEWAY_CORE_PAYLOAD_SCHEMA_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "convocore/webhooks/v1/events.pb.h"
#include "google/protobuf/descriptor.h"

namespace convocore::gateway {

// The sender's strings for one enum of the contract.
struct EnumStrings {
  const google::protobuf::EnumDescriptor* type = nullptr;
  absl::flat_hash_map<absl::string_view, int> numbers;  // by sender's string
  int other = 0;  // the *_OTHER value for a string not listed
};

enum class FieldKind {
  kRequiredString,
  kOptionalString,
  kRequiredEnum,
  kOptionalEnum,
  kCreatedAt,
  kRequiredObject,
};

struct FieldRule {
  std::string json_name;  // the documented key, e.g. "agentId"
  FieldKind kind;
  const google::protobuf::FieldDescriptor* field = nullptr;
  // Enums only.
  const google::protobuf::FieldDescriptor* raw_field = nullptr;
  const EnumStrings* strings = nullptr;
};

struct PayloadRules {
  convocore::webhooks::v1::EventType event_type;
  // The Event field of the oneof `payload` for this type.
  const google::protobuf::FieldDescriptor* case_field = nullptr;
  std::vector<FieldRule> fields;

  // The rule for `key`, or null for a key the contract does not know.
  const FieldRule* Find(absl::string_view key) const;
};

class PayloadSchema {
 public:
  // The schema of events.proto. Fails (and keeps failing) if the contract
  // has a type, enum value or field kind this file does not handle; the
  // tests catch that before anything ships.
  static const absl::StatusOr<PayloadSchema>& Get();

  // The rules for a `type` string, or null for a type the contract does not
  // know.
  const PayloadRules* Find(absl::string_view type) const;

  // The sender's strings of `type`, or null.
  const EnumStrings* StringsOf(
      const google::protobuf::EnumDescriptor* type) const;

 private:
  PayloadSchema() = default;
  static absl::StatusOr<PayloadSchema> Build();
  absl::Status AddEnums();
  absl::StatusOr<std::vector<FieldRule>> RulesFor(
      const google::protobuf::Descriptor* payload) const;

  // Node maps: rules point to their EnumStrings.
  std::vector<std::unique_ptr<EnumStrings>> enums_;
  absl::flat_hash_map<std::string, PayloadRules> by_type_;
};

}  // namespace convocore::gateway

#endif  // GATEWAY_CORE_PAYLOAD_SCHEMA_H_
