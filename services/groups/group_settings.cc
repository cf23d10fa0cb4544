#include "services/groups/group_settings.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "services/hub/subscribe_request.h"

namespace convocore::groups {

namespace v1 = convocore::webhooks::v1;

namespace {

template <typename Field>
void SortUnique(Field* field) {
  std::sort(field->begin(), field->end());
  field->erase(std::unique(field->begin(), field->end()), field->end());
}

// The filter fields of `message` (ConsumerGroup or ConsumeRequest), sorted
// and unique, validated as a Subscribe filter is.
template <typename Message>
absl::StatusOr<v1::SubscribeRequest> FilterOf(const Message& message) {
  v1::SubscribeRequest filter;
  filter.mutable_event_types()->CopyFrom(message.event_types());
  filter.mutable_agent_ids()->CopyFrom(message.agent_ids());
  filter.mutable_channels()->CopyFrom(message.channels());
  filter.mutable_workspaces()->CopyFrom(message.workspaces());
  CanonicalizeFilter(&filter);
  absl::StatusOr<hub::SubscribeOptions> checked =
      hub::SubscribeOptionsFromRequest(filter);
  if (!checked.ok()) return checked.status();
  return filter;
}

absl::StatusOr<absl::Duration> AckDeadlineOf(
    const google::protobuf::Duration& d) {
  if (d.seconds() < 0 || d.nanos() < 0) {
    return absl::InvalidArgumentError("ack_deadline must not be negative");
  }
  if (d.seconds() == 0 && d.nanos() == 0) return kDefaultAckDeadline;
  const absl::Duration deadline =
      absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  if (deadline < kMinAckDeadline || deadline > kMaxAckDeadline) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ack_deadline must be between ", absl::FormatDuration(kMinAckDeadline),
        " and ", absl::FormatDuration(kMaxAckDeadline), ", not ",
        absl::FormatDuration(deadline)));
  }
  return deadline;
}

absl::StatusOr<std::uint32_t> MaxAttemptsOf(std::uint32_t attempts) {
  if (attempts == 0) return kDefaultMaxDeliveryAttempts;
  if (attempts > kMaxDeliveryAttempts) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_delivery_attempts must be at most ",
                     kMaxDeliveryAttempts, ", not ", attempts));
  }
  return attempts;
}

}  // namespace

void CanonicalizeFilter(v1::SubscribeRequest* filter) {
  SortUnique(filter->mutable_event_types());
  SortUnique(filter->mutable_agent_ids());
  SortUnique(filter->mutable_channels());
  SortUnique(filter->mutable_workspaces());
}

absl::Status ValidateGroupName(absl::string_view name) {
  if (name.empty()) {
    return absl::InvalidArgumentError("consumer_group must name a group");
  }
  const bool valid =
      name.size() <= 64 && absl::ascii_isalnum(name.front()) &&
      std::all_of(name.begin(), name.end(), [](char c) {
        return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-';
      });
  if (!valid) {
    return absl::InvalidArgumentError(
        "consumer_group must be 1 to 64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit");
  }
  return absl::OkStatus();
}

absl::StatusOr<GroupSettings> SettingsFromProto(
    const v1::ConsumerGroup& group) {
  GroupSettings settings;
  if (absl::Status name = ValidateGroupName(group.name()); !name.ok()) {
    return name;
  }
  settings.name = group.name();
  absl::StatusOr<v1::SubscribeRequest> filter = FilterOf(group);
  if (!filter.ok()) return filter.status();
  settings.filter = *std::move(filter);
  absl::StatusOr<absl::Duration> deadline = AckDeadlineOf(group.ack_deadline());
  if (!deadline.ok()) return deadline.status();
  settings.ack_deadline = *deadline;
  absl::StatusOr<std::uint32_t> attempts =
      MaxAttemptsOf(group.max_delivery_attempts());
  if (!attempts.ok()) return attempts.status();
  settings.max_delivery_attempts = *attempts;
  if (group.has_create_time()) {
    settings.create_time =
        absl::FromUnixSeconds(group.create_time().seconds()) +
        absl::Nanoseconds(group.create_time().nanos());
  }
  return settings;
}

void SettingsToProto(const GroupSettings& settings, v1::ConsumerGroup* out) {
  out->set_name(settings.name);
  out->mutable_event_types()->CopyFrom(settings.filter.event_types());
  out->mutable_agent_ids()->CopyFrom(settings.filter.agent_ids());
  out->mutable_channels()->CopyFrom(settings.filter.channels());
  out->mutable_workspaces()->CopyFrom(settings.filter.workspaces());
  const absl::Duration deadline = settings.ack_deadline;
  const std::int64_t seconds = absl::ToInt64Seconds(deadline);
  out->mutable_ack_deadline()->set_seconds(seconds);
  out->mutable_ack_deadline()->set_nanos(static_cast<std::int32_t>(
      absl::ToInt64Nanoseconds(deadline - absl::Seconds(seconds))));
  out->set_max_delivery_attempts(settings.max_delivery_attempts);
  if (settings.create_time != absl::Time()) {
    const std::int64_t nanos = absl::ToUnixNanos(settings.create_time);
    out->mutable_create_time()->set_seconds(nanos / 1'000'000'000);
    out->mutable_create_time()->set_nanos(
        static_cast<std::int32_t>(nanos % 1'000'000'000));
  }
}

template <typename Message>
absl::StatusOr<hub::StartPosition> StartPositionOf(const Message& message) {
  v1::SubscribeRequest start;
  if (message.has_after_sequence()) {
    start.set_after_sequence(message.after_sequence());
  } else if (message.has_from_oldest()) {
    start.set_from_oldest(message.from_oldest());
  } else if (message.has_from_time()) {
    *start.mutable_from_time() = message.from_time();
  }
  absl::StatusOr<hub::SubscribeOptions> options =
      hub::SubscribeOptionsFromRequest(start);
  if (!options.ok()) return options.status();
  return options->start;
}

template absl::StatusOr<hub::StartPosition> StartPositionOf(
    const v1::ConsumeRequest&);
template absl::StatusOr<hub::StartPosition> StartPositionOf(
    const v1::CreateConsumerGroupRequest&);
template absl::StatusOr<hub::StartPosition> StartPositionOf(
    const v1::SeekConsumerGroupRequest&);

absl::StatusOr<JoinRequest> JoinRequestFromProto(
    const v1::ConsumeRequest& request) {
  JoinRequest join;
  if (absl::Status name = ValidateGroupName(request.consumer_group());
      !name.ok()) {
    return name;
  }
  join.settings.name = request.consumer_group();
  absl::StatusOr<v1::SubscribeRequest> filter = FilterOf(request);
  if (!filter.ok()) return filter.status();
  join.settings.filter = *std::move(filter);
  join.filter_given =
      request.event_types_size() > 0 || request.agent_ids_size() > 0 ||
      request.channels_size() > 0 || request.workspaces_size() > 0;
  absl::StatusOr<absl::Duration> deadline =
      AckDeadlineOf(request.ack_deadline());
  if (!deadline.ok()) return deadline.status();
  join.settings.ack_deadline = *deadline;
  absl::StatusOr<std::uint32_t> attempts =
      MaxAttemptsOf(request.max_delivery_attempts());
  if (!attempts.ok()) return attempts.status();
  join.settings.max_delivery_attempts = *attempts;
  absl::StatusOr<hub::StartPosition> start = StartPositionOf(request);
  if (!start.ok()) return start.status();
  join.start = *start;
  if (request.max_in_flight() > kMaxInFlight) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_in_flight must be at most ", kMaxInFlight, ", not ",
                     request.max_in_flight()));
  }
  join.max_in_flight = request.max_in_flight() == 0 ? kDefaultMaxInFlight
                                                    : request.max_in_flight();
  return join;
}

absl::StatusOr<hub::SubscribeOptions> FeedOptions(
    const GroupSettings& settings, const hub::StartPosition& start) {
  absl::StatusOr<hub::SubscribeOptions> options =
      hub::SubscribeOptionsFromRequest(settings.filter);
  if (!options.ok()) return options.status();
  options->start = start;
  return options;
}

bool SameFilter(const v1::SubscribeRequest& a, const v1::SubscribeRequest& b) {
  auto same = [](const auto& x, const auto& y) {
    return std::equal(x.begin(), x.end(), y.begin(), y.end());
  };
  return same(a.event_types(), b.event_types()) &&
         same(a.agent_ids(), b.agent_ids()) &&
         same(a.channels(), b.channels()) &&
         same(a.workspaces(), b.workspaces());
}

}  // namespace convocore::groups
