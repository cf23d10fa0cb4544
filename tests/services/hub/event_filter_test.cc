#include "services/hub/event_filter.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/services/hub/test_events.h"

namespace convocore::hub {
namespace {

namespace v1 = convocore::webhooks::v1;
using testing::MakeEvent;

EventFilter Filter(std::vector<int> types, std::vector<std::string> agents,
                   std::vector<int> channels) {
  auto filter = EventFilter::Create(types, agents, channels);
  EXPECT_TRUE(filter.ok()) << filter.status();
  return filter.ok() ? *filter : EventFilter();
}

bool Matches(const EventFilter& filter, const v1::Event& event) {
  return filter.Matches(KeyOf(event));
}

TEST(KeyOfTest, ReadsAgentAndChannelFromEachPayloadKind) {
  EventKey message = KeyOf(
      MakeEvent(v1::EVENT_TYPE_MESSAGE_RECEIVED, "a1", v1::CHANNEL_WHATSAPP));
  EXPECT_EQ(message.event_type, v1::EVENT_TYPE_MESSAGE_RECEIVED);
  EXPECT_EQ(message.agent_id, "a1");
  EXPECT_EQ(message.channel, v1::CHANNEL_WHATSAPP);

  EventKey agent = KeyOf(MakeEvent(v1::EVENT_TYPE_AGENT_CREATED, "a2"));
  EXPECT_EQ(agent.agent_id, "a2");
  EXPECT_EQ(agent.channel, v1::CHANNEL_UNSPECIFIED);

  EventKey org = KeyOf(MakeEvent(v1::EVENT_TYPE_ORGANISATION_CREATED));
  EXPECT_EQ(org.agent_id, "");
  EXPECT_EQ(org.channel, v1::CHANNEL_UNSPECIFIED);
}

TEST(KeyOfTest, OtherEventsUseTheJsonKeysAndMapChannelStrings) {
  v1::Event event = MakeEvent(v1::EVENT_TYPE_OTHER, "a3");
  event.set_other_json(R"({"agentId":"a3","n":1e400,"channel":"web-chat"})");
  EventKey key = KeyOf(event);
  EXPECT_EQ(key.event_type, v1::EVENT_TYPE_OTHER);
  EXPECT_EQ(key.agent_id, "a3");
  EXPECT_EQ(key.channel, v1::CHANNEL_WEB_CHAT);

  event.set_other_json(R"({"channel":"carrier-pigeon"})");
  EXPECT_EQ(KeyOf(event).channel, v1::CHANNEL_OTHER);

  // Keys that are not strings, and JSON that does not parse, filter as
  // absent.
  event.set_other_json(R"({"agentId":7,"channel":["voice"]})");
  EXPECT_EQ(KeyOf(event).agent_id, "");
  EXPECT_EQ(KeyOf(event).channel, v1::CHANNEL_UNSPECIFIED);
  event.set_other_json("{not json");
  EXPECT_EQ(KeyOf(event).agent_id, "");
}

TEST(KeyOfTest, UnknownEnumValuesCountAsOther) {
  v1::Event event =
      MakeEvent(v1::EVENT_TYPE_MESSAGE_RECEIVED, "a", v1::Channel(57));
  event.set_event_type(v1::EventType(42));
  EventKey key = KeyOf(event);
  EXPECT_EQ(key.event_type, v1::EVENT_TYPE_OTHER);
  EXPECT_EQ(key.channel, v1::CHANNEL_OTHER);
}

TEST(EventFilterTest, EmptyMatchesEverythingIncludingOtherTypes) {
  EventFilter filter = Filter({}, {}, {});
  EXPECT_TRUE(filter.matches_everything());
  EXPECT_TRUE(Matches(filter, MakeEvent(v1::EVENT_TYPE_OTHER)));
  EXPECT_TRUE(Matches(filter, MakeEvent(v1::EVENT_TYPE_ORGANISATION_CREATED)));
}

TEST(EventFilterTest, EventTypesAreAlternatives) {
  EventFilter filter =
      Filter({v1::EVENT_TYPE_AGENT_CREATED, v1::EVENT_TYPE_OTHER}, {}, {});
  EXPECT_FALSE(filter.matches_everything());
  EXPECT_TRUE(Matches(filter, MakeEvent(v1::EVENT_TYPE_AGENT_CREATED, "a")));
  EXPECT_TRUE(Matches(filter, MakeEvent(v1::EVENT_TYPE_OTHER)));
  EXPECT_FALSE(
      Matches(filter, MakeEvent(v1::EVENT_TYPE_MESSAGE_RECEIVED, "a")));
}

TEST(EventFilterTest, AgentIdsExcludeEventsWithoutAnAgent) {
  EventFilter filter = Filter({}, {"a1", "a2"}, {});
  EXPECT_TRUE(Matches(filter, MakeEvent(v1::EVENT_TYPE_AGENT_CREATED, "a2")));
  EXPECT_FALSE(Matches(filter, MakeEvent(v1::EVENT_TYPE_AGENT_CREATED, "a3")));
  EXPECT_FALSE(Matches(filter, MakeEvent(v1::EVENT_TYPE_ORGANISATION_CREATED)));
}

TEST(EventFilterTest, ChannelOtherMatchesUnlistedChannels) {
  EventFilter filter = Filter({}, {}, {v1::CHANNEL_VOICE, v1::CHANNEL_OTHER});
  EXPECT_TRUE(Matches(filter, MakeEvent(v1::EVENT_TYPE_MESSAGE_RECEIVED, "a",
                                        v1::CHANNEL_VOICE)));
  EXPECT_TRUE(Matches(filter, MakeEvent(v1::EVENT_TYPE_MESSAGE_RECEIVED, "a",
                                        v1::CHANNEL_OTHER)));
  EXPECT_FALSE(Matches(filter, MakeEvent(v1::EVENT_TYPE_MESSAGE_RECEIVED, "a",
                                         v1::CHANNEL_WHATSAPP)));
  // No channel at all does not match a channel filter.
  EXPECT_FALSE(Matches(filter, MakeEvent(v1::EVENT_TYPE_AGENT_CREATED, "a")));
}

TEST(EventFilterTest, CriteriaCombineWithAnd) {
  EventFilter filter =
      Filter({v1::EVENT_TYPE_MESSAGE_RECEIVED}, {"a1"}, {v1::CHANNEL_TELEGRAM});
  EXPECT_TRUE(Matches(filter, MakeEvent(v1::EVENT_TYPE_MESSAGE_RECEIVED, "a1",
                                        v1::CHANNEL_TELEGRAM)));
  EXPECT_FALSE(Matches(filter, MakeEvent(v1::EVENT_TYPE_MESSAGE_RECEIVED, "a2",
                                         v1::CHANNEL_TELEGRAM)));
  EXPECT_FALSE(Matches(filter, MakeEvent(v1::EVENT_TYPE_LEAD_CAPTURED, "a1",
                                         v1::CHANNEL_TELEGRAM)));
}

TEST(EventFilterTest, RejectsValuesThatCanNeverMatch) {
  EXPECT_EQ(
      EventFilter::Create({v1::EVENT_TYPE_UNSPECIFIED}, {}, {}).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EventFilter::Create({42}, {}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EventFilter::Create({}, {""}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      EventFilter::Create({}, {}, {v1::CHANNEL_UNSPECIFIED}).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EventFilter::Create({}, {}, {-1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EventFilter::Create({}, {}, {}, {""}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EventFilterTest, WorkspacesMatchTheEventsLabelAndUnlabelledOnlyWithout) {
  auto filter = EventFilter::Create({}, {}, {}, {"acme", "globex"});
  ASSERT_TRUE(filter.ok());
  EXPECT_FALSE(filter->matches_everything());
  v1::Event acme = MakeEvent(v1::EVENT_TYPE_LEAD_CAPTURED);
  acme.set_workspace("acme");
  v1::Event initech = acme;
  initech.set_workspace("initech");
  const v1::Event unlabelled = MakeEvent(v1::EVENT_TYPE_LEAD_CAPTURED);
  EXPECT_TRUE(filter->Matches(KeyOf(acme)));
  EXPECT_FALSE(filter->Matches(KeyOf(initech)));
  EXPECT_FALSE(filter->Matches(KeyOf(unlabelled)));
  EXPECT_TRUE(EventFilter().Matches(KeyOf(initech)));
}

}  // namespace
}  // namespace convocore::hub
