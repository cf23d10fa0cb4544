// Names a place in a JSON document for error messages ("payload.formData.a"),
// and renders untrusted JSON text safely inside such a message.
//
// A JsonPath is a chain of nodes that live on the stack of the walk that
// visits the document, so following a path costs nothing until an error
// needs its text.
#ifndef GATEWAY_CORE_JSON_PATH_H_
#define GATEWAY_CORE_JSON_PATH_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"
#include "rapidjson/document.h"

namespace convocore::gateway {

class JsonPath {
 public:
  // The document itself (rendered as "body").
  JsonPath() = default;
  // The member `key` of the object at `parent`.
  JsonPath(const JsonPath& parent, absl::string_view key)
      : parent_(&parent), key_(key) {}
  // The element `index` of the array at `parent`.
  JsonPath(const JsonPath& parent, std::size_t index)
      : parent_(&parent), index_(index), is_index_(true) {}

  // "payload.formData.items[2]"; keys that are not plain identifiers are
  // quoted ("payload[\"a b\"]"), long ones shortened.
  std::string ToString() const;

 private:
  void AppendTo(std::string& out) const;

  const JsonPath* parent_ = nullptr;
  absl::string_view key_;
  std::size_t index_ = 0;
  bool is_index_ = false;
};

// `text` between double quotes, with quotes, backslashes and control
// characters escaped, cut to at most `max_bytes` of input at a UTF-8
// boundary (then followed by "..."): safe to put in a message or a log line.
std::string QuoteForMessage(absl::string_view text, std::size_t max_bytes = 64);

// A parsed JsonDocument keeps each number as a string value holding
// kJsonNumberMark and then the number's text exactly as sent, so that no
// number is rounded to a double (9007199254740993, 1e400). No JSON string
// can start with that byte: 0xFF never occurs in UTF-8. On such a document,
// ask these functions, never RapidJSON's IsString()/IsNumber().
inline constexpr char kJsonNumberMark = '\xFF';

inline bool IsJsonNumber(const rapidjson::Value& value) {
  return value.IsString() && value.GetStringLength() > 0 &&
         value.GetString()[0] == kJsonNumberMark;
}

inline bool IsJsonString(const rapidjson::Value& value) {
  return value.IsString() && !IsJsonNumber(value);
}

// The text of a number value (IsJsonNumber()), as sent.
inline absl::string_view JsonNumberText(const rapidjson::Value& value) {
  return absl::string_view(value.GetString() + 1, value.GetStringLength() - 1);
}

// "null", "boolean", "number", "string", "array" or "object".
absl::string_view JsonTypeName(const rapidjson::Value& value);

// The text of a JSON string value (IsJsonString()).
inline absl::string_view StringOf(const rapidjson::Value& value) {
  return absl::string_view(value.GetString(), value.GetStringLength());
}

}  // namespace convocore::gateway

#endif  // GATEWAY_CORE_JSON_PATH_H_
