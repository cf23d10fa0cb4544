#include "gateway/core/content_id.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "xxhash.h"

namespace convocore::gateway {
namespace {

// Changing the encoding changes every id; bump the version when doing so.
constexpr absl::string_view kEncodingVersion = "convocore-event-id/1";

// Writes the canonical encoding: each value is a tag byte, then for strings
// and containers an 8-byte little-endian length, then its content. A typical
// payload's encoding needs no heap.
class Encoder {
 public:
  Encoder() = default;
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;

  void String(absl::string_view s) {
    Tagged('s', s.size());
    Put(s.data(), s.size());
  }

  absl::Status Value(const rapidjson::Value& v, const JsonPath& path,
                     absl::string_view skip_key) {
    switch (v.GetType()) {
      case rapidjson::kNullType:
        Put("n", 1);
        break;
      case rapidjson::kFalseType:
        Put("f", 1);
        break;
      case rapidjson::kTrueType:
        Put("t", 1);
        break;
      case rapidjson::kNumberType:  // not in a JsonDocument (json_path.h)
        return absl::InternalError("a number not kept as text");
      case rapidjson::kStringType:
        if (IsJsonNumber(v)) {
          Number(JsonNumberText(v));
        } else {
          String(StringOf(v));
        }
        break;
      case rapidjson::kArrayType:
        Tagged('[', v.Size());
        for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
          if (absl::Status s = Value(v[i], JsonPath(path, i), {}); !s.ok()) {
            return s;
          }
        }
        break;
      case rapidjson::kObjectType:
        return Object(v, path, skip_key);
    }
    return absl::OkStatus();
  }

  XXH128_hash_t Hash() const { return XXH3_128bits(data_, size_); }

 private:
  // Members in the order of their keys' bytes, so that key order in the
  // body does not matter.
  absl::Status Object(const rapidjson::Value& object, const JsonPath& path,
                      absl::string_view skip_key) {
    absl::InlinedVector<const rapidjson::Value::Member*, 16> members;
    for (const auto& m : object.GetObject()) {
      if (!skip_key.empty() && StringOf(m.name) == skip_key) continue;
      members.push_back(&m);
    }
    std::sort(members.begin(), members.end(), [](const auto* a, const auto* b) {
      return StringOf(a->name) < StringOf(b->name);
    });
    Tagged('{', members.size());
    for (std::size_t i = 0; i < members.size(); ++i) {
      const absl::string_view key = StringOf(members[i]->name);
      if (i > 0 && key == StringOf(members[i - 1]->name)) {
        return absl::InvalidArgumentError(absl::StrCat(
            path.ToString(), ": duplicate key ", QuoteForMessage(key)));
      }
      String(key);
      // Only the top level can hold the secret.
      if (absl::Status s = Value(members[i]->value, JsonPath(path, key), {});
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }

  // Numbers by value: 1, 1.0 and 1e0 encode alike, as do -0 and 0. Texts
  // that round to one double encode alike too, except those beyond its
  // range (1e400), which encode as their text.
  void Number(absl::string_view text) {
    if (text.find_first_of(".eE") == absl::string_view::npos) {
      if (std::uint64_t u; text[0] != '-' && absl::SimpleAtoi(text, &u)) {
        return Tagged('u', u);
      }
      if (std::int64_t i; text[0] == '-' && absl::SimpleAtoi(text, &i)) {
        return Tagged(i == 0 ? 'u' : 'i', static_cast<std::uint64_t>(i));
      }
    }
    double d = 0;
    if (!absl::SimpleAtod(text, &d) || !std::isfinite(d)) {
      Tagged('N', text.size());
      return Put(text.data(), text.size());
    }
    if (std::trunc(d) == d && std::fabs(d) < 0x1p63) {
      const auto i = static_cast<std::int64_t>(d);
      return Tagged(i >= 0 ? 'u' : 'i', static_cast<std::uint64_t>(i));
    }
    std::uint64_t bits;
    std::memcpy(&bits, &d, sizeof(bits));
    Tagged('d', bits);
  }

  void Tagged(char tag, std::uint64_t v) {
    char bytes[9] = {tag};
    for (int i = 0; i < 8; ++i) bytes[i + 1] = static_cast<char>(v >> (8 * i));
    Put(bytes, sizeof(bytes));
  }

  void Put(const char* p, std::size_t n) {
    if (n > capacity_ - size_) Grow(n);
    std::memcpy(data_ + size_, p, n);
    size_ += n;
  }

  void Grow(std::size_t n) {
    capacity_ = std::max(2 * capacity_, size_ + n);
    auto bigger = std::make_unique<char[]>(capacity_);
    std::memcpy(bigger.get(), data_, size_);
    heap_ = std::move(bigger);
    data_ = heap_.get();
  }

  char inline_[2048];
  std::unique_ptr<char[]> heap_;
  char* data_ = inline_;
  std::size_t size_ = 0;
  std::size_t capacity_ = sizeof(inline_);
};

}  // namespace

absl::StatusOr<std::string> ContentId(absl::string_view type,
                                      const rapidjson::Value& payload,
                                      const JsonPath& payload_path,
                                      absl::string_view skip_key) {
  Encoder encoder;
  encoder.String(kEncodingVersion);
  encoder.String(type);
  if (absl::Status s = encoder.Value(payload, payload_path, skip_key);
      !s.ok()) {
    return s;
  }
  XXH128_canonical_t digest;
  XXH128_canonicalFromHash(&digest, encoder.Hash());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "evt_";
  id.reserve(4 + 2 * sizeof(digest.digest));
  for (unsigned char byte : digest.digest) {
    id.push_back(kHex[byte >> 4]);
    id.push_back(kHex[byte & 0xF]);
  }
  return id;
}

}  // namespace convocore::gateway
