// How a consumer group is laid out in JetStream, for consumer groups on
// `--store=jetstream` (docs/decisions/0024-consumer-groups-local-first.md):
// the names of its consumers, KV keys and replay subject, its settings as
// its consumer's Description, its consumer's configuration, and what the
// gateway does with each delivery by its delivery count. Pure: the cnats
// adapter copies these into cnats' structs, so that every replica lays a
// group out the same way.
#ifndef SERVICES_JETSTREAM_GROUP_LAYOUT_H_
#define SERVICES_JETSTREAM_GROUP_LAYOUT_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/groups/group_settings.h"
#include "services/hub/event_hub.h"

namespace convocore::jetstream {

// JetStream refuses longer consumer descriptions.
inline constexpr std::size_t kMaxDescriptionBytes = 4096;

// `group` as one token of a consumer name, a KV key or a subject: '_'
// becomes "__" and '.' becomes "_d", so that distinct group names stay
// distinct and none holds a '.'.
std::string EscapeGroupName(absl::string_view group);
// The inverse; INVALID_ARGUMENT for a token EscapeGroupName never makes.
absl::StatusOr<std::string> UnescapeGroupName(absl::string_view token);

// The JetStream names of one group of the events stream `stream`.
struct GroupNames {
  std::string consumer;            // on the events stream
  std::string replay_consumer;     // on ReplayStreamName(stream)
  std::string replay_subject;      // what that consumer reads
  std::string dead_letter_prefix;  // KV keys of its dead letters
};
GroupNames NamesFor(absl::string_view stream, absl::string_view group);

// The work-queue stream replayed dead letters go through, and its subjects.
std::string ReplayStreamName(absl::string_view stream);
std::string ReplayStreamSubjects(absl::string_view stream);
// The KV bucket of dead letters and last errors.
std::string GroupsBucketName(absl::string_view stream);

// The group a consumer of the events stream belongs to, or nullopt for a
// consumer that is not a group's (the gateway's own readers, or anyone
// else's).
std::optional<std::string> GroupOfConsumer(absl::string_view consumer);

// `prefix` then the sequence in 20 digits, so that keys sort by sequence.
std::string SequenceKey(absl::string_view prefix, std::uint64_t sequence);
// The sequence of a key SequenceKey(prefix, ·) made; nullopt otherwise.
std::optional<std::uint64_t> SequenceOfKey(absl::string_view prefix,
                                           absl::string_view key);

// The settings as the consumer's Description; INVALID_ARGUMENT when they do
// not fit (a filter with very many agent ids or workspaces).
absl::StatusOr<std::string> GroupDescription(
    const groups::GroupSettings& settings);
// The inverse; DATA_LOSS for a description GroupDescription did not make.
absl::StatusOr<groups::GroupSettings> SettingsFromDescription(
    absl::string_view description);

struct GroupConsumerConfig {
  enum class Deliver { kAll, kNew, kByStartSequence, kByStartTime };
  std::string durable;
  std::string description;
  Deliver deliver = Deliver::kNew;
  std::uint64_t start_sequence = 0;  // kByStartSequence
  absl::Time start_time;             // kByStartTime
  absl::Duration ack_wait;
  // Unlimited: the gateway enforces max_delivery_attempts itself, so that
  // an event past its last attempt becomes a dead letter instead of
  // JetStream silently giving up on it.
  std::int64_t max_deliver = -1;
  std::int64_t max_ack_pending = 0;
};

// The durable consumer of a group that starts at `start`.
absl::StatusOr<GroupConsumerConfig> ConsumerConfigFor(
    absl::string_view stream, const groups::GroupSettings& settings,
    const hub::StartPosition& start);

// What the gateway does with a message JetStream delivered for the
// `num_delivered`th time: deliver it as that attempt, or, past the last
// attempt (its deadline passed on the last one), dead-letter it.
enum class DeliveryAction { kDeliver, kDeadLetter };
DeliveryAction OnDelivered(std::uint64_t num_delivered,
                           std::uint32_t max_attempts);
// What a failed delivery (a nack, the member leaving) leads to: a Nak for
// another attempt, or, after the last, a dead letter and a Term.
enum class FailureAction { kRedeliver, kDeadLetter };
FailureAction OnFailed(std::uint64_t num_delivered, std::uint32_t max_attempts);

// OK while the group's consumer has delivered every message up to the
// stream's first one; OUT_OF_RANGE (with a ResumeInfo detail) when
// retention removed messages it never delivered, so that fetching would
// skip them silently.
absl::Status CheckGroupPosition(absl::string_view group,
                                std::uint64_t delivered_stream_sequence,
                                std::uint64_t stream_first_sequence,
                                std::uint64_t stream_last_sequence);

}  // namespace convocore::jetstream

#endif  // SERVICES_JETSTREAM_GROUP_LAYOUT_H_
