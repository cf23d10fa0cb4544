// What the JetStream stream behind `--store=jetstream` must be for the
// gateway's promise to hold, and the check of an existing stream against
// it. Pure: the adapter (jetstream_event_store) copies the engine's
// configuration into a StreamSettings.
#ifndef SERVICES_JETSTREAM_STREAM_SETTINGS_H_
#define SERVICES_JETSTREAM_STREAM_SETTINGS_H_

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "services/hub/event_store.h"

namespace convocore::jetstream {

// The parts of a stream's configuration the promise depends on. Limits use
// JetStream's conventions: -1 (or 0 for an age) is "no limit".
struct StreamSettings {
  std::string name;
  std::vector<std::string> subjects;
  bool file_storage = true;
  std::int64_t replicas = 1;
  // Limits retention: messages go only by the limits below, not when some
  // consumer acknowledged them (interest or work-queue retention would take
  // events away from every other replica's subscribers).
  bool limits_retention = true;
  // A full stream drops its oldest messages instead of refusing new ones
  // (every webhook we acknowledged is stored; trimming is retention).
  bool discard_old = true;
  std::int64_t max_msgs = -1;
  std::int64_t max_bytes = -1;
  absl::Duration max_age = absl::ZeroDuration();
  absl::Duration duplicate_window = absl::ZeroDuration();
  // No client may delete or purge what was acknowledged.
  bool deny_delete = true;
  bool deny_purge = true;
  bool sealed = false;
  // A mirror or a stream with sources takes messages that did not come
  // through a gateway.
  bool mirror_or_sources = false;
};

struct StreamRequirements {
  std::string stream;
  std::string subject_prefix;
  std::int64_t replicas = 3;
  hub::RetentionOptions retention;
  absl::Duration duplicate_window = absl::Hours(1);
};

// OK when `name` can name a stream: 1..255 of [A-Za-z0-9_-].
absl::Status CheckStreamName(absl::string_view name);
// OK when `prefix` is one or more dot-separated tokens of [A-Za-z0-9_-]
// (no wildcards), so that "<prefix>.<type>" and "<prefix>.>" are subjects.
absl::Status CheckSubjectPrefix(absl::string_view prefix);

// The stream the gateway creates when there is none.
StreamSettings DesiredSettings(const StreamRequirements& requirements);

// OK when `existing` keeps the promise that `want` describes; otherwise
// FAILED_PRECONDITION naming every difference, each with the flag or the
// stream setting that fixes it.
absl::Status VerifySettings(const StreamSettings& want,
                            const StreamSettings& existing);

// The subject of an event of type `type_label` ("lead_captured", "other").
std::string SubjectFor(absl::string_view prefix, absl::string_view type_label);

}  // namespace convocore::jetstream

#endif  // SERVICES_JETSTREAM_STREAM_SETTINGS_H_
