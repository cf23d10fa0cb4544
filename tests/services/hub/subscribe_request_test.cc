#include "services/hub/subscribe_request.h"

#include "gtest/gtest.h"

namespace convocore::hub {
namespace {

namespace v1 = convocore::webhooks::v1;
using Kind = StartPosition::Kind;

TEST(SubscribeRequestTest, NoStartPositionMeansNow) {
  auto options = SubscribeOptionsFromRequest(v1::SubscribeRequest());
  ASSERT_TRUE(options.ok());
  EXPECT_EQ(options->start.kind, Kind::kNow);
  EXPECT_TRUE(options->filter.matches_everything());
}

TEST(SubscribeRequestTest, ReadsEachStartPosition) {
  v1::SubscribeRequest request;
  request.set_after_sequence(0);
  auto after = SubscribeOptionsFromRequest(request);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->start.kind, Kind::kAfterSequence);
  EXPECT_EQ(after->start.after_sequence, 0u);

  request.set_from_oldest(true);
  EXPECT_EQ(SubscribeOptionsFromRequest(request)->start.kind, Kind::kOldest);
  request.set_from_oldest(false);
  EXPECT_EQ(SubscribeOptionsFromRequest(request)->start.kind, Kind::kNow);

  request.mutable_from_time()->set_seconds(1'700'000'000);
  request.mutable_from_time()->set_nanos(5);
  auto from_time = SubscribeOptionsFromRequest(request);
  ASSERT_TRUE(from_time.ok());
  EXPECT_EQ(from_time->start.kind, Kind::kFromTime);
  EXPECT_EQ(from_time->start.time,
            absl::FromUnixSeconds(1'700'000'000) + absl::Nanoseconds(5));
}

TEST(SubscribeRequestTest, RejectsInvalidFiltersAndTimes) {
  v1::SubscribeRequest request;
  request.add_event_types(v1::EVENT_TYPE_UNSPECIFIED);
  EXPECT_EQ(SubscribeOptionsFromRequest(request).status().code(),
            absl::StatusCode::kInvalidArgument);

  request.Clear();
  request.mutable_from_time()->set_nanos(-1);
  EXPECT_EQ(SubscribeOptionsFromRequest(request).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SubscribeRequestTest, BuildsTheFilter) {
  v1::SubscribeRequest request;
  request.add_event_types(v1::EVENT_TYPE_AGENT_CREATED);
  request.add_agent_ids("a1");
  auto options = SubscribeOptionsFromRequest(request);
  ASSERT_TRUE(options.ok());
  EventKey key{v1::EVENT_TYPE_AGENT_CREATED, "a1", v1::CHANNEL_UNSPECIFIED, ""};
  EXPECT_TRUE(options->filter.Matches(key));
  key.agent_id = "a2";
  EXPECT_FALSE(options->filter.Matches(key));
}

}  // namespace
}  // namespace convocore::hub
