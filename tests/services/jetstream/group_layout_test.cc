#include "services/jetstream/group_layout.h"

#include <set>
#include <string>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace convocore::jetstream {
namespace {

namespace v1 = convocore::webhooks::v1;
using ::testing::HasSubstr;
using ::testing::Optional;

groups::GroupSettings Settings(const std::string& name) {
  groups::GroupSettings settings;
  settings.name = name;
  settings.filter.add_event_types(v1::EVENT_TYPE_LEAD_CAPTURED);
  settings.filter.add_agent_ids("agent-1");
  settings.ack_deadline = absl::Seconds(12);
  settings.max_delivery_attempts = 3;
  settings.create_time = absl::FromUnixSeconds(1'700'000'000);
  return settings;
}

TEST(GroupLayoutTest, EscapedNamesStayDistinctAndHoldNoDot) {
  // Each pair would collide under a naive mapping of '.' to '_'.
  const std::string names[] = {"a.b", "a_b", "a_db", "a__b",
                               "a._", "a_.", "crm",  "crm.v2"};
  std::set<std::string> tokens;
  for (const std::string& name : names) {
    const std::string token = EscapeGroupName(name);
    EXPECT_FALSE(absl::StrContains(token, '.')) << token;
    EXPECT_TRUE(tokens.insert(token).second) << name << " -> " << token;
    absl::StatusOr<std::string> back = UnescapeGroupName(token);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, name);
  }
  EXPECT_FALSE(UnescapeGroupName("a_x").ok());
  EXPECT_FALSE(UnescapeGroupName("trailing_").ok());
}

TEST(GroupLayoutTest, NamesOfAGroup) {
  const GroupNames names = NamesFor("EVENTS", "crm.leads");
  EXPECT_EQ(names.consumer, "cg_crm_dleads");
  EXPECT_EQ(names.replay_consumer, "cgr_crm_dleads");
  EXPECT_EQ(names.replay_subject, "EVENTS_replay.crm_dleads");
  EXPECT_EQ(names.dead_letter_prefix, "dl.crm_dleads.");
  EXPECT_EQ(ReplayStreamName("EVENTS"), "EVENTS_REPLAY");
  EXPECT_EQ(ReplayStreamSubjects("EVENTS"), "EVENTS_replay.>");
  EXPECT_EQ(GroupsBucketName("EVENTS"), "EVENTS_GROUPS");

  EXPECT_THAT(GroupOfConsumer(names.consumer),
              Optional(std::string("crm.leads")));
  EXPECT_EQ(GroupOfConsumer("reader_7"), std::nullopt);
  EXPECT_EQ(GroupOfConsumer("cg_"), std::nullopt);  // no valid group name
  EXPECT_EQ(GroupOfConsumer("cg_bad_x"), std::nullopt);
}

TEST(GroupLayoutTest, SequenceKeysSortBySequenceAndParseBack) {
  const std::string prefix = NamesFor("EVENTS", "g").dead_letter_prefix;
  EXPECT_LT(SequenceKey(prefix, 9), SequenceKey(prefix, 10));
  EXPECT_EQ(SequenceKey(prefix, 42), "dl.g.00000000000000000042");
  EXPECT_THAT(SequenceOfKey(prefix, SequenceKey(prefix, 18446744073709551615u)),
              Optional(18446744073709551615u));
  // Another group's key, or one not made by SequenceKey.
  EXPECT_EQ(SequenceOfKey(prefix, SequenceKey("dl.g2.", 1)), std::nullopt);
  EXPECT_EQ(SequenceOfKey(prefix, "dl.g.42"), std::nullopt);
  EXPECT_EQ(SequenceOfKey(prefix, "dl.g.0000000000000000004x"), std::nullopt);
}

TEST(GroupLayoutTest, SettingsRoundTripThroughTheDescription) {
  absl::StatusOr<std::string> description = GroupDescription(Settings("crm"));
  ASSERT_TRUE(description.ok()) << description.status();
  absl::StatusOr<groups::GroupSettings> back =
      SettingsFromDescription(*description);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->name, "crm");
  EXPECT_TRUE(groups::SameFilter(back->filter, Settings("crm").filter));
  EXPECT_EQ(back->ack_deadline, absl::Seconds(12));
  EXPECT_EQ(back->max_delivery_attempts, 3u);
  EXPECT_EQ(back->create_time, absl::FromUnixSeconds(1'700'000'000));

  EXPECT_EQ(SettingsFromDescription("made by someone else").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(SettingsFromDescription("convocore consumer group v1 !!!")
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
}

TEST(GroupLayoutTest, AFilterTooLongForADescriptionIsRefused) {
  groups::GroupSettings settings = Settings("crm");
  for (int i = 0; i < 200; ++i) {
    settings.filter.add_agent_ids(std::string(20, 'a' + i % 26) +
                                  std::to_string(i));
  }
  absl::StatusOr<std::string> description = GroupDescription(settings);
  ASSERT_EQ(description.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(description.status().message(),
              HasSubstr("list fewer agent ids or workspaces"));
}

TEST(GroupLayoutTest, TheConsumerStartsWhereTheGroupDoes) {
  using Deliver = GroupConsumerConfig::Deliver;
  const groups::GroupSettings settings = Settings("crm");
  absl::StatusOr<GroupConsumerConfig> now =
      ConsumerConfigFor("EVENTS", settings, hub::StartPosition::Now());
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_EQ(now->durable, "cg_crm");
  EXPECT_EQ(now->deliver, Deliver::kNew);
  EXPECT_EQ(now->ack_wait, absl::Seconds(12));
  EXPECT_EQ(now->max_deliver, -1);
  EXPECT_GE(now->max_ack_pending, 100 * groups::kMaxInFlight);
  EXPECT_TRUE(SettingsFromDescription(now->description).ok());

  EXPECT_EQ(ConsumerConfigFor("EVENTS", settings, hub::StartPosition::Oldest())
                ->deliver,
            Deliver::kAll);
  absl::StatusOr<GroupConsumerConfig> after = ConsumerConfigFor(
      "EVENTS", settings, hub::StartPosition::AfterSequence(41));
  EXPECT_EQ(after->deliver, Deliver::kByStartSequence);
  EXPECT_EQ(after->start_sequence, 42u);
  const absl::Time at = absl::FromUnixSeconds(1'700'000'500);
  absl::StatusOr<GroupConsumerConfig> from =
      ConsumerConfigFor("EVENTS", settings, hub::StartPosition::FromTime(at));
  EXPECT_EQ(from->deliver, Deliver::kByStartTime);
  EXPECT_EQ(from->start_time, at);
  EXPECT_EQ(ConsumerConfigFor("EVENTS", settings,
                              hub::StartPosition::FromTime(absl::UnixEpoch() -
                                                           absl::Seconds(1)))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(GroupLayoutTest, AttemptsPastTheLastBecomeDeadLetters) {
  // Attempts 1..3 are delivered; a 4th delivery means the deadline passed
  // on the 3rd.
  EXPECT_EQ(OnDelivered(1, 3), DeliveryAction::kDeliver);
  EXPECT_EQ(OnDelivered(3, 3), DeliveryAction::kDeliver);
  EXPECT_EQ(OnDelivered(4, 3), DeliveryAction::kDeadLetter);
  // A nack (or the member leaving) on attempts 1..2 redelivers; on the 3rd
  // it dead-letters.
  EXPECT_EQ(OnFailed(1, 3), FailureAction::kRedeliver);
  EXPECT_EQ(OnFailed(2, 3), FailureAction::kRedeliver);
  EXPECT_EQ(OnFailed(3, 3), FailureAction::kDeadLetter);
  EXPECT_EQ(OnFailed(1, 1), FailureAction::kDeadLetter);
}

TEST(GroupLayoutTest, APositionBelowRetentionIsOutOfRange) {
  EXPECT_TRUE(CheckGroupPosition("crm", 0, 0, 0).ok());        // new stream
  EXPECT_TRUE(CheckGroupPosition("crm", 0, 1, 10).ok());       // nothing gone
  EXPECT_TRUE(CheckGroupPosition("crm", 49, 50, 100).ok());    // at the edge
  EXPECT_TRUE(CheckGroupPosition("crm", 100, 101, 100).ok());  // all read

  const absl::Status below = CheckGroupPosition("crm", 48, 50, 100);
  EXPECT_EQ(below.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(below.message(), HasSubstr("SeekConsumerGroup"));
  EXPECT_TRUE(below.GetPayload(hub::kResumeInfoTypeUrl).has_value());
  // Retention emptied the stream before the group read 51..100.
  EXPECT_EQ(CheckGroupPosition("crm", 50, 101, 100).code(),
            absl::StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace convocore::jetstream
