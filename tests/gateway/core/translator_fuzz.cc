// libFuzzer target over the translator (built and run by
// buildscripts/fuzz.sh). Any body must give an Event or an error of one of
// the three documented kinds, never a crash, a leak or undefined behaviour;
// an accepted Event must survive a protobuf round trip (valid UTF-8, nesting
// within protobuf's limits); and the secret must appear in no output.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gateway/core/translator.h"
#include "google/protobuf/stubs/common.h"
#include "google/protobuf/util/message_differencer.h"

namespace {

using ::convocore::gateway::Translation;
using ::convocore::gateway::Translator;

// The spec samples' secret, so that the seeds get past verification.
constexpr char kSecret[] = "your_workspace_secret";

void Require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "translator_fuzz: broken promise: %s\n", what);
    std::abort();
  }
}

bool IsHex(absl::string_view s) {
  return s.find_first_not_of("0123456789abcdef") == absl::string_view::npos;
}

void CheckTranslation(const Translation& t) {
  const auto& event = t.event;
  Require(event.id().size() == 36 && absl::StartsWith(event.id(), "evt_") &&
              IsHex(absl::string_view(event.id()).substr(4)),
          "id is evt_ and 32 hex digits");
  Require(!event.type_raw().empty(), "type is set");
  Require(event.event_type() != convocore::webhooks::v1::EVENT_TYPE_UNSPECIFIED,
          "event_type is set");
  Require(
      event.payload_case() != convocore::webhooks::v1::Event::PAYLOAD_NOT_SET,
      "a payload case is set");
  Require(event.has_receive_time(), "receive_time is set");

  const std::string bytes = event.SerializeAsString();
  convocore::webhooks::v1::Event parsed;
  Require(parsed.ParseFromString(bytes), "event parses back");
  Require(google::protobuf::util::MessageDifferencer::Equals(parsed, event),
          "event round-trips");

  Require(!absl::StrContains(event.DebugString(), kSecret),
          "secret not in the event");
  Require(!absl::StrContains(absl::StrJoin(t.observations.unknown_fields, "\n"),
                             kSecret),
          "secret not in observations");
}

void CheckError(const absl::Status& status) {
  const auto code = status.code();
  Require(code == absl::StatusCode::kInvalidArgument ||
              code == absl::StatusCode::kUnauthenticated ||
              code == absl::StatusCode::kResourceExhausted,
          "error is 400, 401 or 413");
  Require(!status.message().empty(), "error has a message");
  Require(
      google::protobuf::internal::IsStructurallyValidUTF8(
          status.message().data(), static_cast<int>(status.message().size())),
      "error message is UTF-8");
  Require(!absl::StrContains(status.message(), kSecret),
          "secret not in the error");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  static const Translator* translator = [] {
    auto created = Translator::Create({.secrets = {kSecret, "second_secret"}});
    Require(created.ok(), "translator created");
    return created->release();
  }();
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<Translation> t =
      translator->Translate(body, absl::FromUnixSeconds(1'718'035'201));
  if (t.ok()) {
    CheckTranslation(*t);
  } else {
    CheckError(t.status());
  }
  return 0;
}
