#include "gateway/core/json_path.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace convocore::gateway {
namespace {

bool IsPlainKey(absl::string_view key) {
  if (key.empty()) return false;
  for (char c : key) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' &&
        c != '-') {
      return false;
    }
  }
  return true;
}

// The longest prefix of `text` of at most `max_bytes` that does not end in
// the middle of a UTF-8 sequence.
absl::string_view Utf8Prefix(absl::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t end = max_bytes;
  // Back up over continuation bytes (10xxxxxx) to the start of a sequence.
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
    --end;
  }
  return text.substr(0, end);
}

}  // namespace

std::string JsonPath::ToString() const {
  std::string out;
  AppendTo(out);
  return out.empty() ? std::string("body") : out;
}

void JsonPath::AppendTo(std::string& out) const {
  if (parent_ == nullptr) return;  // the root itself has no name
  parent_->AppendTo(out);
  if (is_index_) {
    absl::StrAppend(&out, "[", index_, "]");
  } else if (IsPlainKey(key_) && key_.size() <= 64) {
    if (!out.empty()) out.push_back('.');
    out.append(key_.data(), key_.size());
  } else {
    absl::StrAppend(&out, "[", QuoteForMessage(key_), "]");
  }
}

std::string QuoteForMessage(absl::string_view text, std::size_t max_bytes) {
  const absl::string_view shown = Utf8Prefix(text, max_bytes);
  std::string out;
  out.reserve(shown.size() + 8);
  out.push_back('"');
  for (char c : shown) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20 || u == 0x7F) {
      static constexpr char kHex[] = "0123456789abcdef";
      out.append("\\u00");
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xF]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  if (shown.size() < text.size()) out.append("...");
  return out;
}

absl::string_view JsonTypeName(const rapidjson::Value& value) {
  switch (value.GetType()) {
    case rapidjson::kNullType:
      return "null";
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      return "boolean";
    case rapidjson::kNumberType:
      return "number";
    case rapidjson::kStringType:
      return IsJsonNumber(value) ? "number" : "string";
    case rapidjson::kArrayType:
      return "array";
    case rapidjson::kObjectType:
      return "object";
  }
  return "value";
}

}  // namespace convocore::gateway
