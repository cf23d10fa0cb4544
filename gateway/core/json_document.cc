#include "gateway/core/json_document.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gateway/core/json_path.h"
#include "services/json/huge_numbers.h"
#include "rapidjson/error/en.h"
#include "rapidjson/reader.h"

namespace convocore::gateway {
namespace {

// Numbers come as their text and are converted here: RapidJSON 1.1.0's own
// full-precision strtod has undefined behaviour on some inputs ("0e-50").
constexpr unsigned kParseFlags = rapidjson::kParseInsituFlag |
                                 rapidjson::kParseIterativeFlag |
                                 rapidjson::kParseNumbersAsStringsFlag;

// Whether every byte is ASCII, a word at a time: most webhooks are, and
// ASCII text needs no UTF-8 validation while it is parsed.
bool IsAscii(absl::string_view text) {
  std::uint64_t any = 0;
  std::size_t i = 0;
  for (; i + 8 <= text.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, text.data() + i, sizeof(word));
    any |= word;
  }
  for (; i < text.size(); ++i) any |= static_cast<unsigned char>(text[i]);
  return (any & 0x8080808080808080u) == 0;
}

// RapidJSON decodes an escaped lone low surrogate ("\udc00") into the bytes
// ED B0 80, which is not UTF-8; protobuf would then refuse the event. In
// valid UTF-8, ED is only ever followed by 80..9F.
bool HasEncodedSurrogate(const char* text, std::size_t length) {
  const char* end = text + length;
  for (const char* p = text;
       (p = static_cast<const char*>(std::memchr(p, '\xED', end - p))); ++p) {
    if (p + 1 < end && static_cast<unsigned char>(p[1]) >= 0xA0) return true;
  }
  return false;
}

// Forwards the parser's events to the document that builds the DOM, counting
// them against the limits; returning false stops the parse at once.
template <typename Document>
class LimitingHandler {
 public:
  // `check_surrogates`: whether the text has a "\u" escape at all; without
  // one, no string can hold an encoded surrogate.
  // `buffer` is the text being parsed in situ, and `swapped` the numbers
  // SwapHugeNumbers() took out of it.
  LimitingHandler(Document& document, const JsonLimits& limits,
                  bool check_surrogates, const char* buffer,
                  const absl::flat_hash_map<std::size_t, std::string>& swapped)
      : document_(document),
        limits_(limits),
        check_surrogates_(check_surrogates),
        buffer_(buffer),
        swapped_(swapped) {}

  // Why the handler stopped the parse; empty if it did not.
  const std::string& failure() const { return failure_; }

  bool Null() { return CountValue() && document_.Null(); }
  bool Bool(bool b) { return CountValue() && document_.Bool(b); }
  bool Int(int i) { return CountValue() && document_.Int(i); }
  bool Uint(unsigned u) { return CountValue() && document_.Uint(u); }
  bool Int64(int64_t i) { return CountValue() && document_.Int64(i); }
  bool Uint64(uint64_t u) { return CountValue() && document_.Uint64(u); }
  bool Double(double d) { return CountValue() && document_.Double(d); }
  // `str` is a valid JSON number: kept as its text, behind kJsonNumberMark
  // (see json_path.h), so that no number is ever rounded.
  bool RawNumber(const char* str, rapidjson::SizeType length, bool copy) {
    if (!CountValue()) return false;
    if (!swapped_.empty()) {
      if (auto it = swapped_.find(str - buffer_); it != swapped_.end()) {
        str = it->second.data();
        length = static_cast<rapidjson::SizeType>(it->second.size());
      }
    }
    if (length > limits_.max_string_bytes) {
      return Fail(absl::StrCat("a number longer than ",
                               limits_.max_string_bytes, " bytes"));
    }
    char* text =
        static_cast<char*>(document_.GetAllocator().Malloc(length + 1));
    text[0] = kJsonNumberMark;
    std::memcpy(text + 1, str, length);
    return document_.String(text, length + 1, /*copy=*/false);
  }
  bool String(const char* str, rapidjson::SizeType length, bool copy) {
    return CountValue() && CheckString(str, length) &&
           document_.String(str, length, copy);
  }
  bool Key(const char* str, rapidjson::SizeType length, bool copy) {
    if (++keys_ > limits_.max_keys) {
      return Fail(absl::StrCat("more than ", limits_.max_keys, " object keys"));
    }
    return CheckString(str, length) && document_.Key(str, length, copy);
  }
  bool StartObject() {
    return CountValue() && Enter() && document_.StartObject();
  }
  bool EndObject(rapidjson::SizeType members) {
    --depth_;
    return document_.EndObject(members);
  }
  bool StartArray() {
    return CountValue() && Enter() && document_.StartArray();
  }
  bool EndArray(rapidjson::SizeType elements) {
    --depth_;
    return document_.EndArray(elements);
  }

 private:
  bool Fail(std::string why) {
    failure_ = std::move(why);
    return false;
  }
  bool CountValue() {
    return ++values_ <= limits_.max_values ||
           Fail(absl::StrCat("more than ", limits_.max_values, " values"));
  }
  bool Enter() {
    return ++depth_ <= limits_.max_depth ||
           Fail(absl::StrCat("nested deeper than ", limits_.max_depth,
                             " levels"));
  }
  bool CheckString(const char* str, rapidjson::SizeType length) {
    if (length > limits_.max_string_bytes) {
      return Fail(absl::StrCat("a string or key longer than ",
                               limits_.max_string_bytes, " bytes"));
    }
    if (check_surrogates_ && HasEncodedSurrogate(str, length)) {
      return Fail("invalid UTF-8 (an unpaired surrogate escape)");
    }
    return true;
  }

  Document& document_;
  const JsonLimits& limits_;
  const bool check_surrogates_;
  const char* const buffer_;
  const absl::flat_hash_map<std::size_t, std::string>& swapped_;
  int depth_ = 0;
  std::size_t keys_ = 0;
  std::size_t values_ = 0;
  std::string failure_;
};

}  // namespace

JsonDocument::JsonDocument()
    : value_allocator_(value_arena_, sizeof(value_arena_)),
      stack_allocator_(stack_arena_, sizeof(stack_arena_)),
      document_(&value_allocator_, kStackArenaBytes / 2, &stack_allocator_) {}

absl::Status JsonDocument::Parse(absl::string_view text,
                                 const JsonLimits& limits) {
  // Parsed in situ: strings are unescaped in place in a copy of the text
  // that lives in the DOM's arena, instead of being copied once more.
  char* buffer = static_cast<char*>(value_allocator_.Malloc(text.size() + 1));
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  absl::flat_hash_map<std::size_t, std::string> swapped;
  if (json::MightHoldHugeNumber(text)) {
    json::SwapHugeNumbers(buffer, text.size(), &swapped);
  }
  rapidjson::InsituStringStream stream(buffer);
  LimitingHandler<Document> handler(document_, limits,
                                    absl::StrContains(text, "\\u"), buffer,
                                    swapped);
  rapidjson::GenericReader<rapidjson::UTF8<>, rapidjson::UTF8<>, Allocator>
      reader(&stack_allocator_);
  rapidjson::ParseResult result;
  const bool ascii = IsAscii(text);
  auto generate = [&](Document&) {
    result =
        ascii
            ? reader.Parse<kParseFlags>(stream, handler)
            : reader.Parse<kParseFlags | rapidjson::kParseValidateEncodingFlag>(
                  stream, handler);
    return !result.IsError();
  };
  document_.Populate(generate);

  if (result.Code() == rapidjson::kParseErrorTermination) {
    return absl::InvalidArgumentError(absl::StrCat(
        "body: ", handler.failure(), " (at byte ", result.Offset(), ")"));
  }
  if (result.IsError()) {
    return absl::InvalidArgumentError(
        absl::StrCat("body: invalid JSON at byte ", result.Offset(), ": ",
                     rapidjson::GetParseError_En(result.Code())));
  }
  // The parser stops at a NUL byte as if the text ended there.
  if (stream.Tell() != text.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("body: invalid JSON at byte ", stream.Tell(),
                     ": unexpected bytes after the value"));
  }
  return absl::OkStatus();
}

}  // namespace convocore::gateway
