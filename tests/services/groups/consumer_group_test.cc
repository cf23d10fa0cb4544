// Consumer groups over a real hub and in-memory store: sharing, flow
// control, redelivery (nack, deadline, leave), dead letters, the position
// across a snapshot, seek, retention, and the manager's errors.
#include "services/groups/consumer_group.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "services/groups/group_manager.h"
#include "services/groups/group_state_files.h"
#include "services/groups/group_state_store.h"
#include "services/groups/sequence_set.h"
#include "services/hub/in_memory_event_store.h"
#include "services/hub/resume_info.h"
#include "tests/services/hub/test_events.h"
#include "tests/support/eventually.h"

namespace convocore::groups {
namespace {

namespace v1 = convocore::webhooks::v1;
using ::convocore::testing::Eventually;
using hub::testing::MakeEvent;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

class CountingSink : public MemberSink {
 public:
  void OnReady() override {
    absl::MutexLock lock(&mu_);
    ++calls_;
  }

 private:
  absl::Mutex mu_;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

GroupSettings Settings(const std::string& name,
                       std::vector<v1::EventType> types = {},
                       std::uint32_t attempts = 5) {
  GroupSettings settings;
  settings.name = name;
  for (v1::EventType type : types) settings.filter.add_event_types(type);
  settings.max_delivery_attempts = attempts;
  return settings;
}

// Everything Take() gives `member` within `timeout`, until `want` events.
std::vector<Assignment> TakeEvents(GroupHandle& group, std::uint64_t member,
                                   std::size_t want,
                                   absl::Duration timeout = absl::Seconds(5)) {
  std::vector<Assignment> events;
  const absl::Time deadline = absl::Now() + timeout;
  while (events.size() < want && absl::Now() < deadline) {
    MemberBatch batch;
    if (group.Take(member, want - events.size(), 1 << 20, &batch)) {
      EXPECT_TRUE(batch.end.ok()) << batch.end;
      if (!batch.end.ok()) break;
      for (Assignment& a : batch.events) events.push_back(std::move(a));
    } else {
      absl::SleepFor(absl::Milliseconds(1));
    }
  }
  return events;
}

std::vector<std::uint64_t> Sequences(const std::vector<Assignment>& events) {
  std::vector<std::uint64_t> sequences;
  for (const Assignment& a : events) sequences.push_back(a.delivery->sequence);
  return sequences;
}

class ConsumerGroupTest : public ::testing::Test {
 protected:
  void SetUp() override { MakeHub({}); }

  void MakeHub(hub::RetentionOptions retention) {
    group_.reset();
    hub_.reset();
    auto created = hub::EventHub::Create(
        std::make_unique<hub::InMemoryEventStore>(retention));
    ASSERT_TRUE(created.ok()) << created.status();
    hub_ = *std::move(created);
  }

  void Publish(int n, v1::EventType type = v1::EVENT_TYPE_LEAD_CAPTURED) {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(hub_->Publish(MakeEvent(type, "agent")).ok());
    }
  }

  std::unique_ptr<ConsumerGroup> NewGroup(
      GroupSettings settings, GroupState state = {}, bool keep_floor = false,
      std::size_t max_dead_letters = kMaxDeadLetters) {
    auto group = std::make_unique<ConsumerGroup>(
        hub_.get(), settings, std::move(state), 10, max_dead_letters);
    const absl::Status started =
        keep_floor ? group->Start(
                         hub::StartPosition::AfterSequence(state_floor_), true)
                   : group->Start(hub::StartPosition::AfterSequence(0), false);
    EXPECT_TRUE(started.ok()) << started;
    return group;
  }

  std::uint64_t Join(ConsumerGroup& group, std::uint32_t max_in_flight = 100) {
    sinks_.push_back(std::make_unique<CountingSink>());
    absl::StatusOr<std::uint64_t> id =
        group.Join(max_in_flight, sinks_.back().get());
    EXPECT_TRUE(id.ok()) << id.status();
    return id.value_or(0);
  }

  std::unique_ptr<hub::EventHub> hub_;
  std::vector<std::unique_ptr<CountingSink>> sinks_;
  std::unique_ptr<ConsumerGroup> group_;
  std::uint64_t state_floor_ = 0;
};

TEST(SequenceSetTest, MergesRangesAndAdvancesTheFloor) {
  SequenceSet set;
  set.Insert(3);
  set.Insert(5);
  set.InsertRange(6, 9);
  set.Insert(4);
  EXPECT_EQ(set.ranges().size(), 1u);
  EXPECT_EQ(set.size(), 7u);
  EXPECT_EQ(set.AdvanceFloor(1), 1u);  // 2 is missing
  set.Insert(2);
  EXPECT_EQ(set.AdvanceFloor(1), 9u);
  EXPECT_TRUE(set.empty());
  set.InsertRange(20, 30);
  set.Erase(25);
  EXPECT_FALSE(set.Contains(25));
  EXPECT_TRUE(set.Contains(24));
  EXPECT_TRUE(set.Contains(26));
  set.EraseAbove(22);
  EXPECT_EQ(set.size(), 3u);
}

TEST_F(ConsumerGroupTest, MembersShareTheEventsOneMemberEach) {
  auto group = NewGroup(Settings("g"));
  const std::uint64_t a = Join(*group, 10);
  const std::uint64_t b = Join(*group, 10);
  const std::uint64_t c = Join(*group, 10);
  Publish(300);
  std::set<std::uint64_t> seen;
  std::vector<std::size_t> per_member(3, 0);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (seen.size() < 300 && absl::Now() < deadline) {
    int k = 0;
    for (std::uint64_t member : {a, b, c}) {
      MemberBatch batch;
      if (group->Take(member, 100, 1 << 20, &batch)) {
        std::vector<std::uint64_t> acks;
        std::uint64_t previous = 0;
        for (const Assignment& assignment : batch.events) {
          const std::uint64_t s = assignment.delivery->sequence;
          EXPECT_EQ(assignment.attempt, 1u);
          EXPECT_GT(s, previous) << "first deliveries follow sequence order";
          previous = s;
          EXPECT_TRUE(seen.insert(s).second) << s << " went to two members";
          acks.push_back(s);
        }
        per_member[k] += acks.size();
        ASSERT_TRUE(group->Settle(member, acks, {}).ok());
      }
      ++k;
    }
  }
  EXPECT_EQ(seen.size(), 300u);
  for (std::size_t n : per_member) EXPECT_GT(n, 50u) << "load is shared";
  EXPECT_EQ(group->Info().ack_floor_sequence(), 300u);
}

TEST_F(ConsumerGroupTest, AMemberHoldsAtMostMaxInFlight) {
  auto group = NewGroup(Settings("g"));
  const std::uint64_t a = Join(*group, 3);
  Publish(10);
  std::vector<Assignment> first =
      TakeEvents(*group, a, 10, absl::Milliseconds(200));
  EXPECT_THAT(Sequences(first), ElementsAre(1, 2, 3));
  ASSERT_TRUE(group->Settle(a, {1}, {}).ok());
  EXPECT_THAT(Sequences(TakeEvents(*group, a, 10, absl::Milliseconds(200))),
              ElementsAre(4));
}

TEST_F(ConsumerGroupTest, NacksRedeliverUntilTheLastAttemptThenDeadLetter) {
  auto group = NewGroup(Settings("g", {}, /*attempts=*/2));
  const std::uint64_t a = Join(*group);
  Publish(2);
  ASSERT_THAT(Sequences(TakeEvents(*group, a, 2)), ElementsAre(1, 2));
  ASSERT_TRUE(group->Settle(a, {2}, {{1, "crm down"}}).ok());
  std::vector<Assignment> again = TakeEvents(*group, a, 1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].delivery->sequence, 1u);
  EXPECT_EQ(again[0].attempt, 2u);
  ASSERT_TRUE(group->Settle(a, {}, {{1, "crm still down"}}).ok());

  std::vector<v1::DeadLetter> letters = group->DeadLetters(0, 10);
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_EQ(letters[0].sequence(), 1u);
  EXPECT_EQ(letters[0].delivery_attempts(), 2u);
  EXPECT_EQ(letters[0].last_error(), "crm still down");
  // Dead-lettered is settled: the position moves past it.
  EXPECT_EQ(group->Info().ack_floor_sequence(), 2u);
  EXPECT_TRUE(TakeEvents(*group, a, 1, absl::Milliseconds(50)).empty());

  // Replayed, it is delivered again from attempt 1 and unsettled till acked.
  auto event = hub_->ReadEvent(1);
  ASSERT_TRUE(event.ok()) << event.status();
  EXPECT_THAT(group->Replay({*event}), ElementsAre(1));
  EXPECT_EQ(group->Info().ack_floor_sequence(), 0u);
  std::vector<Assignment> replayed = TakeEvents(*group, a, 1);
  ASSERT_EQ(replayed.size(), 1u);
  EXPECT_EQ(replayed[0].attempt, 1u);
  ASSERT_TRUE(group->Settle(a, {1}, {}).ok());
  EXPECT_EQ(group->Info().ack_floor_sequence(), 2u);
  EXPECT_THAT(group->DeadLetters(0, 10), IsEmpty());
}

TEST_F(ConsumerGroupTest, AFullDeadLetterListHoldsTheNextUntilThereIsRoom) {
  auto group = NewGroup(Settings("g", {}, /*attempts=*/1), {}, false,
                        /*max_dead_letters=*/1);
  const std::uint64_t a = Join(*group);
  Publish(3);
  ASSERT_THAT(Sequences(TakeEvents(*group, a, 3)), ElementsAre(1, 2, 3));
  ASSERT_TRUE(group->Settle(a, {3}, {{1, "first"}, {2, "second"}}).ok());

  // 2 used its last attempt with the list full: neither delivered again nor
  // settled, so the floor stays below it and a saved position keeps it.
  EXPECT_THAT(Sequences(TakeEvents(*group, a, 1, absl::Milliseconds(50))),
              IsEmpty());
  ASSERT_EQ(group->DeadLetters(0, 10).size(), 1u);
  EXPECT_EQ(group->DeadLettersWaiting(), 1u);
  EXPECT_EQ(group->Info().ack_floor_sequence(), 1u);
  EXPECT_EQ(group->Info().in_flight_events(), 1u);

  // Dropping 1 makes room: 2 moves into the list with its error.
  EXPECT_THAT(group->Drop({1}), ElementsAre(1));
  std::vector<v1::DeadLetter> letters = group->DeadLetters(0, 10);
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_EQ(letters[0].sequence(), 2u);
  EXPECT_EQ(letters[0].last_error(), "second");
  EXPECT_EQ(group->DeadLettersWaiting(), 0u);
  EXPECT_EQ(group->Info().ack_floor_sequence(), 3u);
}

TEST_F(ConsumerGroupTest, AnEventPastItsDeadlineGoesToAnotherMember) {
  auto group = NewGroup(Settings("g"));
  const std::uint64_t a = Join(*group, 1);
  Publish(1);
  ASSERT_THAT(Sequences(TakeEvents(*group, a, 1)), ElementsAre(1));
  const std::uint64_t b = Join(*group, 1);
  group->Tick(Clock::now() + std::chrono::seconds(31));
  std::vector<Assignment> redelivered = TakeEvents(*group, b, 1);
  ASSERT_EQ(redelivered.size(), 1u);
  EXPECT_EQ(redelivered[0].attempt, 2u);
  // The first member's late ack still settles it; the second's is a no-op.
  ASSERT_TRUE(group->Settle(a, {1}, {}).ok());
  ASSERT_TRUE(group->Settle(b, {1}, {}).ok());
  EXPECT_EQ(group->Info().ack_floor_sequence(), 1u);
  EXPECT_EQ(group->Info().in_flight_events(), 0u);
}

TEST_F(ConsumerGroupTest, WhatALeavingMemberHeldIsRedelivered) {
  auto group = NewGroup(Settings("g"));
  const std::uint64_t a = Join(*group, 5);
  Publish(5);
  ASSERT_EQ(TakeEvents(*group, a, 5).size(), 5u);
  const std::uint64_t b = Join(*group, 5);
  group->Leave(a);
  std::vector<Assignment> taken = TakeEvents(*group, b, 5);
  EXPECT_THAT(Sequences(taken), ElementsAre(1, 2, 3, 4, 5));
  for (const Assignment& assignment : taken) EXPECT_EQ(assignment.attempt, 2u);
}

TEST_F(ConsumerGroupTest, AckOrNackOfAnEventNeverDeliveredIsInvalid) {
  auto group = NewGroup(Settings("g"));
  const std::uint64_t a = Join(*group, 1);
  const std::uint64_t b = Join(*group, 1);
  Publish(3);
  std::vector<Assignment> to_a = TakeEvents(*group, a, 1);
  ASSERT_EQ(to_a.size(), 1u);
  absl::Status status = group->Settle(b, {to_a[0].delivery->sequence}, {});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), ::testing::HasSubstr("was not delivered"));
  status = group->Settle(a, {}, {{99, "x"}});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
}

TEST_F(ConsumerGroupTest, ThePositionOfASnapshotResumesWithoutAckedEvents) {
  GroupState state;
  {
    auto group = NewGroup(Settings("g"));
    const std::uint64_t a = Join(*group);
    Publish(10);
    ASSERT_EQ(TakeEvents(*group, a, 10).size(), 10u);
    ASSERT_TRUE(group->Settle(a, {1, 2, 3, 4, 5, 7}, {}).ok());
    Confirmations confirm;
    ASSERT_TRUE(group->Snapshot(&state, &confirm));
    ASSERT_EQ(confirm.size(), 1u);
    EXPECT_THAT(confirm[0].second, ElementsAre(1, 2, 3, 4, 5, 7));
    group->Confirm(std::move(confirm), true);
    MemberBatch batch;
    ASSERT_TRUE(group->Take(a, 10, 1 << 20, &batch));
    EXPECT_THAT(batch.acknowledged, ElementsAre(1, 2, 3, 4, 5, 7));
  }
  EXPECT_EQ(state.ack_floor_sequence(), 5u);
  state_floor_ = state.ack_floor_sequence();
  auto resumed = NewGroup(Settings("g"), state, /*keep_floor=*/true);
  const std::uint64_t b = Join(*resumed);
  EXPECT_THAT(Sequences(TakeEvents(*resumed, b, 4)), ElementsAre(6, 8, 9, 10));
}

TEST_F(ConsumerGroupTest, TheFloorPassesEventsTheFilterSkips) {
  auto group = NewGroup(Settings("g", {v1::EVENT_TYPE_LEAD_CAPTURED}));
  const std::uint64_t a = Join(*group);
  Publish(3, v1::EVENT_TYPE_MESSAGE_RECEIVED);
  Publish(1, v1::EVENT_TYPE_LEAD_CAPTURED);
  Publish(3, v1::EVENT_TYPE_MESSAGE_RECEIVED);
  EXPECT_THAT(Sequences(TakeEvents(*group, a, 1)), ElementsAre(4));
  ASSERT_TRUE(group->Settle(a, {4}, {}).ok());
  group->Tick(Clock::now());
  EXPECT_EQ(group->Info().ack_floor_sequence(), 7u);
}

TEST_F(ConsumerGroupTest, SeekDeliversAgainFromTheNewStart) {
  auto group = NewGroup(Settings("g"));
  const std::uint64_t a = Join(*group);
  Publish(6);
  std::vector<Assignment> taken = TakeEvents(*group, a, 6);
  ASSERT_TRUE(group->Settle(a, {1, 2, 3}, {}).ok());
  ASSERT_TRUE(group->Seek(hub::StartPosition::AfterSequence(2)).ok());
  EXPECT_EQ(group->Info().ack_floor_sequence(), 2u);
  // Acks of what was in flight before the seek are not errors. Whether one
  // lands before the event's new delivery (a no-op) or after it (which it
  // then settles) is a race the test leaves open.
  ASSERT_TRUE(group->Settle(a, {4, 5}, {}).ok());
  std::set<std::uint64_t> delivered;
  ASSERT_TRUE(Eventually([&] {
    std::vector<std::uint64_t> acks;
    for (const Assignment& assignment :
         TakeEvents(*group, a, 4, absl::Milliseconds(20))) {
      delivered.insert(assignment.delivery->sequence);
      acks.push_back(assignment.delivery->sequence);
    }
    EXPECT_TRUE(group->Settle(a, acks, {}).ok());
    return group->Info().ack_floor_sequence() == 6;
  }));
  EXPECT_TRUE(delivered.contains(3));
  EXPECT_TRUE(delivered.contains(6));
  for (std::uint64_t s : delivered) {
    EXPECT_GE(s, 3u);
    EXPECT_LE(s, 6u);
  }
}

TEST_F(ConsumerGroupTest, APositionBelowRetentionIsOutOfRangeUntilASeek) {
  MakeHub({.max_events = 5, .max_bytes = 0});
  Publish(20);
  GroupState state;
  state.set_ack_floor_sequence(3);
  state_floor_ = 3;
  auto group = NewGroup(Settings("g"), state, /*keep_floor=*/true);
  CountingSink sink;
  absl::StatusOr<std::uint64_t> member = group->Join(10, &sink);
  ASSERT_EQ(member.status().code(), absl::StatusCode::kOutOfRange)
      << member.status();
  EXPECT_THAT(member.status().message(), ::testing::HasSubstr("oldest"));
  EXPECT_TRUE(member.status().GetPayload(hub::kResumeInfoTypeUrl).has_value());
  ASSERT_TRUE(group->Seek(hub::StartPosition::Oldest()).ok());
  const std::uint64_t a = Join(*group);
  EXPECT_THAT(Sequences(TakeEvents(*group, a, 5)),
              ElementsAre(16, 17, 18, 19, 20));
}

TEST_F(ConsumerGroupTest, ACutOffFeedWithNoMemberLosesNoEvent) {
  group_.reset();
  hub_.reset();
  auto created = hub::EventHub::Create(
      std::make_unique<hub::InMemoryEventStore>(hub::RetentionOptions{}),
      hub::HubOptions{.subscriber_queue_limit = 8});
  ASSERT_TRUE(created.ok());
  hub_ = *std::move(created);
  auto group = NewGroup(Settings("g"));
  Publish(50);  // live, with nobody to take them: the feed is cut off
  group->Tick(Clock::now());
  EXPECT_EQ(group->Info().ack_floor_sequence(), 0u);
  const std::uint64_t a = Join(*group, 100);
  group->Tick(Clock::now());
  std::vector<Assignment> taken = TakeEvents(*group, a, 50);
  ASSERT_EQ(taken.size(), 50u);
  EXPECT_EQ(taken.front().delivery->sequence, 1u);
  EXPECT_EQ(taken.back().delivery->sequence, 50u);
}

TEST_F(ConsumerGroupTest, AfterARestartTheFloorPassesWhatTheFilterSkips) {
  // Saved: 1 settled, 2 in flight, 3..5 acked, 6..8 passed by the filter.
  GroupState state;
  state.set_ack_floor_sequence(1);
  SequenceRange* range = state.add_settled();
  range->set_first(3);
  range->set_last(8);
  Publish(5, v1::EVENT_TYPE_LEAD_CAPTURED);
  Publish(5, v1::EVENT_TYPE_MESSAGE_RECEIVED);
  state_floor_ = 1;
  auto group = NewGroup(Settings("g", {v1::EVENT_TYPE_LEAD_CAPTURED}), state,
                        /*keep_floor=*/true);
  const std::uint64_t a = Join(*group, 1);
  EXPECT_THAT(Sequences(TakeEvents(*group, a, 1)), ElementsAre(2));
  ASSERT_TRUE(group->Settle(a, {2}, {}).ok());
  group->Tick(Clock::now());
  EXPECT_EQ(group->Info().ack_floor_sequence(), 10u);
  EXPECT_EQ(group->Info().settled_above_floor(), 0u);
}

TEST_F(ConsumerGroupTest, AfterASeekTheSameMembersAcksOfRedeliveriesCount) {
  auto group = NewGroup(Settings("g"));
  const std::uint64_t a = Join(*group);
  Publish(3);
  ASSERT_EQ(TakeEvents(*group, a, 3).size(), 3u);
  ASSERT_TRUE(group->Seek(hub::StartPosition::AfterSequence(0)).ok());
  std::vector<Assignment> again = TakeEvents(*group, a, 3);
  ASSERT_THAT(Sequences(again), ElementsAre(1, 2, 3));
  ASSERT_TRUE(group->Settle(a, {1, 2, 3}, {}).ok());
  EXPECT_EQ(group->Info().ack_floor_sequence(), 3u);
}

TEST_F(ConsumerGroupTest, EventsNeverWrittenToALeavingMemberKeepTheirAttempt) {
  auto group = NewGroup(Settings("g", {}, /*attempts=*/1));
  const std::uint64_t a = Join(*group, 5);
  Publish(5);
  // Assigned to `a`, never taken (never written to its stream).
  ASSERT_TRUE(
      Eventually([&] { return group->Info().in_flight_events() == 5; }));
  group->Leave(a);
  EXPECT_THAT(group->DeadLetters(0, 10), IsEmpty());
  const std::uint64_t b = Join(*group, 5);
  std::vector<Assignment> taken = TakeEvents(*group, b, 5);
  ASSERT_EQ(taken.size(), 5u);
  for (const Assignment& assignment : taken) EXPECT_EQ(assignment.attempt, 1u);
}

class GroupManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto created = hub::EventHub::Create(
        std::make_unique<hub::InMemoryEventStore>(hub::RetentionOptions{}));
    ASSERT_TRUE(created.ok());
    hub_ = *std::move(created);
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat(
               "groups_",
               ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override {
    manager_.reset();
    std::filesystem::remove_all(dir_);
  }

  void StartManager() {
    manager_.reset();
    auto store = OpenGroupStateDirectory(dir_.string());
    ASSERT_TRUE(store.ok()) << store.status();
    auto manager = GroupManager::Create(hub_.get(), *std::move(store));
    ASSERT_TRUE(manager.ok()) << manager.status();
    manager_ = *std::move(manager);
  }

  static absl::Status AllowAll(v1::SubscribeRequest*, bool) {
    return absl::OkStatus();
  }

  JoinRequest JoinOf(const std::string& text_name,
                     std::vector<v1::EventType> types = {}) {
    v1::ConsumeRequest request;
    request.set_consumer_group(text_name);
    request.set_from_oldest(true);
    for (v1::EventType type : types) request.add_event_types(type);
    absl::StatusOr<JoinRequest> join = JoinRequestFromProto(request);
    EXPECT_TRUE(join.ok()) << join.status();
    return *join;
  }

  std::unique_ptr<hub::EventHub> hub_;
  std::filesystem::path dir_;
  std::unique_ptr<GroupManager> manager_;
  CountingSink sink_;
};

TEST_F(GroupManagerTest, AcksAreConfirmedOnceSavedAndSurviveARestart) {
  StartManager();
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(hub_->Publish(MakeEvent(v1::EVENT_TYPE_LEAD_CAPTURED)).ok());
  }
  auto joined = manager_->Join(JoinOf("crm"), &AllowAll, &sink_);
  ASSERT_TRUE(joined.ok()) << joined.status();
  ASSERT_EQ(TakeEvents(*joined->group, joined->member, 4).size(), 4u);
  ASSERT_TRUE(manager_->Settle(*joined, {1, 2, 4}, {}).ok());
  std::vector<std::uint64_t> confirmed;
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (confirmed.size() < 3 && absl::Now() < deadline) {
    MemberBatch batch;
    if (joined->group->Take(joined->member, 10, 1 << 20, &batch)) {
      confirmed.insert(confirmed.end(), batch.acknowledged.begin(),
                       batch.acknowledged.end());
    } else {
      absl::SleepFor(absl::Milliseconds(1));
    }
  }
  EXPECT_THAT(confirmed, ElementsAre(1, 2, 4));

  joined->group->Leave(joined->member);
  joined = absl::InternalError("released");
  StartManager();
  auto info = manager_->GetGroup("crm", &AllowAll);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->ack_floor_sequence(), 2u);
  auto again = manager_->Join(JoinOf("crm"), &AllowAll, &sink_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_THAT(Sequences(TakeEvents(*again->group, again->member, 1)),
              ElementsAre(3));
  again->group->Leave(again->member);
}

TEST_F(GroupManagerTest, ErrorsNameWhatIsWrong) {
  StartManager();
  auto created = manager_->Join(JoinOf("crm", {v1::EVENT_TYPE_LEAD_CAPTURED}),
                                &AllowAll, &sink_);
  ASSERT_TRUE(created.ok()) << created.status();
  auto mismatch = manager_->Join(JoinOf("crm", {v1::EVENT_TYPE_BUG_REPORTED}),
                                 &AllowAll, &sink_);
  EXPECT_EQ(mismatch.status().code(), absl::StatusCode::kFailedPrecondition)
      << mismatch.status();
  EXPECT_THAT(mismatch.status().message(),
              ::testing::HasSubstr("EVENT_TYPE_LEAD_CAPTURED"));
  EXPECT_EQ(manager_->GetGroup("nope", &AllowAll).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(manager_->GetGroup("bad name", &AllowAll).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::CreateConsumerGroupRequest create;
  create.mutable_consumer_group()->set_name("crm");
  EXPECT_EQ(manager_->CreateGroup(create, &AllowAll).status().code(),
            absl::StatusCode::kAlreadyExists);
  create.mutable_consumer_group()->set_name("other");
  create.mutable_consumer_group()->mutable_ack_deadline()->set_seconds(-1);
  EXPECT_EQ(manager_->CreateGroup(create, &AllowAll).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::ConsumeRequest too_many;
  too_many.set_consumer_group("crm");
  too_many.set_max_in_flight(5000);
  EXPECT_EQ(JoinRequestFromProto(too_many).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::SeekConsumerGroupRequest seek;
  seek.set_consumer_group("crm");
  EXPECT_EQ(manager_->SeekGroup(seek, &AllowAll).status().code(),
            absl::StatusCode::kInvalidArgument);

  // Deleting ends the members with NOT_FOUND.
  ASSERT_TRUE(manager_->DeleteGroup("crm", &AllowAll).ok());
  MemberBatch batch;
  ASSERT_TRUE(created->group->Take(created->member, 10, 1 << 20, &batch));
  EXPECT_EQ(batch.end.code(), absl::StatusCode::kNotFound) << batch.end;
  created->group->Leave(created->member);
  EXPECT_THAT(manager_->ListGroups(&AllowAll).value(), IsEmpty());
}

}  // namespace
}  // namespace convocore::groups
