#include "gateway/core/json_struct.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace convocore::gateway {

absl::Status AddToStruct(absl::string_view key, const rapidjson::Value& value,
                         const JsonPath& parent,
                         google::protobuf::Struct* out) {
  auto [it, inserted] = out->mutable_fields()->insert({std::string(key), {}});
  if (!inserted) {
    return absl::InvalidArgumentError(absl::StrCat(
        parent.ToString(), ": duplicate key ", QuoteForMessage(key)));
  }
  return JsonToValue(value, JsonPath(parent, key), &it->second);
}

absl::Status JsonObjectToStruct(const rapidjson::Value& json,
                                const JsonPath& path,
                                google::protobuf::Struct* out,
                                absl::string_view skip_key) {
  for (const auto& member : json.GetObject()) {
    const absl::string_view key = StringOf(member.name);
    if (!skip_key.empty() && key == skip_key) continue;
    if (absl::Status s = AddToStruct(key, member.value, path, out); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status JsonToValue(const rapidjson::Value& json, const JsonPath& path,
                         google::protobuf::Value* out) {
  switch (json.GetType()) {
    case rapidjson::kNullType:
      out->set_null_value(google::protobuf::NULL_VALUE);
      return absl::OkStatus();
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      out->set_bool_value(json.GetBool());
      return absl::OkStatus();
    case rapidjson::kNumberType:
      out->set_number_value(json.GetDouble());
      return absl::OkStatus();
    case rapidjson::kStringType:
      out->set_string_value(json.GetString(), json.GetStringLength());
      return absl::OkStatus();
    case rapidjson::kArrayType: {
      google::protobuf::ListValue* list = out->mutable_list_value();
      list->mutable_values()->Reserve(static_cast<int>(json.Size()));
      for (rapidjson::SizeType i = 0; i < json.Size(); ++i) {
        if (absl::Status s =
                JsonToValue(json[i], JsonPath(path, i), list->add_values());
            !s.ok()) {
          return s;
        }
      }
      return absl::OkStatus();
    }
    case rapidjson::kObjectType:
      return JsonObjectToStruct(json, path, out->mutable_struct_value());
  }
  return absl::OkStatus();
}

}  // namespace convocore::gateway
