// Copies JSON whose shape the contract does not know (extras, formData, the
// payload of an unknown type) into google.protobuf.Struct / Value, as the
// protobuf JSON mapping defines them: numbers become doubles.
#ifndef GATEWAY_CORE_JSON_STRUCT_H_
#define GATEWAY_CORE_JSON_STRUCT_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "gateway/core/json_path.h"
#include "google/protobuf/struct.pb.h"
#include "rapidjson/document.h"

namespace convocore::gateway {

// Sets `out` to `json`. Fails with kInvalidArgument naming the path of an
// object that has the same key twice (a Struct cannot hold both values).
// Recursion is bounded by the parse's depth limit.
absl::Status JsonToValue(const rapidjson::Value& json, const JsonPath& path,
                         google::protobuf::Value* out);

// Adds the members of the object `json` to `out`, except a member named
// `skip_key` (when not empty). Fails like JsonToValue(), and for a key that
// `out` already holds.
absl::Status JsonObjectToStruct(const rapidjson::Value& json,
                                const JsonPath& path,
                                google::protobuf::Struct* out,
                                absl::string_view skip_key = {});

// Adds `value` under `key` to `out`, failing on a key `out` already holds.
absl::Status AddToStruct(absl::string_view key, const rapidjson::Value& value,
                         const JsonPath& parent, google::protobuf::Struct* out);

}  // namespace convocore::gateway

#endif  // GATEWAY_CORE_JSON_STRUCT_H_
