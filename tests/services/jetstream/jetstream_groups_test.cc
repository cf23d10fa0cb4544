// Consumer groups on JetStream against a real nats-server started by the
// test: two gateway replicas (each a store and a JetStreamGroups on one
// stream) sharing one group, acks confirmed only once JetStream has them, a
// group's position surviving the replica that served it, redelivery after
// the ack deadline to a member on the other replica, nacks to the
// dead-letter list and replay, seek, delete, and the errors.
#include "services/jetstream/jetstream_groups.h"

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/groups/group_settings.h"
#include "services/hub/resume_info.h"
#include "tests/support/eventually.h"
#include "tests/support/nats_cluster.h"

namespace convocore::jetstream {
namespace {

namespace v1 = convocore::webhooks::v1;
using ::convocore::testing::NatsCluster;
using ::testing::ElementsAre;
using ::testing::Ge;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr absl::Duration kTimeout = absl::Seconds(15);

absl::Status AllowAll(v1::SubscribeRequest*, bool) { return absl::OkStatus(); }

class Sink : public groups::MemberSink {
 public:
  void OnReady() override {}
};

// What a member got: its events (sequence, attempt) and confirmed acks.
struct Got {
  std::vector<std::uint64_t> sequences;
  std::vector<std::uint32_t> attempts;
  std::vector<std::uint64_t> acknowledged;
  absl::Status end;
};

// Takes from `membership` until it has `events` events and `acks`
// confirmations, it ends, or `timeout` passes.
Got TakeUntil(const groups::Membership& membership, std::size_t events,
              std::size_t acks = 0, absl::Duration timeout = kTimeout) {
  Got got;
  const absl::Time deadline = absl::Now() + timeout;
  while ((got.sequences.size() < events || got.acknowledged.size() < acks) &&
         absl::Now() < deadline) {
    groups::MemberBatch batch;
    if (!membership.group->Take(membership.member,
                                events - std::min(events, got.sequences.size()),
                                1 << 20, &batch)) {
      absl::SleepFor(absl::Milliseconds(2));
      continue;
    }
    if (!batch.end.ok()) {
      got.end = batch.end;
      break;
    }
    for (const groups::Assignment& a : batch.events) {
      got.sequences.push_back(a.delivery->sequence);
      got.attempts.push_back(a.attempt);
      v1::Event event;
      EXPECT_TRUE(event.ParseFromString(*a.delivery->event_bytes));
      EXPECT_EQ(event.sequence(), a.delivery->sequence);
    }
    got.acknowledged.insert(got.acknowledged.end(), batch.acknowledged.begin(),
                            batch.acknowledged.end());
  }
  return got;
}

class JetStreamGroupsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<NatsCluster>> cluster =
        NatsCluster::Start(1);
    if (absl::IsFailedPrecondition(cluster.status())) {
      GTEST_SKIP() << cluster.status();
    }
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
  }

  // One gateway replica: its store and its groups.
  struct Replica {
    std::unique_ptr<JetStreamEventStore> store;
    std::unique_ptr<JetStreamGroups> groups;
    ~Replica() {
      if (groups != nullptr) groups->Shutdown();
      groups.reset();
      if (store != nullptr) store->Close();
    }
  };

  std::unique_ptr<Replica> OpenReplica(hub::RetentionOptions retention = {}) {
    JetStreamOptions options;
    options.servers = {cluster_->url()};
    options.stream = StreamRequirements{.stream = "TEST",
                                        .subject_prefix = "test.events",
                                        .replicas = 1,
                                        .retention = retention,
                                        .duplicate_window = absl::Minutes(5)};
    options.start_timeout = absl::Seconds(10);
    options.probe_interval = absl::Milliseconds(200);
    auto replica = std::make_unique<Replica>();
    auto store = JetStreamEventStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    if (!store.ok()) return nullptr;
    replica->store = *std::move(store);
    auto groups = JetStreamGroups::Open(
        replica->store.get(), {.fetch_wait = absl::Milliseconds(200)});
    EXPECT_TRUE(groups.ok()) << groups.status();
    if (!groups.ok()) return nullptr;
    replica->groups = *std::move(groups);
    return replica;
  }

  void Publish(JetStreamEventStore& store, int n,
               v1::EventType type = v1::EVENT_TYPE_LEAD_CAPTURED) {
    for (int i = 0; i < n; ++i) {
      v1::Event event;
      event.set_id(absl::StrCat("evt_", published_));
      event.set_event_type(type);
      event.mutable_lead_captured()->set_agent_id("agent");
      ++published_;
      absl::Notification done;
      absl::StatusOr<PublishAck> ack;
      store.Publish("test.events.lead_captured", event.id(),
                    event.SerializeAsString(),
                    [&](absl::StatusOr<PublishAck> result) {
                      ack = std::move(result);
                      done.Notify();
                    });
      done.WaitForNotification();
      ASSERT_TRUE(ack.ok()) << ack.status();
    }
  }

  groups::Membership Join(JetStreamGroups& groups, const std::string& name,
                          std::uint32_t max_in_flight = 10,
                          std::uint32_t attempts = 0,
                          std::int64_t deadline_seconds = 0) {
    v1::ConsumeRequest request;
    request.set_consumer_group(name);
    request.set_from_oldest(true);
    request.set_max_in_flight(max_in_flight);
    request.set_max_delivery_attempts(attempts);
    if (deadline_seconds > 0) {
      request.mutable_ack_deadline()->set_seconds(deadline_seconds);
    }
    absl::StatusOr<groups::JoinRequest> join =
        groups::JoinRequestFromProto(request);
    EXPECT_TRUE(join.ok()) << join.status();
    sinks_.push_back(std::make_unique<Sink>());
    absl::StatusOr<groups::Membership> membership =
        groups.Join(*join, &AllowAll, sinks_.back().get());
    EXPECT_TRUE(membership.ok()) << membership.status();
    return membership.value_or(groups::Membership{});
  }

  std::unique_ptr<NatsCluster> cluster_;
  std::vector<std::unique_ptr<Sink>> sinks_;
  int published_ = 0;
};

TEST_F(JetStreamGroupsTest, MembersOnTwoReplicasShareEachEventOnce) {
  auto a = OpenReplica();
  auto b = OpenReplica();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  groups::Membership on_a = Join(*a->groups, "crm");
  groups::Membership on_b = Join(*b->groups, "crm");
  ASSERT_NE(on_a.group, nullptr);
  ASSERT_NE(on_b.group, nullptr);
  Publish(*a->store, 60);

  // Each member acks what it gets until the two together have all 60.
  std::multiset<std::uint64_t> handled;
  std::size_t from_a = 0;
  std::size_t confirmed = 0;
  const absl::Time deadline = absl::Now() + kTimeout;
  while (handled.size() < 60 && absl::Now() < deadline) {
    for (groups::Membership* m : {&on_a, &on_b}) {
      Got got = TakeUntil(*m, 10, 0, absl::Milliseconds(50));
      ASSERT_TRUE(got.end.ok()) << got.end;
      confirmed += got.acknowledged.size();
      for (std::uint32_t attempt : got.attempts) EXPECT_EQ(attempt, 1u);
      handled.insert(got.sequences.begin(), got.sequences.end());
      if (m == &on_a) from_a += got.sequences.size();
      ASSERT_TRUE(m->group->Settle(m->member, got.sequences, {}).ok());
    }
  }
  ASSERT_EQ(handled.size(), 60u);
  EXPECT_EQ(std::set<std::uint64_t>(handled.begin(), handled.end()).size(), 60u)
      << "an event went to two members without a redelivery";
  EXPECT_GT(from_a, 0u);
  EXPECT_LT(from_a, 60u);

  // Every ack is confirmed once JetStream has it; then the position is
  // JetStream's, as either replica reads it.
  const absl::Time confirm_by = absl::Now() + kTimeout;
  while (confirmed < 60 && absl::Now() < confirm_by) {
    for (groups::Membership* m : {&on_a, &on_b}) {
      confirmed +=
          TakeUntil(*m, 0, 1, absl::Milliseconds(20)).acknowledged.size();
    }
  }
  EXPECT_EQ(confirmed, 60u);
  absl::StatusOr<v1::ConsumerGroup> info =
      b->groups->GetGroup("crm", &AllowAll);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->ack_floor_sequence(), 60u);
  EXPECT_EQ(info->in_flight_events(), 0u);
  on_a.group->Leave(on_a.member);
  on_b.group->Leave(on_b.member);
}

TEST_F(JetStreamGroupsTest, APositionOutlivesTheReplicaThatServedIt) {
  Got second;
  {
    auto a = OpenReplica();
    ASSERT_NE(a, nullptr);
    groups::Membership member = Join(*a->groups, "crm");
    Publish(*a->store, 10);
    Got got = TakeUntil(member, 10);
    ASSERT_EQ(got.sequences.size(), 10u);
    const std::vector<std::uint64_t> first_half(got.sequences.begin(),
                                                got.sequences.begin() + 5);
    ASSERT_TRUE(member.group->Settle(member.member, first_half, {}).ok());
    ASSERT_EQ(TakeUntil(member, 0, 5).acknowledged.size(), 5u);
    // The replica goes with 6..10 held: they are given back.
  }
  auto c = OpenReplica();
  ASSERT_NE(c, nullptr);
  groups::Membership member = Join(*c->groups, "crm");
  second = TakeUntil(member, 5);
  EXPECT_THAT(second.sequences, ElementsAre(6, 7, 8, 9, 10));
  EXPECT_THAT(second.attempts, ElementsAre(2, 2, 2, 2, 2));
  EXPECT_THAT(TakeUntil(member, 1, 0, absl::Milliseconds(500)).sequences,
              IsEmpty());
  member.group->Leave(member.member);
}

TEST_F(JetStreamGroupsTest, AnEventPastItsDeadlineGoesToTheOtherReplica) {
  auto a = OpenReplica();
  auto b = OpenReplica();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  // JetStream picks which replica's fetch gets a redelivery: the slow
  // member's own replica may get it again first (and it expires again), so
  // attempts are plenty and the other member's is at least 2.
  groups::Membership slow = Join(*a->groups, "crm", 10, 20, 1);
  Publish(*a->store, 1);
  ASSERT_THAT(TakeUntil(slow, 1).sequences, ElementsAre(1));
  groups::Membership other = Join(*b->groups, "crm");
  Got again = TakeUntil(other, 1);
  EXPECT_THAT(again.sequences, ElementsAre(1));
  EXPECT_THAT(again.attempts, ElementsAre(Ge(2u)));
  slow.group->Leave(slow.member);
  other.group->Leave(other.member);
}

TEST_F(JetStreamGroupsTest, TheLastFailedAttemptIsADeadLetterThatReplays) {
  auto a = OpenReplica();
  ASSERT_NE(a, nullptr);
  groups::Membership member = Join(*a->groups, "crm", 10, /*attempts=*/2);
  Publish(*a->store, 2);
  Got got = TakeUntil(member, 2);
  ASSERT_THAT(got.sequences, ElementsAre(1, 2));
  ASSERT_TRUE(member.group->Settle(member.member, {2}, {{1, "crm down"}}).ok());
  Got again = TakeUntil(member, 1);
  ASSERT_THAT(again.sequences, ElementsAre(1));
  EXPECT_THAT(again.attempts, ElementsAre(2));
  ASSERT_TRUE(
      member.group->Settle(member.member, {}, {{1, "crm still down"}}).ok());

  v1::ListDeadLettersRequest list;
  list.set_consumer_group("crm");
  absl::StatusOr<v1::ListDeadLettersResponse> letters;
  ASSERT_TRUE(convocore::testing::Eventually([&] {
    letters = a->groups->ListDeadLetters(list, &AllowAll);
    return letters.ok() && letters->dead_letters_size() == 1;
  })) << letters.status();
  const v1::DeadLetter& letter = letters->dead_letters(0);
  EXPECT_EQ(letter.sequence(), 1u);
  EXPECT_EQ(letter.delivery_attempts(), 2u);
  EXPECT_EQ(letter.last_error(), "crm still down");
  EXPECT_EQ(letter.event().sequence(), 1u);
  EXPECT_EQ(letter.event().event_type(), v1::EVENT_TYPE_LEAD_CAPTURED);

  v1::ReplayDeadLettersRequest replay;
  replay.set_consumer_group("crm");
  absl::StatusOr<v1::ReplayDeadLettersResponse> replayed =
      a->groups->ReplayDeadLetters(replay, &AllowAll);
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  EXPECT_THAT(replayed->sequences(), ElementsAre(1));
  Got back = TakeUntil(member, 1);
  EXPECT_THAT(back.sequences, ElementsAre(1));
  EXPECT_THAT(back.attempts, ElementsAre(1));
  ASSERT_TRUE(member.group->Settle(member.member, {1}, {}).ok());
  EXPECT_THAT(TakeUntil(member, 0, 1).acknowledged, ElementsAre(1));
  letters = a->groups->ListDeadLetters(list, &AllowAll);
  ASSERT_TRUE(letters.ok()) << letters.status();
  EXPECT_EQ(letters->dead_letters_size(), 0);
  member.group->Leave(member.member);
}

TEST_F(JetStreamGroupsTest, AnAckSentAgainIsANoOp) {
  auto a = OpenReplica();
  ASSERT_NE(a, nullptr);
  groups::Membership member = Join(*a->groups, "crm");
  Publish(*a->store, 1);
  ASSERT_THAT(TakeUntil(member, 1).sequences, ElementsAre(1));
  // Twice in one request, then again while (or after) it is confirmed.
  ASSERT_TRUE(member.group->Settle(member.member, {1, 1}, {}).ok());
  ASSERT_TRUE(member.group->Settle(member.member, {1}, {}).ok());
  Got got = TakeUntil(member, 0, 1);
  EXPECT_THAT(got.acknowledged, ::testing::Contains(1));
  ASSERT_TRUE(member.group->Settle(member.member, {1}, {}).ok());
  member.group->Leave(member.member);
}

TEST_F(JetStreamGroupsTest, SeekDeliversAgainFromTheNewStart) {
  auto a = OpenReplica();
  ASSERT_NE(a, nullptr);
  groups::Membership member = Join(*a->groups, "crm");
  Publish(*a->store, 3);
  Got got = TakeUntil(member, 3);
  ASSERT_TRUE(member.group->Settle(member.member, got.sequences, {}).ok());
  ASSERT_EQ(TakeUntil(member, 0, 3).acknowledged.size(), 3u);
  Publish(*a->store, 1);
  ASSERT_THAT(TakeUntil(member, 1).sequences, ElementsAre(4));  // held

  v1::SeekConsumerGroupRequest seek;
  seek.set_consumer_group("crm");
  seek.set_after_sequence(1);
  absl::StatusOr<v1::ConsumerGroup> moved =
      a->groups->SeekGroup(seek, &AllowAll);
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(moved->ack_floor_sequence(), 1u);
  // What was held before the seek is the old consumer's: its ack is
  // ignored, and the new consumer delivers it again after 2 and 3.
  EXPECT_TRUE(member.group->Settle(member.member, {4}, {}).ok());
  EXPECT_THAT(TakeUntil(member, 3).sequences, ElementsAre(2, 3, 4));
  member.group->Leave(member.member);
}

TEST_F(JetStreamGroupsTest, AGroupLeftBelowRetentionIsOutOfRangeUntilASeek) {
  auto a = OpenReplica({.max_events = 5, .max_bytes = 1 << 20});
  ASSERT_NE(a, nullptr);
  // A group made before anything is published, then left unread while
  // retention takes what it never read.
  v1::CreateConsumerGroupRequest create;
  create.mutable_consumer_group()->set_name("late");
  create.set_from_oldest(true);
  ASSERT_TRUE(a->groups->CreateGroup(create, &AllowAll).ok());
  Publish(*a->store, 10);
  // A group made from the oldest now starts at what is retained.
  groups::Membership fresh = Join(*a->groups, "fresh");
  EXPECT_THAT(TakeUntil(fresh, 5).sequences, ElementsAre(6, 7, 8, 9, 10));
  fresh.group->Leave(fresh.member);

  v1::ConsumeRequest request;
  request.set_consumer_group("late");
  absl::StatusOr<groups::JoinRequest> join =
      groups::JoinRequestFromProto(request);
  ASSERT_TRUE(join.ok());
  Sink sink;
  absl::StatusOr<groups::Membership> refused =
      a->groups->Join(*join, &AllowAll, &sink);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kOutOfRange)
      << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("SeekConsumerGroup"));
  EXPECT_TRUE(refused.status().GetPayload(hub::kResumeInfoTypeUrl).has_value());

  v1::SeekConsumerGroupRequest seek;
  seek.set_consumer_group("late");
  seek.set_from_oldest(true);
  ASSERT_TRUE(a->groups->SeekGroup(seek, &AllowAll).ok());
  groups::Membership late = Join(*a->groups, "late");
  EXPECT_THAT(TakeUntil(late, 5).sequences, ElementsAre(6, 7, 8, 9, 10));
  late.group->Leave(late.member);
}

TEST_F(JetStreamGroupsTest, ErrorsNameWhatIsWrong) {
  auto a = OpenReplica();
  auto b = OpenReplica();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->groups->GetGroup("nobody", &AllowAll).status().code(),
            absl::StatusCode::kNotFound);

  v1::CreateConsumerGroupRequest create;
  create.mutable_consumer_group()->set_name("crm.leads");
  create.mutable_consumer_group()->add_event_types(
      v1::EVENT_TYPE_LEAD_CAPTURED);
  ASSERT_TRUE(a->groups->CreateGroup(create, &AllowAll).ok());
  EXPECT_EQ(b->groups->CreateGroup(create, &AllowAll).status().code(),
            absl::StatusCode::kAlreadyExists);
  absl::StatusOr<std::vector<v1::ConsumerGroup>> list =
      b->groups->ListGroups(&AllowAll);
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].name(), "crm.leads");

  // Another filter than the group's.
  v1::ConsumeRequest other;
  other.set_consumer_group("crm.leads");
  other.add_event_types(v1::EVENT_TYPE_BUG_REPORTED);
  absl::StatusOr<groups::JoinRequest> join =
      groups::JoinRequestFromProto(other);
  ASSERT_TRUE(join.ok());
  Sink sink;
  absl::StatusOr<groups::Membership> refused =
      b->groups->Join(*join, &AllowAll, &sink);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("EVENT_TYPE_LEAD_CAPTURED"));

  groups::Membership member = Join(*a->groups, "crm.leads");
  ASSERT_NE(member.group, nullptr);
  absl::Status never = member.group->Settle(member.member, {7}, {});
  EXPECT_EQ(never.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(never.message(), HasSubstr("event 7 was not delivered"));

  // Deleted on another replica: this replica's member ends with NOT_FOUND.
  ASSERT_TRUE(b->groups->DeleteGroup("crm.leads", &AllowAll).ok());
  EXPECT_EQ(b->groups->GetGroup("crm.leads", &AllowAll).status().code(),
            absl::StatusCode::kNotFound);
  Got ended = TakeUntil(member, 1);
  EXPECT_EQ(ended.end.code(), absl::StatusCode::kNotFound) << ended.end;
  member.group->Leave(member.member);
}

}  // namespace
}  // namespace convocore::jetstream
