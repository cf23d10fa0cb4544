#include "services/jetstream/stream_settings.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace convocore::jetstream {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

StreamRequirements Requirements() {
  return StreamRequirements{
      .stream = "EVENTS",
      .subject_prefix = "convocore.events",
      .replicas = 3,
      .retention = {.max_events = 1000,
                    .max_bytes = 1 << 20,
                    .max_age = absl::Hours(24)},
      .duplicate_window = absl::Hours(1)};
}

TEST(StreamSettingsTest, DesiredSettingsCarryTheFlags) {
  const StreamSettings want = DesiredSettings(Requirements());
  EXPECT_EQ(want.name, "EVENTS");
  EXPECT_THAT(want.subjects, ::testing::ElementsAre("convocore.events.>"));
  EXPECT_TRUE(want.file_storage);
  EXPECT_EQ(want.replicas, 3);
  EXPECT_EQ(want.max_msgs, 1000);
  EXPECT_EQ(want.max_bytes, 1 << 20);
  EXPECT_EQ(want.max_age, absl::Hours(24));
  EXPECT_EQ(want.duplicate_window, absl::Hours(1));
  EXPECT_TRUE(want.deny_delete);
  EXPECT_TRUE(want.deny_purge);
  EXPECT_TRUE(want.discard_old);
  EXPECT_TRUE(want.limits_retention);
}

TEST(StreamSettingsTest, ZeroBoundsAreUnlimited) {
  StreamRequirements requirements = Requirements();
  requirements.retention = {.max_events = 0, .max_bytes = 0};
  const StreamSettings want = DesiredSettings(requirements);
  EXPECT_EQ(want.max_msgs, -1);
  EXPECT_EQ(want.max_bytes, -1);
  EXPECT_EQ(want.max_age, absl::ZeroDuration());
}

TEST(StreamSettingsTest, TheStreamWeCreateVerifies) {
  const StreamSettings want = DesiredSettings(Requirements());
  EXPECT_TRUE(VerifySettings(want, want).ok());
}

TEST(StreamSettingsTest, EveryDifferenceIsNamedWithItsFix) {
  const StreamSettings want = DesiredSettings(Requirements());
  StreamSettings existing = want;
  existing.file_storage = false;
  existing.replicas = 1;
  existing.max_msgs = -1;
  existing.duplicate_window = absl::Minutes(2);
  existing.deny_delete = false;
  absl::Status status = VerifySettings(want, existing);
  ASSERT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("stream EVENTS"), HasSubstr("in memory"),
                    HasSubstr("1 replicas, not 3 (--nats_replicas)"),
                    HasSubstr("unlimited messages, not 1000"),
                    HasSubstr("--retention_events"),
                    HasSubstr("duplicate window is 2m, not 1h"),
                    HasSubstr("--dedup_window_age"), HasSubstr("delete"),
                    Not(HasSubstr("purge")), HasSubstr("--nats_stream")));
}

TEST(StreamSettingsTest, EachUnsafeSettingIsRefused) {
  const StreamSettings want = DesiredSettings(Requirements());
  struct Case {
    const char* name;
    void (*spoil)(StreamSettings&);
    const char* says;
  };
  const Case cases[] = {
      {"subjects",
       [](StreamSettings& s) { s.subjects.push_back("other.>"); },
       "--nats_subject_prefix"},
      {"interest retention",
       [](StreamSettings& s) { s.limits_retention = false; }, "interest"},
      {"discard new", [](StreamSettings& s) { s.discard_old = false; },
       "discards new"},
      {"bytes", [](StreamSettings& s) { s.max_bytes = 5; },
       "--retention_bytes"},
      {"age", [](StreamSettings& s) { s.max_age = absl::Hours(1); },
       "--retention_age"},
      {"purge", [](StreamSettings& s) { s.deny_purge = false; }, "purge"},
      {"sealed", [](StreamSettings& s) { s.sealed = true; }, "sealed"},
      {"mirror", [](StreamSettings& s) { s.mirror_or_sources = true; },
       "mirror"},
  };
  for (const Case& c : cases) {
    StreamSettings existing = want;
    c.spoil(existing);
    absl::Status status = VerifySettings(want, existing);
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << c.name;
    EXPECT_THAT(status.message(), HasSubstr(c.says)) << c.name;
  }
}

TEST(StreamSettingsTest, StreamNames) {
  EXPECT_TRUE(CheckStreamName("CONVOCORE_EVENTS").ok());
  EXPECT_TRUE(CheckStreamName("events-1").ok());
  for (const char* bad : {"", "a.b", "a b", "a*", "a>", "a/b"}) {
    absl::Status status = CheckStreamName(bad);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(status.message(), HasSubstr("--nats_stream")) << bad;
  }
  EXPECT_FALSE(CheckStreamName(std::string(256, 'a')).ok());
}

TEST(StreamSettingsTest, SubjectPrefixes) {
  EXPECT_TRUE(CheckSubjectPrefix("convocore.events").ok());
  EXPECT_TRUE(CheckSubjectPrefix("events").ok());
  for (const char* bad : {"", ".", "a.", ".a", "a..b", "a.*", "a.>", "a b"}) {
    absl::Status status = CheckSubjectPrefix(bad);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(status.message(), HasSubstr("--nats_subject_prefix")) << bad;
  }
}

TEST(StreamSettingsTest, SubjectOfAType) {
  EXPECT_EQ(SubjectFor("convocore.events", "lead_captured"),
            "convocore.events.lead_captured");
}

}  // namespace
}  // namespace convocore::jetstream
