#include "gateway/core/json_text.h"

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "rapidjson/writer.h"

namespace convocore::gateway {
namespace {

// RapidJSON's output stream concept, appending to a std::string.
class StringSink {
 public:
  using Ch = char;
  explicit StringSink(std::string* out) : out_(out) {}
  void Put(char c) { out_->push_back(c); }
  void Flush() {}

 private:
  std::string* out_;
};

using Writer = rapidjson::Writer<StringSink>;

absl::Status DuplicateKey(const JsonPath& parent, absl::string_view key) {
  return absl::InvalidArgumentError(absl::StrCat(
      parent.ToString(), ": duplicate key ", QuoteForMessage(key)));
}

absl::Status Write(const rapidjson::Value& value, const JsonPath& path,
                   Writer& writer) {
  switch (value.GetType()) {
    case rapidjson::kNullType:
      writer.Null();
      return absl::OkStatus();
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      writer.Bool(value.GetBool());
      return absl::OkStatus();
    case rapidjson::kNumberType:  // not in a JsonDocument (json_path.h)
      return absl::InternalError(
          absl::StrCat(path.ToString(), ": a number not kept as text"));
    case rapidjson::kStringType:
      if (IsJsonNumber(value)) {
        const absl::string_view text = JsonNumberText(value);
        writer.RawValue(text.data(), text.size(), rapidjson::kNumberType);
      } else {
        writer.String(value.GetString(), value.GetStringLength());
      }
      return absl::OkStatus();
    case rapidjson::kArrayType:
      writer.StartArray();
      for (rapidjson::SizeType i = 0; i < value.Size(); ++i) {
        if (absl::Status s = Write(value[i], JsonPath(path, i), writer);
            !s.ok()) {
          return s;
        }
      }
      writer.EndArray();
      return absl::OkStatus();
    case rapidjson::kObjectType: {
      absl::flat_hash_set<absl::string_view> keys;
      keys.reserve(value.MemberCount());
      writer.StartObject();
      for (const auto& member : value.GetObject()) {
        const absl::string_view key = StringOf(member.name);
        if (!keys.insert(key).second) return DuplicateKey(path, key);
        writer.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
        if (absl::Status s = Write(member.value, JsonPath(path, key), writer);
            !s.ok()) {
          return s;
        }
      }
      writer.EndObject();
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status JsonObjectText::Add(absl::string_view key,
                                 const rapidjson::Value& value,
                                 const JsonPath& parent) {
  if (!keys_.emplace(key).second) return DuplicateKey(parent, key);
  // Each member is written by a writer of its own: a Writer can only emit
  // one complete value, and the object's braces and commas are ours.
  text_.push_back(text_.empty() ? '{' : ',');
  StringSink sink(&text_);
  Writer key_writer(sink);
  key_writer.String(key.data(), static_cast<rapidjson::SizeType>(key.size()));
  text_.push_back(':');
  Writer value_writer(sink);
  return Write(value, JsonPath(parent, key), value_writer);
}

absl::Status JsonObjectText::AddMembers(const rapidjson::Value& object,
                                        const JsonPath& path,
                                        absl::string_view skip_key) {
  for (const auto& member : object.GetObject()) {
    const absl::string_view key = StringOf(member.name);
    if (!skip_key.empty() && key == skip_key) continue;
    if (absl::Status s = Add(key, member.value, path); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::string JsonObjectText::Finish() && {
  if (text_.empty()) text_.push_back('{');
  text_.push_back('}');
  return std::move(text_);
}

}  // namespace convocore::gateway
