#include "gateway/core/translator.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gateway/core/content_id.h"
#include "gateway/core/json_path.h"
#include "gateway/core/json_text.h"
#include "google/protobuf/timestamp.pb.h"

namespace convocore::gateway {
namespace {

namespace v1 = ::convocore::webhooks::v1;
using ::google::protobuf::Message;
using ::google::protobuf::Reflection;
using ::google::protobuf::Timestamp;

constexpr absl::string_view kTypeKey = "type";
constexpr absl::string_view kPayloadKey = "payload";
constexpr absl::string_view kSecretKey = "workspaceSecret";
constexpr absl::string_view kCreatedAtKey = "createdAt";

// google.protobuf.Timestamp spans 0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59.999999999Z.
constexpr std::int64_t kMinTimestampSeconds = -62'135'596'800;
constexpr std::int64_t kMaxTimestampSeconds = 253'402'300'799;
constexpr std::int64_t kMaxCreatedAtMillis = kMaxTimestampSeconds * 1000 + 999;

// The first member of `object` named `key`, and how many there are.
struct Member {
  const rapidjson::Value* value = nullptr;
  int count = 0;
};

Member FindMember(const rapidjson::Value& object, absl::string_view key) {
  Member found;
  for (const auto& m : object.GetObject()) {
    if (StringOf(m.name) == key && found.count++ == 0) found.value = &m.value;
  }
  return found;
}

absl::Status Invalid(const JsonPath& path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path.ToString(), ": ", what));
}

absl::Status WrongType(const JsonPath& path, absl::string_view expected,
                       const rapidjson::Value& got) {
  return Invalid(
      path, absl::StrCat("expected ", expected, ", got ", JsonTypeName(got)));
}

absl::Status Missing(const JsonPath& path, absl::string_view what) {
  return Invalid(path, absl::StrCat("required ", what, " is missing"));
}

// The one member `key` of `object`, at `path`, which must be a string (or an
// object if `want_object`); failures have `code`.
absl::StatusOr<const rapidjson::Value*> OneMember(
    const rapidjson::Value& object, absl::string_view key, const JsonPath& path,
    bool want_object,
    absl::StatusCode code = absl::StatusCode::kInvalidArgument) {
  const Member m = FindMember(object, key);
  const absl::string_view noun = want_object ? "object" : "string";
  std::string problem;
  if (m.count == 0) {
    problem = absl::StrCat("required ", noun, " is missing");
  } else if (m.count > 1) {
    problem = "the key appears more than once";
  } else if (want_object ? !m.value->IsObject() : !IsJsonString(*m.value)) {
    problem = absl::StrCat("expected ", want_object ? "an " : "a ", noun,
                           ", got ", JsonTypeName(*m.value));
  } else {
    return m.value;
  }
  return absl::Status(code, absl::StrCat(path.ToString(), ": ", problem));
}

// A value for an error message; long strings are not quoted. (The secret
// was redacted from the body before any message can quote it.)
std::string Describe(const rapidjson::Value& v) {
  if (IsJsonNumber(v)) {
    const absl::string_view text = JsonNumberText(v);
    if (text.size() > 32) {
      return absl::StrCat("a number of ", text.size(), " characters");
    }
    return absl::StrCat("number ", text);
  }
  if (v.IsString()) {
    const absl::string_view s = StringOf(v);
    if (s.size() > 32) {
      return absl::StrCat("a string of ", s.size(), " bytes");
    }
    return absl::StrCat("string ", QuoteForMessage(s));
  }
  return std::string(JsonTypeName(v));
}

// createdAt: a JSON integer or a string of decimal digits, in milliseconds
// since the Unix epoch, within the range of google.protobuf.Timestamp.
absl::StatusOr<std::int64_t> ParseCreatedAt(const rapidjson::Value& v,
                                            const JsonPath& path) {
  std::uint64_t millis = 0;
  bool parsed = false;
  if (v.IsString()) {
    // A number or a string, both of decimal digits only.
    const absl::string_view s =
        IsJsonNumber(v) ? JsonNumberText(v) : StringOf(v);
    parsed = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
      return absl::ascii_isdigit(c);
    }) && absl::SimpleAtoi(s, &millis);
  }
  if (!parsed || millis > static_cast<std::uint64_t>(kMaxCreatedAtMillis)) {
    return Invalid(
        path, absl::StrCat("expected an integer of milliseconds from 0 to ",
                           kMaxCreatedAtMillis, ", got ", Describe(v)));
  }
  return static_cast<std::int64_t>(millis);
}

void SetMillis(std::int64_t millis, Timestamp* out) {
  out->set_seconds(millis / 1000);
  out->set_nanos(static_cast<std::int32_t>(millis % 1000) * 1'000'000);
}

bool SetTime(absl::Time t, Timestamp* out) {
  if (t < absl::FromUnixSeconds(kMinTimestampSeconds) ||
      t >= absl::FromUnixSeconds(kMaxTimestampSeconds + 1)) {
    return false;
  }
  const std::int64_t seconds = absl::ToUnixSeconds(t);  // rounds down
  out->set_seconds(seconds);
  out->set_nanos(static_cast<std::int32_t>(
      (t - absl::FromUnixSeconds(seconds)) / absl::Nanoseconds(1)));
  return true;
}

constexpr absl::string_view kRedacted = "[redacted]";

// Replaces the secret wherever else the body holds it, in keys and strings,
// but for `skip` (the secret's own member). Returns whether it replaced any.
bool Redact(rapidjson::Value& v, absl::string_view secret,
            const rapidjson::Value* skip, JsonDocument::Allocator& allocator) {
  const auto redact_string = [&](rapidjson::Value& s) {
    if (s.GetStringLength() < secret.size() ||
        !absl::StrContains(StringOf(s), secret)) {
      return false;
    }
    if (IsJsonNumber(s)) {  // a secret of digits: the number goes whole
      s.SetString(rapidjson::StringRef(kRedacted.data(), kRedacted.size()));
      return true;
    }
    const std::string text =
        absl::StrReplaceAll(StringOf(s), {{secret, kRedacted}});
    s.SetString(text.data(), static_cast<rapidjson::SizeType>(text.size()),
                allocator);
    return true;
  };
  bool redacted = false;
  if (v.IsString()) {
    redacted = redact_string(v);
  } else if (v.IsArray()) {
    for (auto& element : v.GetArray()) {
      redacted |= Redact(element, secret, skip, allocator);
    }
  } else if (v.IsObject()) {
    // By index: comparing RapidJSON's mutable member iterators is ambiguous
    // in C++20.
    for (rapidjson::SizeType i = 0; i < v.MemberCount(); ++i) {
      auto& member = v.MemberBegin()[i];
      if (&member.value == skip) continue;
      redacted |= redact_string(member.name);
      redacted |= Redact(member.value, secret, skip, allocator);
    }
  }
  return redacted;
}

bool IsRequired(FieldKind kind) {
  return kind != FieldKind::kOptionalString && kind != FieldKind::kOptionalEnum;
}

// What a field of `kind` holds, for messages: "required <noun> is missing",
// "expected <article> <noun>, got ...".
absl::string_view Noun(FieldKind kind) {
  switch (kind) {
    case FieldKind::kRequiredString:
    case FieldKind::kRequiredEnum:
      return "string";
    case FieldKind::kOptionalString:
    case FieldKind::kOptionalEnum:
      return "string or null";
    case FieldKind::kCreatedAt:
      return "integer of milliseconds";
    case FieldKind::kRequiredObject:
      return "object";
  }
  return "value";
}

std::string Expected(FieldKind kind) {
  return absl::StrCat(kind == FieldKind::kRequiredObject ? "an " : "a ",
                      Noun(kind));
}

// Fills the typed payload message from one JSON object of a known type.
class PayloadFiller {
 public:
  PayloadFiller(const PayloadRules& rules, Translation& out)
      : rules_(rules), out_(out) {}

  absl::Status Fill(const rapidjson::Value& payload, const JsonPath& path) {
    v1::Event& event = out_.event;
    message_ = event.GetReflection()->MutableMessage(&event, rules_.case_field);
    reflection_ = message_->GetReflection();
    std::uint64_t seen = 0;
    JsonObjectText extras;
    for (const auto& member : payload.GetObject()) {
      const absl::string_view key = StringOf(member.name);
      if (key == kSecretKey) continue;
      const FieldRule* rule = rules_.Find(key);
      if (rule == nullptr) {
        if (absl::Status s = extras.Add(key, member.value, path); !s.ok()) {
          return s;
        }
        out_.observations.unknown_fields.push_back(
            absl::StrCat(kPayloadKey, ".", key));
        continue;
      }
      seen |= std::uint64_t{1} << (rule - rules_.fields.data());
      if (absl::Status s = Set(*rule, member.value, JsonPath(path, key));
          !s.ok()) {
        return s;
      }
    }
    for (std::size_t i = 0; i < rules_.fields.size(); ++i) {
      const FieldRule& rule = rules_.fields[i];
      if (IsRequired(rule.kind) && (seen & (std::uint64_t{1} << i)) == 0) {
        return Missing(JsonPath(path, rule.json_name), Noun(rule.kind));
      }
    }
    if (!extras.empty())
      event.set_payload_extras_json(std::move(extras).Finish());
    return absl::OkStatus();
  }

 private:
  absl::Status Set(const FieldRule& rule, const rapidjson::Value& v,
                   const JsonPath& path) {
    switch (rule.kind) {
      case FieldKind::kOptionalString:
        if (v.IsNull()) return absl::OkStatus();
        [[fallthrough]];
      case FieldKind::kRequiredString:
        if (!IsJsonString(v)) return WrongType(path, Expected(rule.kind), v);
        reflection_->SetString(message_, rule.field, std::string(StringOf(v)));
        return absl::OkStatus();
      case FieldKind::kOptionalEnum:
        if (v.IsNull()) return absl::OkStatus();
        [[fallthrough]];
      case FieldKind::kRequiredEnum:
        if (!IsJsonString(v)) return WrongType(path, Expected(rule.kind), v);
        SetEnum(rule, StringOf(v));
        return absl::OkStatus();
      case FieldKind::kCreatedAt: {
        absl::StatusOr<std::int64_t> millis = ParseCreatedAt(v, path);
        if (!millis.ok()) return millis.status();
        reflection_->SetInt64(message_, rule.field, *millis);
        SetMillis(*millis, out_.event.mutable_create_time());
        return absl::OkStatus();
      }
      case FieldKind::kRequiredObject: {
        if (!v.IsObject()) return WrongType(path, Expected(rule.kind), v);
        JsonObjectText text;
        if (absl::Status s = text.AddMembers(v, path); !s.ok()) return s;
        reflection_->SetString(message_, rule.field, std::move(text).Finish());
        return absl::OkStatus();
      }
    }
    return absl::OkStatus();
  }

  void SetEnum(const FieldRule& rule, absl::string_view text) {
    int number = rule.strings->other;
    if (auto it = rule.strings->numbers.find(text);
        it != rule.strings->numbers.end()) {
      number = it->second;
    } else {
      out_.observations.unknown_enum_values.push_back(
          absl::StrCat(kPayloadKey, ".", rule.json_name));
    }
    reflection_->SetEnumValue(message_, rule.field, number);
    reflection_->SetString(message_, rule.raw_field, std::string(text));
  }

  const PayloadRules& rules_;
  Translation& out_;
  Message* message_ = nullptr;
  const Reflection* reflection_ = nullptr;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Translator>> Translator::Create(
    TranslatorOptions options) {
  const TranslatorLimits& l = options.limits;
  if (l.max_body_bytes == 0 || l.max_body_bytes > (std::size_t{1} << 31) ||
      l.max_depth < 3 || l.max_depth > TranslatorLimits::kMaxDepth ||
      l.max_keys == 0 || l.max_string_bytes == 0 || l.max_values == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "translator limits out of range: max_body_bytes must be 1 to 2^31, "
        "max_depth 3 to ",
        TranslatorLimits::kMaxDepth, ", the others at least 1"));
  }
  absl::StatusOr<SecretVerifier> verifier =
      SecretVerifier::Create(options.secrets);
  if (!verifier.ok()) return verifier.status();
  const absl::StatusOr<PayloadSchema>& schema = PayloadSchema::Get();
  if (!schema.ok()) return schema.status();
  return std::unique_ptr<Translator>(
      new Translator(l, *std::move(verifier), *schema));
}

Translator::Translator(TranslatorLimits limits, SecretVerifier verifier,
                       const PayloadSchema& schema)
    : limits_(limits),
      json_limits_{limits.max_depth, limits.max_keys, limits.max_values,
                   limits.max_string_bytes},
      verifier_(std::make_shared<const SecretVerifier>(std::move(verifier))),
      schema_(schema) {}

absl::Status Translator::SetSecrets(const std::vector<std::string>& secrets) {
  absl::StatusOr<SecretVerifier> verifier = SecretVerifier::Create(secrets);
  if (!verifier.ok()) return verifier.status();
  auto next = std::make_shared<const SecretVerifier>(*std::move(verifier));
  absl::MutexLock lock(&verifier_mu_);
  verifier_ = std::move(next);
  return absl::OkStatus();
}

absl::StatusOr<Translation> Translator::Translate(
    std::string_view body_view, absl::Time receive_time) const {
  const absl::string_view body(body_view.data(), body_view.size());
  if (body.size() > limits_.max_body_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("body: ", body.size(), " bytes exceed the limit of ",
                     limits_.max_body_bytes));
  }
  JsonDocument document;
  if (absl::Status s = document.Parse(body, json_limits_); !s.ok()) return s;
  const rapidjson::Value& root = document.root();
  const JsonPath root_path;
  if (!root.IsObject()) return WrongType(root_path, "a JSON object", root);

  // What it takes to find the secret.
  const JsonPath payload_path(root_path, kPayloadKey);
  const absl::StatusOr<const rapidjson::Value*> payload =
      OneMember(root, kPayloadKey, payload_path, /*want_object=*/true);
  if (!payload.ok()) return payload.status();

  // The secret, before anything else of the payload is looked at.
  const JsonPath secret_path(payload_path, kSecretKey);
  const absl::StatusOr<const rapidjson::Value*> secret =
      OneMember(**payload, kSecretKey, secret_path, /*want_object=*/false,
                absl::StatusCode::kUnauthenticated);
  if (!secret.ok()) return secret.status();
  const absl::string_view secret_text = StringOf(**secret);
  std::optional<std::string> workspace;
  {
    absl::ReaderMutexLock lock(&verifier_mu_);
    workspace = verifier_->Match(secret_text);
  }
  if (!workspace.has_value()) {
    return absl::UnauthenticatedError(absl::StrCat(
        secret_path.ToString(), ": does not match any configured secret"));
  }
  // Whatever the sender put elsewhere, nothing below may copy the secret.
  const bool redacted = Redact(document.mutable_root(), secret_text, *secret,
                               document.allocator());

  const JsonPath type_path(root_path, kTypeKey);
  const absl::StatusOr<const rapidjson::Value*> type =
      OneMember(root, kTypeKey, type_path, /*want_object=*/false);
  if (!type.ok()) return type.status();
  const absl::string_view type_text = StringOf(**type);
  if (type_text.empty()) {
    return Invalid(type_path, "expected a non-empty string");
  }

  // The same webhook from two workspaces is two events: a labelled secret's
  // workspace is part of the id (unlabelled ones keep the id as it was).
  absl::StatusOr<std::string> id =
      ContentId(workspace->empty()
                    ? type_text
                    : absl::StrCat("workspace:", *workspace, "\n", type_text),
                **payload, payload_path, kSecretKey);
  if (!id.ok()) return id.status();

  Translation out;
  out.observations.secret_redacted = redacted;
  v1::Event& event = out.event;
  event.set_id(*std::move(id));
  event.set_workspace(*std::move(workspace));
  event.set_type_raw(std::string(type_text));
  if (!SetTime(receive_time, event.mutable_receive_time())) {
    return absl::InternalError(
        "receive_time is outside the range of google.protobuf.Timestamp");
  }

  JsonObjectText envelope_extras;
  for (const auto& member : root.GetObject()) {
    const absl::string_view key = StringOf(member.name);
    if (key == kTypeKey || key == kPayloadKey) continue;
    out.observations.unknown_fields.emplace_back(key);
    if (key == kSecretKey) continue;  // a misplaced secret is never kept
    if (absl::Status s = envelope_extras.Add(key, member.value, root_path);
        !s.ok()) {
      return s;
    }
  }
  if (!envelope_extras.empty()) {
    event.set_envelope_extras_json(std::move(envelope_extras).Finish());
  }

  if (const PayloadRules* rules = schema_.Find(type_text); rules != nullptr) {
    event.set_event_type(rules->event_type);
    PayloadFiller filler(*rules, out);
    if (absl::Status s = filler.Fill(**payload, payload_path); !s.ok()) {
      return s;
    }
    return out;
  }

  // A type this contract does not know yet: kept whole, without the secret.
  event.set_event_type(v1::EVENT_TYPE_OTHER);
  out.observations.unknown_type = true;
  JsonObjectText other;
  if (absl::Status s = other.AddMembers(**payload, payload_path, kSecretKey);
      !s.ok()) {
    return s;
  }
  event.set_other_json(std::move(other).Finish());
  // Its createdAt, when it has a valid one, still dates the event.
  if (const Member created = FindMember(**payload, kCreatedAtKey);
      created.count == 1) {
    if (auto millis = ParseCreatedAt(*created.value,
                                     JsonPath(payload_path, kCreatedAtKey));
        millis.ok()) {
      SetMillis(*millis, event.mutable_create_time());
    }
  }
  return out;
}

}  // namespace convocore::gateway
