#include "services/auth/subscriber_tokens.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "services/auth/workspace_label.h"

namespace convocore::auth {
namespace {

namespace v1 = convocore::webhooks::v1;

std::optional<TokenDigest> ParseHexDigest(absl::string_view hex) {
  TokenDigest digest{};
  if (hex.size() != 2 * digest.size()) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    c = absl::ascii_tolower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < digest.size(); ++i) {
    const int high = nibble(hex[2 * i]);
    const int low = nibble(hex[2 * i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    digest[i] = static_cast<std::uint8_t>(high << 4 | low);
  }
  return digest;
}

// The contract's type of a sender's type string, if it names one.
std::optional<v1::EventType> TypeOfString(absl::string_view text) {
  v1::EventType type;
  if (text.empty() || text == "other" ||
      !v1::EventType_Parse(
          absl::StrCat("EVENT_TYPE_", absl::AsciiStrToUpper(text)), &type) ||
      type == v1::EVENT_TYPE_UNSPECIFIED) {
    return std::nullopt;
  }
  // The names are the sender's strings in upper case, so a mixed-case
  // string is not one of them.
  if (absl::AsciiStrToLower(text) != text) return std::nullopt;
  return type;
}

// Reads the file with RapidJSON's SAX reader, which knows where in the text
// each value ends, so that every error names its line.
class TokensHandler
    : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, TokensHandler> {
 public:
  TokensHandler(absl::string_view text, const rapidjson::StringStream* stream)
      : text_(text), stream_(stream) {}

  bool Null() { return Unexpected("null"); }
  bool Bool(bool) { return Unexpected("a boolean"); }
  bool Int(int) { return Unexpected("a number"); }
  bool Uint(unsigned) { return Unexpected("a number"); }
  bool Int64(std::int64_t) { return Unexpected("a number"); }
  bool Uint64(std::uint64_t) { return Unexpected("a number"); }
  bool Double(double) { return Unexpected("a number"); }

  bool String(const char* data, rapidjson::SizeType length, bool) {
    const absl::string_view value(data, length);
    switch (state_) {
      case State::kName:
        if (value.empty()) return Fail("a token's \"name\" is empty");
        token_.name = std::string(value);
        state_ = State::kToken;
        return true;
      case State::kSha256: {
        std::optional<TokenDigest> digest = ParseHexDigest(value);
        if (!digest.has_value()) {
          return Fail(
              "\"sha256\" must be the token's SHA-256 as 64 hex digits");
        }
        token_.digest = *digest;
        has_digest_ = true;
        state_ = State::kToken;
        return true;
      }
      case State::kCertificate:
        if (value.empty()) return Fail("\"certificate\" is empty");
        token_.certificate = std::string(value);
        state_ = State::kToken;
        return true;
      case State::kWorkspace: {
        if (!IsWorkspaceLabel(value)) {
          return Fail(absl::StrCat(
              "\"", value,
              "\" is not a workspace label (a lowercase letter, then up to "
              "62 of a-z, 0-9, _ and -)"));
        }
        token_.workspaces.emplace_back(value);
        return true;
      }
      case State::kType: {
        if (value == "*") {
          token_.all_types = true;
          ++types_listed_;
          return true;
        }
        std::optional<v1::EventType> type = TypeOfString(value);
        if (!type.has_value()) {
          return Fail(absl::StrCat(
              "unknown event type \"", value,
              "\" (the sender's type strings, e.g. \"lead_captured\", or "
              "\"*\" for every type)"));
        }
        token_.types.push_back(*type);
        ++types_listed_;
        return true;
      }
      default:
        return Unexpected("a string");
    }
  }

  bool StartObject() {
    switch (state_) {
      case State::kStart:
        state_ = State::kRoot;
        return true;
      case State::kTokens:
        token_ = SubscriberGrant();
        has_digest_ = false;
        has_types_ = false;
        has_workspaces_ = false;
        types_listed_ = 0;
        state_ = State::kToken;
        return true;
      default:
        return Unexpected("an object");
    }
  }

  bool Key(const char* data, rapidjson::SizeType length, bool) {
    const absl::string_view key(data, length);
    if (state_ == State::kRoot) {
      if (key != "tokens") {
        return Fail(absl::StrCat("unknown key \"", key,
                                 "\" (the file holds \"tokens\")"));
      }
      if (seen_tokens_) return Fail("\"tokens\" is given twice");
      seen_tokens_ = true;
      state_ = State::kTokensValue;
      return true;
    }
    if (state_ != State::kToken) return Unexpected("a key");
    if (key == "name") {
      state_ = State::kName;
    } else if (key == "sha256") {
      state_ = State::kSha256;
    } else if (key == "certificate") {
      state_ = State::kCertificate;
    } else if (key == "event_types") {
      state_ = State::kTypesValue;
    } else if (key == "workspaces") {
      state_ = State::kWorkspacesValue;
    } else {
      return Fail(absl::StrCat(
          "unknown key \"", key,
          "\" (a token has \"name\", \"sha256\", \"event_types\" and "
          "\"workspaces\")"));
    }
    return true;
  }

  bool EndObject(rapidjson::SizeType) {
    if (state_ == State::kRoot) {
      if (!seen_tokens_) return Fail("the file has no \"tokens\" list");
      state_ = State::kDone;
      return true;
    }
    if (state_ != State::kToken) return Unexpected("the end of an object");
    if (token_.name.empty()) return Fail("a token has no \"name\"");
    if (has_digest_ == !token_.certificate.empty()) {
      return Fail(absl::StrCat(
          "token \"", token_.name,
          "\" needs one of \"sha256\" (a bearer token's digest) and "
          "\"certificate\" (a client certificate's identity)"));
    }
    if (!has_types_ || types_listed_ == 0) {
      return Fail(absl::StrCat(
          "token \"", token_.name,
          "\" has no \"event_types\": list the types it may read, or \"*\""));
    }
    if (!names_.insert(token_.name).second) {
      return Fail(absl::StrCat("the name \"", token_.name, "\" is used twice"));
    }
    for (const SubscriberGrant& other : grants_) {
      if (has_digest_ && other.certificate.empty() &&
          other.digest == token_.digest) {
        return Fail(absl::StrCat("tokens \"", other.name, "\" and \"",
                                 token_.name, "\" have the same sha256"));
      }
      if (!token_.certificate.empty() &&
          other.certificate == token_.certificate) {
        return Fail(absl::StrCat("tokens \"", other.name, "\" and \"",
                                 token_.name, "\" name the same certificate"));
      }
    }
    std::sort(token_.workspaces.begin(), token_.workspaces.end());
    token_.workspaces.erase(
        std::unique(token_.workspaces.begin(), token_.workspaces.end()),
        token_.workspaces.end());
    if (has_workspaces_ && token_.workspaces.empty()) {
      return Fail(absl::StrCat("token \"", token_.name,
                               "\" has an empty \"workspaces\" list: leave "
                               "it out for every workspace"));
    }
    if (token_.all_types) {
      token_.types.clear();
    } else {
      std::sort(token_.types.begin(), token_.types.end());
      token_.types.erase(std::unique(token_.types.begin(), token_.types.end()),
                         token_.types.end());
    }
    grants_.push_back(std::move(token_));
    state_ = State::kTokens;
    return true;
  }

  bool StartArray() {
    if (state_ == State::kTokensValue) {
      state_ = State::kTokens;
      return true;
    }
    if (state_ == State::kWorkspacesValue) {
      if (has_workspaces_) {
        return Fail(absl::StrCat("token \"", token_.name,
                                 "\" gives \"workspaces\" twice"));
      }
      has_workspaces_ = true;
      state_ = State::kWorkspace;
      return true;
    }
    if (state_ == State::kTypesValue) {
      if (has_types_) {
        return Fail(absl::StrCat("token \"", token_.name,
                                 "\" gives \"event_types\" twice"));
      }
      has_types_ = true;
      state_ = State::kType;
      return true;
    }
    return Unexpected("an array");
  }

  bool EndArray(rapidjson::SizeType) {
    if (state_ == State::kTokens) {
      state_ = State::kRoot;
      return true;
    }
    if (state_ == State::kType || state_ == State::kWorkspace) {
      state_ = State::kToken;
      return true;
    }
    return Unexpected("the end of an array");
  }

  int line() const {
    const std::size_t at = std::min(stream_->Tell(), text_.size());
    return 1 + static_cast<int>(
                   std::count(text_.begin(), text_.begin() + at, '\n'));
  }
  const std::string& error() const { return error_; }
  std::vector<SubscriberGrant> TakeGrants() { return std::move(grants_); }

 private:
  enum class State {
    kStart,            // before the root object
    kRoot,             // in the root object
    kTokensValue,      // after "tokens"
    kTokens,           // in the tokens list
    kToken,            // in a token
    kName,             // after "name"
    kSha256,           // after "sha256"
    kCertificate,      // after "certificate"
    kTypesValue,       // after "event_types"
    kType,             // in the types list
    kWorkspacesValue,  // after "workspaces"
    kWorkspace,        // in the workspaces list
    kDone,
  };

  bool Fail(std::string reason) {
    error_ = absl::StrCat("line ", line(), ": ", reason);
    return false;
  }

  bool Unexpected(absl::string_view what) {
    switch (state_) {
      case State::kStart:
        return Fail(
            absl::StrCat("expected an object holding \"tokens\", got ", what));
      case State::kTokensValue:
        return Fail(absl::StrCat("\"tokens\" must be a list, got ", what));
      case State::kTokens:
        return Fail(absl::StrCat("each token must be an object, got ", what));
      case State::kName:
        return Fail(absl::StrCat("\"name\" must be a string, got ", what));
      case State::kSha256:
        return Fail(absl::StrCat("\"sha256\" must be a string, got ", what));
      case State::kCertificate:
        return Fail(
            absl::StrCat("\"certificate\" must be a string, got ", what));
      case State::kTypesValue:
        return Fail(absl::StrCat("\"event_types\" must be a list, got ", what));
      case State::kType:
        return Fail(
            absl::StrCat("each event type must be a string, got ", what));
      case State::kWorkspacesValue:
        return Fail(absl::StrCat("\"workspaces\" must be a list, got ", what));
      case State::kWorkspace:
        return Fail(
            absl::StrCat("each workspace must be a string, got ", what));
      default:
        return Fail(absl::StrCat("unexpected ", what));
    }
  }

  const absl::string_view text_;
  const rapidjson::StringStream* const stream_;
  State state_ = State::kStart;
  bool seen_tokens_ = false;
  SubscriberGrant token_;
  bool has_digest_ = false;
  bool has_types_ = false;
  bool has_workspaces_ = false;
  int types_listed_ = 0;
  absl::flat_hash_set<std::string> names_;
  std::vector<SubscriberGrant> grants_;
  std::string error_;
};

}  // namespace

TokenDigest DigestOf(absl::string_view token) {
  TokenDigest digest{};
  unsigned int length = 0;
  EVP_Digest(token.data(), token.size(), digest.data(), &length, EVP_sha256(),
             nullptr);
  return digest;
}

bool SubscriberGrant::Allows(v1::EventType type) const {
  return all_types || std::binary_search(types.begin(), types.end(), type);
}

bool SubscriberGrant::AllowsWorkspace(const std::string& workspace) const {
  return workspaces.empty() ||
         std::binary_search(workspaces.begin(), workspaces.end(), workspace);
}

absl::StatusOr<SubscriberTokens> SubscriberTokens::Parse(
    absl::string_view json) {
  const std::string text(json);  // StringStream reads up to a NUL
  rapidjson::StringStream stream(text.c_str());
  TokensHandler handler(text, &stream);
  rapidjson::Reader reader;
  const rapidjson::ParseResult parsed =
      reader.Parse<rapidjson::kParseStopWhenDoneFlag>(stream, handler);
  if (!handler.error().empty()) {
    return absl::InvalidArgumentError(handler.error());
  }
  if (parsed.IsError()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "line ", handler.line(),
        ": not JSON: ", rapidjson::GetParseError_En(parsed.Code())));
  }
  // Past the root object only white space may follow.
  for (std::size_t at = stream.Tell(); at < text.size(); ++at) {
    if (!absl::ascii_isspace(static_cast<unsigned char>(text[at]))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", handler.line(), ": text after the end of the JSON object"));
    }
  }
  return SubscriberTokens(handler.TakeGrants());
}

const SubscriberGrant* SubscriberTokens::FindByCertificate(
    const std::vector<std::string>& identities) const {
  for (const SubscriberGrant& grant : grants_) {
    if (grant.certificate.empty()) continue;
    for (const std::string& identity : identities) {
      if (identity == grant.certificate) return &grant;
    }
  }
  return nullptr;
}

const SubscriberGrant* SubscriberTokens::FindByDigest(
    const TokenDigest& digest) const {
  // Every digest is compared in full, whatever the earlier ones gave.
  const SubscriberGrant* found = nullptr;
  for (const SubscriberGrant& grant : grants_) {
    if (!grant.certificate.empty()) continue;
    const bool same =
        CRYPTO_memcmp(grant.digest.data(), digest.data(), digest.size()) == 0;
    if (same) found = &grant;
  }
  return found;
}

const SubscriberGrant* SubscriberTokens::Find(absl::string_view token) const {
  return FindByDigest(DigestOf(token));
}

absl::StatusOr<absl::string_view> BearerToken(
    const std::string* authorization) {
  if (authorization == nullptr || authorization->empty()) {
    return absl::UnauthenticatedError(
        "a subscriber token is required: send \"authorization: Bearer "
        "<token>\" metadata");
  }
  absl::string_view value = *authorization;
  if (value.size() < 7 ||
      !absl::EqualsIgnoreCase(value.substr(0, 7), "bearer ")) {
    return absl::UnauthenticatedError(
        "the authorization metadata must be \"Bearer <token>\"");
  }
  value.remove_prefix(7);
  value = absl::StripAsciiWhitespace(value);
  if (value.empty()) {
    return absl::UnauthenticatedError(
        "the authorization metadata holds no token after \"Bearer\"");
  }
  return value;
}

absl::Status Authorize(const SubscriberGrant& grant,
                       v1::SubscribeRequest* request) {
  for (const std::string& workspace : request->workspaces()) {
    if (!grant.AllowsWorkspace(workspace)) {
      return absl::PermissionDeniedError(
          absl::StrCat("subscriber \"", grant.name,
                       "\" may not read workspace \"", workspace, "\""));
    }
  }
  if (request->workspaces().empty()) {
    for (const std::string& workspace : grant.workspaces) {
      request->add_workspaces(workspace);
    }
  }
  if (request->event_types().empty()) {
    for (v1::EventType type : grant.types) request->add_event_types(type);
    return absl::OkStatus();
  }
  for (int type : request->event_types()) {
    if (!grant.Allows(static_cast<v1::EventType>(type))) {
      return absl::PermissionDeniedError(absl::StrCat(
          "subscriber \"", grant.name, "\" may not read event type \"",
          TypeString(static_cast<v1::EventType>(type)), "\""));
    }
  }
  return absl::OkStatus();
}

absl::Status StillAllowed(const SubscriberGrant& grant,
                          const std::vector<v1::EventType>& event_types,
                          const std::vector<std::string>& workspaces) {
  if (workspaces.empty() && !grant.workspaces.empty()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "subscriber \"", grant.name, "\" may no longer read every workspace"));
  }
  for (const std::string& workspace : workspaces) {
    if (!grant.AllowsWorkspace(workspace)) {
      return absl::PermissionDeniedError(
          absl::StrCat("subscriber \"", grant.name,
                       "\" may no longer read workspace \"", workspace, "\""));
    }
  }
  if (event_types.empty() && !grant.all_types) {
    return absl::PermissionDeniedError(absl::StrCat(
        "subscriber \"", grant.name, "\" may no longer read every event type"));
  }
  for (v1::EventType type : event_types) {
    if (!grant.Allows(type)) {
      return absl::PermissionDeniedError(absl::StrCat(
          "subscriber \"", grant.name, "\" may no longer read event type \"",
          TypeString(type), "\""));
    }
  }
  return absl::OkStatus();
}

std::string TypeString(v1::EventType type) {
  if (type == v1::EVENT_TYPE_OTHER) return "other";
  const std::string& name = v1::EventType_Name(type);
  if (name.empty()) return absl::StrCat(static_cast<int>(type));
  return absl::AsciiStrToLower(absl::StripPrefix(name, "EVENT_TYPE_"));
}

}  // namespace convocore::auth
