#include "services/jetstream/group_layout.h"

#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "convocore/webhooks/v1/event_stream_service.pb.h"
#include "services/hub/resume_info.h"

namespace convocore::jetstream {
namespace {

namespace v1 = convocore::webhooks::v1;

constexpr absl::string_view kConsumerPrefix = "cg_";
constexpr absl::string_view kReplayConsumerPrefix = "cgr_";
// Marks a description as ours, with the version of its encoding.
constexpr absl::string_view kDescriptionPrefix = "convocore consumer group v1 ";
// A member's max_in_flight bounds what a replica fetches for it, so the
// consumer's own limit only has to stay out of the way of 100 members.
constexpr std::int64_t kMaxAckPending = 100 * groups::kMaxInFlight;

}  // namespace

std::string EscapeGroupName(absl::string_view group) {
  std::string token;
  token.reserve(group.size() + 4);
  for (char c : group) {
    if (c == '_') {
      token += "__";
    } else if (c == '.') {
      token += "_d";
    } else {
      token.push_back(c);
    }
  }
  return token;
}

absl::StatusOr<std::string> UnescapeGroupName(absl::string_view token) {
  std::string group;
  group.reserve(token.size());
  for (std::size_t i = 0; i < token.size(); ++i) {
    if (token[i] != '_') {
      group.push_back(token[i]);
      continue;
    }
    if (i + 1 < token.size() && token[i + 1] == '_') {
      group.push_back('_');
    } else if (i + 1 < token.size() && token[i + 1] == 'd') {
      group.push_back('.');
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", token, "\" is not an escaped group name"));
    }
    ++i;
  }
  return group;
}

GroupNames NamesFor(absl::string_view stream, absl::string_view group) {
  const std::string token = EscapeGroupName(group);
  return GroupNames{
      .consumer = absl::StrCat(kConsumerPrefix, token),
      .replay_consumer = absl::StrCat(kReplayConsumerPrefix, token),
      .replay_subject = absl::StrCat(stream, "_replay.", token),
      .dead_letter_prefix = absl::StrCat("dl.", token, "."),
  };
}

std::string ReplayStreamName(absl::string_view stream) {
  return absl::StrCat(stream, "_REPLAY");
}

std::string ReplayStreamSubjects(absl::string_view stream) {
  return absl::StrCat(stream, "_replay.>");
}

std::string GroupsBucketName(absl::string_view stream) {
  return absl::StrCat(stream, "_GROUPS");
}

std::optional<std::string> GroupOfConsumer(absl::string_view consumer) {
  if (!absl::ConsumePrefix(&consumer, kConsumerPrefix)) return std::nullopt;
  absl::StatusOr<std::string> group = UnescapeGroupName(consumer);
  if (!group.ok() || !groups::ValidateGroupName(*group).ok()) {
    return std::nullopt;
  }
  return *std::move(group);
}

std::string SequenceKey(absl::string_view prefix, std::uint64_t sequence) {
  char digits[21];
  std::snprintf(digits, sizeof digits, "%020llu",
                static_cast<unsigned long long>(sequence));
  return absl::StrCat(prefix, digits);
}

std::optional<std::uint64_t> SequenceOfKey(absl::string_view prefix,
                                           absl::string_view key) {
  if (!absl::ConsumePrefix(&key, prefix) || key.size() != 20) {
    return std::nullopt;
  }
  for (char c : key) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return std::nullopt;
    }
  }
  std::uint64_t sequence = 0;
  if (!absl::SimpleAtoi(key, &sequence)) return std::nullopt;
  return sequence;
}

absl::StatusOr<std::string> GroupDescription(
    const groups::GroupSettings& settings) {
  v1::ConsumerGroup group;
  groups::SettingsToProto(settings, &group);
  std::string description = absl::StrCat(
      kDescriptionPrefix, absl::Base64Escape(group.SerializeAsString()));
  if (description.size() > kMaxDescriptionBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "consumer group \"", settings.name,
        "\" has a filter too long for "
        "JetStream: its settings take ",
        description.size(), " bytes, and a consumer description at most ",
        kMaxDescriptionBytes, "; list fewer agent ids or workspaces"));
  }
  return description;
}

absl::StatusOr<groups::GroupSettings> SettingsFromDescription(
    absl::string_view description) {
  std::string bytes;
  v1::ConsumerGroup group;
  if (!absl::ConsumePrefix(&description, kDescriptionPrefix) ||
      !absl::Base64Unescape(description, &bytes) ||
      !group.ParseFromString(bytes)) {
    return absl::DataLossError(
        "the consumer's description does not hold consumer group settings");
  }
  absl::StatusOr<groups::GroupSettings> settings =
      groups::SettingsFromProto(group);
  if (!settings.ok()) {
    return absl::DataLossError(
        absl::StrCat("the consumer's description holds invalid consumer "
                     "group settings: ",
                     settings.status().message()));
  }
  return settings;
}

absl::StatusOr<GroupConsumerConfig> ConsumerConfigFor(
    absl::string_view stream, const groups::GroupSettings& settings,
    const hub::StartPosition& start) {
  absl::StatusOr<std::string> description = GroupDescription(settings);
  if (!description.ok()) return description.status();
  GroupConsumerConfig config;
  config.durable = NamesFor(stream, settings.name).consumer;
  config.description = *std::move(description);
  config.ack_wait = settings.ack_deadline;
  config.max_ack_pending = kMaxAckPending;
  using Deliver = GroupConsumerConfig::Deliver;
  switch (start.kind) {
    case hub::StartPosition::Kind::kNow:
      config.deliver = Deliver::kNew;
      break;
    case hub::StartPosition::Kind::kOldest:
      config.deliver = Deliver::kAll;
      break;
    case hub::StartPosition::Kind::kAfterSequence:
      config.deliver = Deliver::kByStartSequence;
      config.start_sequence = start.after_sequence + 1;
      break;
    case hub::StartPosition::Kind::kFromTime:
      if (start.time < absl::UnixEpoch()) {
        return absl::InvalidArgumentError(
            "from_time must not be before 1970-01-01T00:00:00Z");
      }
      config.deliver = Deliver::kByStartTime;
      config.start_time = start.time;
      break;
  }
  return config;
}

DeliveryAction OnDelivered(std::uint64_t num_delivered,
                           std::uint32_t max_attempts) {
  return num_delivered > max_attempts ? DeliveryAction::kDeadLetter
                                      : DeliveryAction::kDeliver;
}

FailureAction OnFailed(std::uint64_t num_delivered,
                       std::uint32_t max_attempts) {
  return num_delivered >= max_attempts ? FailureAction::kDeadLetter
                                       : FailureAction::kRedeliver;
}

absl::Status CheckGroupPosition(absl::string_view group,
                                std::uint64_t delivered_stream_sequence,
                                std::uint64_t stream_first_sequence,
                                std::uint64_t stream_last_sequence) {
  // A stream that retention emptied reports a first sequence one above its
  // last, and a new one 0.
  if (stream_first_sequence == 0 ||
      delivered_stream_sequence + 1 >= stream_first_sequence) {
    return absl::OkStatus();
  }
  return hub::WithResumeInfo(
      absl::OutOfRangeError(absl::StrCat(
          "consumer group \"", group, "\" is at sequence ",
          delivered_stream_sequence,
          ", below the stream's retention: the oldest event still retained "
          "is ",
          stream_first_sequence,
          ", so matching events it had not consumed are gone; move it with "
          "SeekConsumerGroup to go on")),
      hub::ResumePoint{
          .last_sent_sequence = delivered_stream_sequence,
          .oldest_available_sequence = stream_first_sequence,
          .last_sequence = stream_last_sequence,
      });
}

}  // namespace convocore::jetstream
