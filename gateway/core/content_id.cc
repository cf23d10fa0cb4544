#include "gateway/core/content_id.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "xxhash.h"

namespace convocore::gateway {
namespace {

// Changing the encoding changes every id; bump the version when doing so.
constexpr absl::string_view kEncodingVersion = "convocore-event-id/1";

void AppendU64(std::uint64_t v, std::string& out) {
  char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(v >> (8 * i));
  out.append(bytes, sizeof(bytes));
}

void AppendString(absl::string_view s, std::string& out) {
  out.push_back('s');
  AppendU64(s.size(), out);
  out.append(s.data(), s.size());
}

// Numbers by value: 1, 1.0 and 1e0 encode alike, as do -0 and 0.
void AppendNumber(const rapidjson::Value& n, std::string& out) {
  if (n.IsUint64()) {
    out.push_back('u');
    AppendU64(n.GetUint64(), out);
    return;
  }
  if (n.IsInt64()) {
    out.push_back('i');
    AppendU64(static_cast<std::uint64_t>(n.GetInt64()), out);
    return;
  }
  const double d = n.GetDouble();
  if (std::trunc(d) == d && std::fabs(d) < 0x1p63) {
    const auto i = static_cast<std::int64_t>(d);
    out.push_back(i >= 0 ? 'u' : 'i');
    AppendU64(static_cast<std::uint64_t>(i), out);
    return;
  }
  std::uint64_t bits;
  std::memcpy(&bits, &d, sizeof(bits));
  out.push_back('d');
  AppendU64(bits, out);
}

absl::Status AppendValue(const rapidjson::Value& v, const JsonPath& path,
                         absl::string_view skip_key, std::string& out);

absl::Status AppendObject(const rapidjson::Value& object, const JsonPath& path,
                          absl::string_view skip_key, std::string& out) {
  absl::InlinedVector<const rapidjson::Value::Member*, 16> members;
  members.reserve(object.MemberCount());
  for (const auto& m : object.GetObject()) {
    if (!skip_key.empty() && StringOf(m.name) == skip_key) continue;
    members.push_back(&m);
  }
  std::sort(members.begin(), members.end(), [](const auto* a, const auto* b) {
    return StringOf(a->name) < StringOf(b->name);
  });
  out.push_back('{');
  AppendU64(members.size(), out);
  for (std::size_t i = 0; i < members.size(); ++i) {
    const absl::string_view key = StringOf(members[i]->name);
    if (i > 0 && key == StringOf(members[i - 1]->name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          path.ToString(), ": duplicate key ", QuoteForMessage(key)));
    }
    AppendString(key, out);
    // Only the top level can hold the secret.
    if (absl::Status s =
            AppendValue(members[i]->value, JsonPath(path, key), {}, out);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status AppendValue(const rapidjson::Value& v, const JsonPath& path,
                         absl::string_view skip_key, std::string& out) {
  switch (v.GetType()) {
    case rapidjson::kNullType:
      out.push_back('n');
      break;
    case rapidjson::kFalseType:
      out.push_back('f');
      break;
    case rapidjson::kTrueType:
      out.push_back('t');
      break;
    case rapidjson::kNumberType:
      AppendNumber(v, out);
      break;
    case rapidjson::kStringType:
      AppendString(StringOf(v), out);
      break;
    case rapidjson::kArrayType:
      out.push_back('[');
      AppendU64(v.Size(), out);
      for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
        if (absl::Status s = AppendValue(v[i], JsonPath(path, i), {}, out);
            !s.ok()) {
          return s;
        }
      }
      break;
    case rapidjson::kObjectType:
      return AppendObject(v, path, skip_key, out);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ContentId(absl::string_view type,
                                      const rapidjson::Value& payload,
                                      const JsonPath& payload_path,
                                      absl::string_view skip_key) {
  std::string canonical;
  canonical.reserve(512);
  AppendString(kEncodingVersion, canonical);
  AppendString(type, canonical);
  if (absl::Status s = AppendValue(payload, payload_path, skip_key, canonical);
      !s.ok()) {
    return s;
  }
  XXH128_canonical_t digest;
  XXH128_canonicalFromHash(&digest,
                           XXH3_128bits(canonical.data(), canonical.size()));
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
