// Consumer groups on --store=jetstream through the real binary: two gateway
// processes on one NATS server, with members of one group on each. Every
// event goes to one member only and every ack comes back confirmed; a
// gateway SIGKILLed with events held sends them to the other gateway's
// member once their deadline passes, and the group's position outlives the
// killed process; a dead letter made through one gateway is listed and
// replayed through the other.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "convocore/webhooks/v1/event_stream_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/gateway/http/http_test_client.h"
#include "tests/integration/gateway_process.h"
#include "tests/integration/webhook_requests.h"
#include "tests/support/eventually.h"
#include "tests/support/group_member.h"
#include "tests/support/nats_cluster.h"

namespace convocore::integration {
namespace {

namespace v1 = ::convocore::webhooks::v1;
using ::convocore::http::testing::HttpClient;
using ::convocore::http::testing::HttpResponse;
using ::convocore::testing::Eventually;
using ::convocore::testing::GroupMember;
using ::convocore::testing::NatsCluster;
using ::testing::ElementsAre;

constexpr int kGateways = 2;

v1::ConsumeRequest JoinRequest(
    const std::string& group, std::uint32_t max_in_flight = 0,
    std::uint32_t attempts = 0,
    absl::Duration ack_deadline = absl::ZeroDuration()) {
  v1::ConsumeRequest request;
  request.set_consumer_group(group);
  request.set_from_oldest(true);
  request.set_max_in_flight(max_in_flight);
  request.set_max_delivery_attempts(attempts);
  if (ack_deadline > absl::ZeroDuration()) {
    request.mutable_ack_deadline()->set_seconds(
        absl::ToInt64Seconds(ack_deadline));
  }
  return request;
}

// What one member was handed, delivery by delivery.
struct Handed {
  // sequence -> the attempt of each of its deliveries, in order.
  std::map<std::uint64_t, std::vector<std::uint32_t>> attempts;
  // sequence -> event id.
  std::map<std::uint64_t, std::string> ids;
  std::set<std::uint64_t> acked;

  std::set<std::uint64_t> sequences() const {
    std::set<std::uint64_t> all;
    for (const auto& [sequence, unused] : attempts) all.insert(sequence);
    return all;
  }
};

// Records what `member` hands within `timeout`, and acks all of it when
// `ack`; the events it handed.
std::vector<v1::ConsumedEvent> Pump(
    GroupMember& member, Handed& handed, bool ack,
    absl::Duration timeout = absl::Milliseconds(5)) {
  std::vector<v1::ConsumedEvent> events = member.NextEvents(timeout);
  std::vector<std::uint64_t> acks;
  for (const v1::ConsumedEvent& event : events) {
    const std::uint64_t sequence = event.event().sequence();
    handed.attempts[sequence].push_back(event.delivery_attempt());
    handed.ids[sequence] = event.event().id();
    if (ack) {
      acks.push_back(sequence);
      handed.acked.insert(sequence);
    }
  }
  if (!acks.empty()) member.Ack(acks);
  return events;
}

bool Includes(const std::set<std::uint64_t>& all,
              const std::set<std::uint64_t>& some) {
  return std::includes(all.begin(), all.end(), some.begin(), some.end());
}

std::set<std::uint64_t> Union(const std::set<std::uint64_t>& a,
                              const std::set<std::uint64_t>& b) {
  std::set<std::uint64_t> all = a;
  all.insert(b.begin(), b.end());
  return all;
}

class JetStreamGroupsThroughTheBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One node is enough: what is shared is the stream and its consumers,
    // not their replication.
    absl::StatusOr<std::unique_ptr<NatsCluster>> cluster =
        NatsCluster::Start(1, absl::Seconds(30));
    if (absl::IsFailedPrecondition(cluster.status())) {
      GTEST_SKIP() << cluster.status();
    }
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    // Both at once: they race to create the stream, the replay stream and
    // the KV bucket.
    for (int k = 0; k < kGateways; ++k) {
      gateways_.push_back(std::make_unique<GatewayProcess>(Flags()));
    }
    for (auto& gateway : gateways_) {
      ASSERT_TRUE(gateway->WaitReady(absl::Seconds(60)))
          << gateway->log() << cluster_->log(0);
    }
  }

  std::vector<std::string> Flags() const {
    return {"--store=jetstream",        "--nats_url=" + cluster_->url(),
            "--nats_replicas=1",        "--nats_publish_timeout=2s",
            "--nats_start_timeout=30s", "--heartbeat_interval=1s"};
  }

  static std::unique_ptr<v1::EventStreamService::Stub> Stub(
      const GatewayProcess& gateway) {
    return v1::EventStreamService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", gateway.grpc_port()),
                            grpc::InsecureChannelCredentials()));
  }

  // Posts `n` distinct webhooks, the k-th to gateway (first + k) % 2, as a
  // load balancer spreads them; sequence -> event id of each 200.
  std::map<std::uint64_t, std::string> Post(int n, const std::string& prefix,
                                            int first = 0) {
    HttpClient client;
    std::map<std::uint64_t, std::string> acked;
    for (int k = 0; k < n; ++k) {
      const GatewayProcess& gateway = *gateways_[(first + k) % kGateways];
      const HttpResponse response =
          PostWebhook(client, gateway, absl::StrCat(prefix, "-", k));
      EXPECT_EQ(response.code, 200) << response.body;
      if (std::optional<Ack> ack = ParseAck(response.body)) {
        EXPECT_FALSE(ack->duplicate);
        acked.emplace(ack->sequence, ack->id);
      }
    }
    return acked;
  }

  // The group as `gateway` reports it, once `done` holds of it; nullopt
  // (after a failure naming what it was) if it never did within 20 s.
  template <typename Condition>
  std::optional<v1::ConsumerGroup> GroupOnceItIs(const GatewayProcess& gateway,
                                                 const std::string& name,
                                                 Condition done) {
    auto stub = Stub(gateway);
    v1::GetConsumerGroupRequest get;
    get.set_consumer_group(name);
    v1::GetConsumerGroupResponse response;
    grpc::Status status;
    const bool ok = Eventually(
        [&] {
          grpc::ClientContext context;
          context.set_deadline(
              absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
          status = stub->GetConsumerGroup(&context, get, &response);
          return status.ok() && done(response.consumer_group());
        },
        absl::Seconds(20), absl::Milliseconds(50));
    if (!ok) {
      ADD_FAILURE() << "GetConsumerGroup: " << status.error_code() << " "
                    << status.error_message() << "\n"
                    << response.DebugString();
      return std::nullopt;
    }
    return response.consumer_group();
  }

  std::unique_ptr<NatsCluster> cluster_;
  std::vector<std::unique_ptr<GatewayProcess>> gateways_;
};

TEST_F(JetStreamGroupsThroughTheBinaryTest,
       MembersOnTwoGatewaysShareEveryEventOnce) {
  GroupMember a(gateways_[0]->grpc_port(), JoinRequest("crm"));
  ASSERT_TRUE(a.WaitJoined()) << gateways_[0]->log();
  GroupMember b(gateways_[1]->grpc_port(), JoinRequest("crm"));
  ASSERT_TRUE(b.WaitJoined()) << gateways_[1]->log();

  constexpr int kEvents = 200;
  std::map<std::uint64_t, std::string> posted;
  std::atomic<bool> sent{false};
  std::thread sender([&] {
    posted = Post(kEvents, "share");
    sent = true;
  });
  Handed on_a;
  Handed on_b;
  const bool all_handled = Eventually(
      [&] {
        Pump(a, on_a, true);
        Pump(b, on_b, true);
        return sent.load() &&
               Union(on_a.sequences(), on_b.sequences()).size() >=
                   posted.size();
      },
      absl::Seconds(30));
  sender.join();
  ASSERT_EQ(posted.size(), static_cast<std::size_t>(kEvents));
  ASSERT_TRUE(all_handled) << "a: " << on_a.attempts.size()
                           << ", b: " << on_b.attempts.size() << "\n"
                           << gateways_[0]->log() << gateways_[1]->log();

  std::set<std::uint64_t> expected;
  for (const auto& [sequence, id] : posted) expected.insert(sequence);
  EXPECT_EQ(Union(on_a.sequences(), on_b.sequences()), expected);
  for (const Handed* handed : {&on_a, &on_b}) {
    for (const auto& [sequence, attempts] : handed->attempts) {
      // The default deadline (30 s) never passes here: one delivery each.
      EXPECT_THAT(attempts, ElementsAre(1u)) << "sequence " << sequence;
      EXPECT_EQ(handed->ids.at(sequence), posted.at(sequence));
    }
  }
  for (std::uint64_t sequence : on_a.sequences()) {
    EXPECT_FALSE(on_b.attempts.contains(sequence))
        << sequence << " went to both members";
  }
  EXPECT_GT(on_a.attempts.size(), 0u) << "gateway 0's member got nothing";
  EXPECT_GT(on_b.attempts.size(), 0u) << "gateway 1's member got nothing";

  // Every ack is confirmed, to the member that sent it.
  ASSERT_TRUE(Eventually([&] {
    return a.Confirmed() == on_a.acked && b.Confirmed() == on_b.acked;
  })) << "a: "
      << a.Confirmed().size() << "/" << on_a.acked.size()
      << ", b: " << b.Confirmed().size() << "/" << on_b.acked.size();
  // Both gateways read the one position JetStream holds.
  const std::uint64_t last = posted.rbegin()->first;
  for (const auto& gateway : gateways_) {
    std::optional<v1::ConsumerGroup> group =
        GroupOnceItIs(*gateway, "crm", [&](const v1::ConsumerGroup& g) {
          return g.ack_floor_sequence() == last;
        });
    ASSERT_TRUE(group.has_value());
    EXPECT_EQ(group->in_flight_events(), 0u);
    EXPECT_EQ(group->connected_members(), 1u);
    EXPECT_EQ(group->last_sequence(), last);
  }
}

TEST_F(JetStreamGroupsThroughTheBinaryTest,
       AKilledGatewaysHeldEventsGoToTheOtherGateway) {
  constexpr std::uint32_t kMaxInFlight = 5;
  const v1::ConsumeRequest join =
      JoinRequest("g", kMaxInFlight, 10, absl::Seconds(2));
  auto doomed = std::make_unique<GroupMember>(gateways_[0]->grpc_port(), join);
  ASSERT_TRUE(doomed->WaitJoined()) << gateways_[0]->log();
  GroupMember survivor(gateways_[1]->grpc_port(), join);
  ASSERT_TRUE(survivor.WaitJoined()) << gateways_[1]->log();

  // Both ack everything at first...
  std::map<std::uint64_t, std::string> posted = Post(20, "acked");
  ASSERT_EQ(posted.size(), 20u);
  Handed on_doomed;
  Handed on_survivor;
  auto handled = [&] {
    return Union(on_doomed.sequences(), on_survivor.sequences());
  };
  auto all_posted = [&] {
    std::set<std::uint64_t> all;
    for (const auto& [sequence, id] : posted) all.insert(sequence);
    return all;
  };
  ASSERT_TRUE(Eventually([&] {
    Pump(*doomed, on_doomed, true);
    Pump(survivor, on_survivor, true);
    return Includes(handled(), all_posted());
  }));
  ASSERT_TRUE(Eventually([&] {
    return doomed->Confirmed() == on_doomed.acked &&
           survivor.Confirmed() == on_survivor.acked;
  }));
  EXPECT_FALSE(on_doomed.acked.empty());
  EXPECT_FALSE(on_survivor.acked.empty());

  // ...then the member on gateway 0 holds what it gets, until it holds
  // max_in_flight events (its gateway then fetches no more for it).
  const std::set<std::uint64_t> acked_before = on_doomed.acked;
  auto held = [&] {
    std::set<std::uint64_t> held;
    for (std::uint64_t s : on_doomed.sequences()) {
      if (!acked_before.contains(s)) held.insert(s);
    }
    return held;
  };
  for (int batch = 0; held().size() < kMaxInFlight && batch < 10; ++batch) {
    std::map<std::uint64_t, std::string> more =
        Post(10, absl::StrCat("held-", batch), batch);
    ASSERT_EQ(more.size(), 10u);
    posted.insert(more.begin(), more.end());
    ASSERT_TRUE(Eventually([&] {
      Pump(*doomed, on_doomed, false);
      Pump(survivor, on_survivor, true);
      return Includes(handled(), all_posted());
    }));
  }
  const std::set<std::uint64_t> held_at_kill = held();
  ASSERT_GE(held_at_kill.size(), kMaxInFlight);
  ASSERT_TRUE(
      Eventually([&] { return survivor.Confirmed() == on_survivor.acked; }));
  const std::set<std::uint64_t> confirmed_at_kill =
      Union(doomed->Confirmed(), survivor.Confirmed());

  gateways_[0]->Signal(SIGKILL);
  ASSERT_EQ(gateways_[0]->WaitForExit(), 128 + SIGKILL);
  const std::optional<grpc::Status> ended = doomed->WaitFinished();
  ASSERT_TRUE(ended.has_value());
  EXPECT_FALSE(ended->ok());

  // Once their deadline passes, JetStream gives what the dead gateway's
  // member held to the survivor's gateway: a later attempt each.
  Handed after_kill;
  const bool redelivered = Eventually([&] {
    for (const v1::ConsumedEvent& event : Pump(survivor, on_survivor, true)) {
      after_kill.attempts[event.event().sequence()].push_back(
          event.delivery_attempt());
    }
    return Includes(on_survivor.sequences(), held_at_kill);
  });
  std::string missing;
  for (std::uint64_t s : held_at_kill) {
    if (!on_survivor.attempts.contains(s)) absl::StrAppend(&missing, s, " ");
  }
  ASSERT_TRUE(redelivered) << "never redelivered: " << missing << "\n"
                           << gateways_[1]->log();
  for (std::uint64_t s : held_at_kill) {
    const std::vector<std::uint32_t>& attempts = on_survivor.attempts.at(s);
    EXPECT_GE(attempts.back(), 2u) << "sequence " << s;
    EXPECT_EQ(on_survivor.ids.at(s), posted.at(s));
  }
  for (const auto& [sequence, attempts] : after_kill.attempts) {
    EXPECT_FALSE(confirmed_at_kill.contains(sequence))
        << sequence << " was delivered again after its ack was confirmed";
  }
  // Everything is acked in the end, and confirmed.
  ASSERT_TRUE(Includes(on_survivor.acked, held_at_kill));
  ASSERT_TRUE(Eventually([&] {
    Pump(survivor, on_survivor, true);
    return Includes(survivor.Confirmed(), held_at_kill);
  })) << gateways_[1]->log();

  // The killed gateway, started again, finds the group where JetStream
  // holds it: after the last event, with the settings it was made with.
  doomed.reset();
  gateways_[0] = std::make_unique<GatewayProcess>(Flags());
  ASSERT_TRUE(gateways_[0]->WaitReady(absl::Seconds(60)))
      << gateways_[0]->log();
  const std::uint64_t last = posted.rbegin()->first;
  std::optional<v1::ConsumerGroup> group =
      GroupOnceItIs(*gateways_[0], "g", [&](const v1::ConsumerGroup& g) {
        return g.ack_floor_sequence() == last;
      });
  ASSERT_TRUE(group.has_value()) << gateways_[0]->log();
  EXPECT_EQ(group->in_flight_events(), 0u);
  EXPECT_EQ(group->ack_deadline().seconds(), 2);
  EXPECT_EQ(group->max_delivery_attempts(), 10u);
  EXPECT_EQ(group->connected_members(), 0u);
  EXPECT_EQ(group->last_sequence(), last);
}

TEST_F(JetStreamGroupsThroughTheBinaryTest,
       ADeadLetterIsListedAndReplayedByTheOtherGateway) {
  GroupMember member(gateways_[0]->grpc_port(), JoinRequest("dl", 10, 2));
  ASSERT_TRUE(member.WaitJoined()) << gateways_[0]->log();
  const std::map<std::uint64_t, std::string> posted = Post(1, "poison", 1);
  ASSERT_EQ(posted.size(), 1u);
  // Not a structured binding: clang cannot capture those in a lambda.
  const std::uint64_t sequence = posted.begin()->first;
  const std::string id = posted.begin()->second;

  // The next event `member` hands, within 20 s.
  auto next = [&]() -> std::optional<v1::ConsumedEvent> {
    std::vector<v1::ConsumedEvent> events;
    Eventually([&] {
      events = member.NextEvents(absl::Milliseconds(50));
      return !events.empty();
    });
    if (events.empty()) return std::nullopt;
    EXPECT_EQ(events.size(), 1u);
    return events[0];
  };
  for (std::uint32_t attempt = 1; attempt <= 2; ++attempt) {
    std::optional<v1::ConsumedEvent> event = next();
    ASSERT_TRUE(event.has_value()) << "attempt " << attempt << "\n"
                                   << gateways_[0]->log();
    EXPECT_EQ(event->event().sequence(), sequence);
    EXPECT_EQ(event->delivery_attempt(), attempt);
    member.Nack(sequence, absl::StrCat("crm said 500 on attempt ", attempt));
  }

  // The other gateway lists it: the list is JetStream's, not a process's.
  auto other = Stub(*gateways_[1]);
  v1::ListDeadLettersRequest list;
  list.set_consumer_group("dl");
  v1::ListDeadLettersResponse letters;
  ASSERT_TRUE(Eventually(
      [&] {
        grpc::ClientContext context;
        return other->ListDeadLetters(&context, list, &letters).ok() &&
               letters.dead_letters_size() == 1;
      },
      absl::Seconds(20), absl::Milliseconds(50)))
      << letters.DebugString() << gateways_[0]->log();
  const v1::DeadLetter& letter = letters.dead_letters(0);
  EXPECT_EQ(letter.sequence(), sequence);
  EXPECT_EQ(letter.delivery_attempts(), 2u);
  EXPECT_EQ(letter.last_error(), "crm said 500 on attempt 2");
  EXPECT_EQ(letter.event().sequence(), sequence);
  EXPECT_EQ(letter.event().id(), id);
  EXPECT_GT(letter.dead_letter_time().seconds(), 0);
  std::optional<v1::ConsumerGroup> group = GroupOnceItIs(
      *gateways_[1], "dl",
      [](const v1::ConsumerGroup& g) { return g.dead_letter_count() == 1; });
  ASSERT_TRUE(group.has_value());

  // Replayed through the other gateway, it is a first attempt again.
  v1::ReplayDeadLettersRequest replay;
  replay.set_consumer_group("dl");
  v1::ReplayDeadLettersResponse replayed;
  grpc::ClientContext replay_context;
  const grpc::Status replay_status =
      other->ReplayDeadLetters(&replay_context, replay, &replayed);
  ASSERT_TRUE(replay_status.ok()) << replay_status.error_message();
  EXPECT_THAT(replayed.sequences(), ElementsAre(sequence));
  std::optional<v1::ConsumedEvent> again = next();
  ASSERT_TRUE(again.has_value()) << gateways_[0]->log();
  EXPECT_EQ(again->event().sequence(), sequence);
  EXPECT_EQ(again->event().id(), id);
  EXPECT_EQ(again->delivery_attempt(), 1u);
  member.Ack({sequence});
  ASSERT_TRUE(Eventually([&] { return member.Confirmed().contains(sequence); }))
      << gateways_[0]->log();

  // Gone from the list, on both gateways.
  for (const auto& gateway : gateways_) {
    auto stub = Stub(*gateway);
    grpc::ClientContext context;
    ASSERT_TRUE(stub->ListDeadLetters(&context, list, &letters).ok());
    EXPECT_EQ(letters.dead_letters_size(), 0) << letters.DebugString();
  }
  group = GroupOnceItIs(*gateways_[0], "dl", [&](const v1::ConsumerGroup& g) {
    return g.ack_floor_sequence() == sequence;
  });
  ASSERT_TRUE(group.has_value());
  EXPECT_EQ(group->dead_letter_count(), 0u);
}

}  // namespace
}  // namespace convocore::integration
