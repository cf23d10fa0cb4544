// Parses one untrusted JSON text into a RapidJSON DOM under limits, so that
// hostile input (deep nesting, millions of keys, huge strings, invalid UTF-8)
// is refused while it is read, before it costs memory or stack.
//
// The parse is in situ (into a copy of the text, in the DOM's arena) and
// iterative (RapidJSON's kParseIterativeFlag: no recursion, so
// depth cannot exhaust the stack), validates UTF-8 (skipped for all-ASCII
// text), keeps every number as the text it was sent as (IsJsonNumber() and
// JsonNumberText() in json_path.h), and counts depth, keys,
// values and string lengths as the parser reports them, aborting at the first
// limit crossed. Trailing bytes after the value (including a NUL) are an error.
#ifndef GATEWAY_CORE_JSON_DOCUMENT_H_
#define GATEWAY_CORE_JSON_DOCUMENT_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rapidjson/allocators.h"
#include "rapidjson/document.h"

namespace convocore::gateway {

struct JsonLimits {
  // Containers nested in one another; the top-level value is at depth 1.
  int max_depth = 32;
  // Object members in the whole document.
  std::size_t max_keys = 10'000;
  // Values (scalars, objects, arrays) in the whole document.
  std::size_t max_values = 100'000;
  // Bytes of one string or key, after unescaping.
  std::size_t max_string_bytes = 256 << 10;
};

// One parsed document. Not copyable or movable: the DOM points into the
// object's own memory. Meant to live on the stack for one request; its first
// few KiB of DOM need no heap allocation.
class JsonDocument {
 public:
  JsonDocument();
  JsonDocument(const JsonDocument&) = delete;
  JsonDocument& operator=(const JsonDocument&) = delete;

  // Parses `text`. On failure, returns kInvalidArgument with a message that
  // starts with "body: " and names the byte offset and what was wrong; the
  // message never quotes the input.
  absl::Status Parse(absl::string_view text, const JsonLimits& limits);

  using Allocator = rapidjson::MemoryPoolAllocator<>;

  // The parsed value; null before a successful Parse().
  const rapidjson::Value& root() const { return document_; }
  rapidjson::Value& mutable_root() { return document_; }
  // Where values set on mutable_root() keep their strings.
  Allocator& allocator() { return value_allocator_; }

 private:
  using Document =
      rapidjson::GenericDocument<rapidjson::UTF8<>, Allocator, Allocator>;

  // Enough for the text and DOM of a typical webhook (a few hundred bytes
  // of JSON), and for the parser's stack of a ~10 KiB one.
  static constexpr std::size_t kValueArenaBytes = 8 << 10;
  static constexpr std::size_t kStackArenaBytes = 8 << 10;

  alignas(std::max_align_t) char value_arena_[kValueArenaBytes];
  alignas(std::max_align_t) char stack_arena_[kStackArenaBytes];
  Allocator value_allocator_;
  Allocator stack_allocator_;
  Document document_;
};

}  // namespace convocore::gateway

#endif  // GATEWAY_CORE_JSON_DOCUMENT_H_
