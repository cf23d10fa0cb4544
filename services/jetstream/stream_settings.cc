#include "services/jetstream/stream_settings.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace convocore::jetstream {
namespace {

bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
         c == '-';
}

bool IsToken(absl::string_view token) {
  if (token.empty()) return false;
  for (char c : token) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

std::int64_t LimitOrUnlimited(std::size_t bound) {
  return bound == 0 ? -1 : static_cast<std::int64_t>(bound);
}

std::string Limit(std::int64_t value) {
  return value < 0 ? "unlimited" : absl::StrCat(value);
}

std::string Age(absl::Duration age) {
  return age <= absl::ZeroDuration() ? "unlimited" : absl::FormatDuration(age);
}

}  // namespace

absl::Status CheckStreamName(absl::string_view name) {
  if (name.empty() || name.size() > 255 || !IsToken(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--nats_stream \"", absl::CHexEscape(name),
        "\" is not a stream name: use 1 to 255 letters, digits, _ or -"));
  }
  return absl::OkStatus();
}

absl::Status CheckSubjectPrefix(absl::string_view prefix) {
  for (absl::string_view token : absl::StrSplit(prefix, '.')) {
    if (!IsToken(token)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--nats_subject_prefix \"", absl::CHexEscape(prefix),
          "\" is not a subject prefix: use dot-separated tokens of letters, "
          "digits, _ or - (no wildcards)"));
    }
  }
  return absl::OkStatus();
}

StreamSettings DesiredSettings(const StreamRequirements& requirements) {
  StreamSettings settings;
  settings.name = requirements.stream;
  settings.subjects = {absl::StrCat(requirements.subject_prefix, ".>")};
  settings.replicas = requirements.replicas;
  settings.max_msgs = LimitOrUnlimited(requirements.retention.max_events);
  settings.max_bytes = LimitOrUnlimited(requirements.retention.max_bytes);
  settings.max_age = requirements.retention.max_age;
  settings.duplicate_window = requirements.duplicate_window;
  return settings;
}

absl::Status VerifySettings(const StreamSettings& want,
                            const StreamSettings& existing) {
  std::vector<std::string> problems;
  if (existing.subjects != want.subjects) {
    problems.push_back(absl::StrCat(
        "its subjects are [", absl::StrJoin(existing.subjects, ", "),
        "], not [", absl::StrJoin(want.subjects, ", "),
        "] (--nats_subject_prefix): other subjects would put messages that "
        "are not events into the stream"));
  }
  if (!existing.file_storage) {
    problems.push_back(
        "it keeps messages in memory, not in files: a restart of the NATS "
        "servers would lose acknowledged events");
  }
  if (existing.replicas != want.replicas) {
    problems.push_back(absl::StrCat("it has ", existing.replicas,
                                    " replicas, not ", want.replicas,
                                    " (--nats_replicas)"));
  }
  if (!existing.limits_retention) {
    problems.push_back(
        "its retention is by interest or work queue, not by limits: a "
        "consumer's acknowledgement would take events from every other "
        "subscriber");
  }
  if (!existing.discard_old) {
    problems.push_back(
        "it discards new messages when full: webhooks would be refused "
        "instead of the oldest events trimmed");
  }
  if (existing.max_msgs != want.max_msgs) {
    problems.push_back(absl::StrCat("it keeps ", Limit(existing.max_msgs),
                                    " messages, not ", Limit(want.max_msgs),
                                    " (--retention_events)"));
  }
  if (existing.max_bytes != want.max_bytes) {
    problems.push_back(absl::StrCat("it keeps ", Limit(existing.max_bytes),
                                    " bytes, not ", Limit(want.max_bytes),
                                    " (--retention_bytes)"));
  }
  if (existing.max_age != want.max_age) {
    problems.push_back(absl::StrCat("it keeps messages for ",
                                    Age(existing.max_age), ", not ",
                                    Age(want.max_age), " (--retention_age)"));
  }
  if (existing.duplicate_window != want.duplicate_window) {
    problems.push_back(absl::StrCat(
        "its duplicate window is ",
        absl::FormatDuration(existing.duplicate_window), ", not ",
        absl::FormatDuration(want.duplicate_window), " (--dedup_window_age)"));
  }
  if (!existing.deny_delete) {
    problems.push_back(
        "it lets clients delete messages (deny_delete is off): an "
        "acknowledged event could be removed");
  }
  if (!existing.deny_purge) {
    problems.push_back(
        "it lets clients purge it (deny_purge is off): acknowledged events "
        "could be removed");
  }
  if (existing.sealed) {
    problems.push_back("it is sealed: it takes no new messages");
  }
  if (existing.mirror_or_sources) {
    problems.push_back(
        "it is a mirror or has sources: messages would arrive that no "
        "gateway acknowledged");
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "the JetStream stream ", existing.name,
      " cannot hold the gateway's events: ", absl::StrJoin(problems, "; "),
      ". Change the stream (nats stream edit) or the flags, or name another "
      "stream with --nats_stream"));
}

std::string SubjectFor(absl::string_view prefix, absl::string_view type_label) {
  return absl::StrCat(prefix, ".", type_label);
}

}  // namespace convocore::jetstream
