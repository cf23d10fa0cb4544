// Consumer groups through the real binary on the durable store: two and
// three members sharing a group under load, a member killed with events in
// flight, dead letters and replay, a gateway SIGKILL in the middle, seek,
// and the precise status of each invalid request.
#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
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

namespace convocore::integration {
namespace {

namespace v1 = ::convocore::webhooks::v1;
using ::convocore::http::testing::HttpClient;
using ::convocore::http::testing::HttpResponse;
using ::convocore::testing::Eventually;
using ::convocore::testing::GroupMember;
using ::testing::HasSubstr;

v1::ConsumeRequest JoinRequest(const std::string& group,
                               std::uint32_t max_in_flight = 0,
                               std::uint32_t attempts = 0) {
  v1::ConsumeRequest request;
  request.set_consumer_group(group);
  request.set_from_oldest(true);
  request.set_max_in_flight(max_in_flight);
  request.set_max_delivery_attempts(attempts);
  return request;
}

class ConsumerGroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string path =
        (std::filesystem::temp_directory_path() / "consumer_group_it.XXXXXX")
            .string();
    ASSERT_NE(mkdtemp(path.data()), nullptr);
    root_ = path;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }

  std::unique_ptr<GatewayProcess> StartGateway() {
    auto gateway = std::make_unique<GatewayProcess>(std::vector<std::string>{
        "--store=disk", "--data_dir=" + (root_ / "data").string(),
        "--heartbeat_interval=1s"});
    EXPECT_TRUE(gateway->WaitReady()) << gateway->log();
    return gateway;
  }

  // Posts `n` distinct webhooks; their sequences.
  std::vector<std::uint64_t> Post(const GatewayProcess& gateway, int n,
                                  const std::string& prefix) {
    HttpClient client;
    std::vector<std::uint64_t> sequences;
    for (int i = 0; i < n; ++i) {
      const HttpResponse response =
          PostWebhook(client, gateway, absl::StrCat(prefix, "-", i));
      EXPECT_EQ(response.code, 200) << response.body;
      if (std::optional<Ack> ack = ParseAck(response.body)) {
        sequences.push_back(ack->sequence);
      }
    }
    return sequences;
  }

  std::unique_ptr<v1::EventStreamService::Stub> Stub(
      const GatewayProcess& gateway) {
    return v1::EventStreamService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", gateway.grpc_port()),
                            grpc::InsecureChannelCredentials()));
  }

  std::filesystem::path root_;
};

class SharingTest : public ConsumerGroupTest,
                    public ::testing::WithParamInterface<int> {};

TEST_P(SharingTest, EveryEventIsHandledAndOnlyRedeliveriesTwice) {
  auto gateway = StartGateway();
  const int members_wanted = GetParam();
  std::vector<std::unique_ptr<GroupMember>> members;
  for (int m = 0; m < members_wanted; ++m) {
    members.push_back(std::make_unique<GroupMember>(gateway->grpc_port(),
                                                    JoinRequest("crm", 8)));
    ASSERT_TRUE(members.back()->WaitJoined());
  }
  constexpr int kEvents = 600;
  std::vector<std::uint64_t> posted;
  std::thread sender([&] { posted = Post(*gateway, kEvents, "load"); });

  std::map<std::uint64_t, int> handled;  // sequence -> first deliveries
  std::vector<int> per_member(members_wanted, 0);
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (handled.size() < kEvents && absl::Now() < deadline) {
    for (int m = 0; m < members_wanted; ++m) {
      std::vector<std::uint64_t> acks;
      for (const v1::ConsumedEvent& event :
           members[m]->NextEvents(absl::Milliseconds(5))) {
        if (event.delivery_attempt() == 1)
          ++handled[event.event().sequence()];
        else
          handled.emplace(event.event().sequence(), 0);
        acks.push_back(event.event().sequence());
        ++per_member[m];
      }
      if (!acks.empty()) members[m]->Ack(acks);
    }
  }
  sender.join();
  ASSERT_EQ(posted.size(), static_cast<std::size_t>(kEvents));
  for (std::uint64_t sequence : posted) {
    ASSERT_TRUE(handled.contains(sequence)) << sequence << " never handled";
    EXPECT_LE(handled[sequence], 1)
        << sequence << " went to two members without a redelivery";
  }
  for (int n : per_member) EXPECT_GT(n, kEvents / (4 * members_wanted));

  auto stub = Stub(*gateway);
  v1::GetConsumerGroupRequest get;
  get.set_consumer_group("crm");
  v1::GetConsumerGroupResponse group;
  ASSERT_TRUE(Eventually([&] {
    grpc::ClientContext context;
    return stub->GetConsumerGroup(&context, get, &group).ok() &&
           group.consumer_group().ack_floor_sequence() == posted.back();
  })) << group.DebugString();
  EXPECT_EQ(group.consumer_group().connected_members(),
            static_cast<std::uint32_t>(members_wanted));
}

INSTANTIATE_TEST_SUITE_P(Members, SharingTest, ::testing::Values(2, 3));

TEST_F(ConsumerGroupTest, AKilledMembersEventsGoToAnotherMember) {
  auto gateway = StartGateway();
  auto doomed =
      std::make_unique<GroupMember>(gateway->grpc_port(), JoinRequest("g", 5));
  ASSERT_TRUE(doomed->WaitJoined());
  Post(*gateway, 5, "held");
  std::vector<v1::ConsumedEvent> held;
  ASSERT_TRUE(Eventually([&] {
    for (auto& e : doomed->NextEvents(absl::Milliseconds(50))) {
      held.push_back(e);
    }
    return held.size() == 5;
  }));
  GroupMember survivor(gateway->grpc_port(), JoinRequest("g", 5));
  ASSERT_TRUE(survivor.WaitJoined());
  doomed->Kill();
  doomed.reset();
  std::vector<v1::ConsumedEvent> redelivered;
  ASSERT_TRUE(Eventually([&] {
    for (auto& e : survivor.NextEvents(absl::Milliseconds(50))) {
      redelivered.push_back(e);
    }
    return redelivered.size() >= 5;
  }));
  for (std::size_t k = 0; k < 5; ++k) {
    EXPECT_EQ(redelivered[k].event().sequence(), held[k].event().sequence());
    EXPECT_EQ(redelivered[k].delivery_attempt(), 2u);
  }
}

TEST_F(ConsumerGroupTest, TheLastFailedAttemptDeadLettersAndReplayRedelivers) {
  auto gateway = StartGateway();
  GroupMember member(gateway->grpc_port(), JoinRequest("g", 10, 2));
  ASSERT_TRUE(member.WaitJoined());
  const std::uint64_t sequence = Post(*gateway, 1, "poison").at(0);
  for (std::uint32_t attempt = 1; attempt <= 2; ++attempt) {
    std::vector<v1::ConsumedEvent> events = member.NextEvents();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].delivery_attempt(), attempt);
    member.Nack(sequence, absl::StrCat("crm said 500 on attempt ", attempt));
  }
  auto stub = Stub(*gateway);
  v1::ListDeadLettersRequest list;
  list.set_consumer_group("g");
  v1::ListDeadLettersResponse letters;
  ASSERT_TRUE(Eventually([&] {
    grpc::ClientContext context;
    return stub->ListDeadLetters(&context, list, &letters).ok() &&
           letters.dead_letters_size() == 1;
  }));
  EXPECT_EQ(letters.dead_letters(0).sequence(), sequence);
  EXPECT_EQ(letters.dead_letters(0).delivery_attempts(), 2u);
  EXPECT_EQ(letters.dead_letters(0).last_error(), "crm said 500 on attempt 2");
  EXPECT_EQ(letters.dead_letters(0).event().sequence(), sequence);
  EXPECT_TRUE(member.NextEvents(absl::Milliseconds(200)).empty());

  v1::ReplayDeadLettersRequest replay;
  replay.set_consumer_group("g");
  v1::ReplayDeadLettersResponse replayed;
  grpc::ClientContext replay_context;
  ASSERT_TRUE(stub->ReplayDeadLetters(&replay_context, replay, &replayed).ok());
  ASSERT_EQ(replayed.sequences_size(), 1);
  std::vector<v1::ConsumedEvent> again = member.NextEvents();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].delivery_attempt(), 1u);
  member.Ack({sequence});
  grpc::ClientContext list_context;
  ASSERT_TRUE(stub->ListDeadLetters(&list_context, list, &letters).ok());
  EXPECT_EQ(letters.dead_letters_size(), 0);
}

TEST_F(ConsumerGroupTest, AfterASigkillNoConfirmedAckIsRedeliveredAndNoneLost) {
  auto gateway = StartGateway();
  std::set<std::uint64_t> posted;
  std::set<std::uint64_t> confirmed;
  std::set<std::uint64_t> handled;
  {
    GroupMember a(gateway->grpc_port(), JoinRequest("g", 16));
    GroupMember b(gateway->grpc_port(), JoinRequest("g", 16));
    ASSERT_TRUE(a.WaitJoined() && b.WaitJoined());
    for (std::uint64_t s : Post(*gateway, 300, "before")) posted.insert(s);
    // Handle until about half are durably acked, then kill the gateway with
    // acks and deliveries in flight.
    ASSERT_TRUE(Eventually([&] {
      for (GroupMember* m : {&a, &b}) {
        std::vector<std::uint64_t> acks;
        for (const auto& e : m->NextEvents(absl::Milliseconds(5))) {
          handled.insert(e.event().sequence());
          acks.push_back(e.event().sequence());
        }
        if (!acks.empty()) m->Ack(acks);
      }
      return a.Confirmed().size() + b.Confirmed().size() >= 150;
    }));
    gateway->Signal(SIGKILL);
    ASSERT_EQ(gateway->WaitForExit(), 128 + SIGKILL);
    for (GroupMember* m : {&a, &b}) {
      for (std::uint64_t s : m->Confirmed()) confirmed.insert(s);
    }
  }
  gateway = StartGateway();
  GroupMember a(gateway->grpc_port(), JoinRequest("g", 16));
  GroupMember b(gateway->grpc_port(), JoinRequest("g", 16));
  ASSERT_TRUE(a.WaitJoined() && b.WaitJoined());
  for (std::uint64_t s : Post(*gateway, 50, "after")) posted.insert(s);
  std::set<std::uint64_t> after_restart;
  ASSERT_TRUE(Eventually(
      [&] {
        for (GroupMember* m : {&a, &b}) {
          std::vector<std::uint64_t> acks;
          for (const auto& e : m->NextEvents(absl::Milliseconds(5))) {
            EXPECT_FALSE(confirmed.contains(e.event().sequence()))
                << e.event().sequence() << " was durably acked before the kill";
            after_restart.insert(e.event().sequence());
            handled.insert(e.event().sequence());
            acks.push_back(e.event().sequence());
          }
          if (!acks.empty()) m->Ack(acks);
        }
        return std::includes(handled.begin(), handled.end(), posted.begin(),
                             posted.end());
      },
      absl::Seconds(60)));
  // The documented bound: what is redelivered is what was not confirmed.
  EXPECT_LE(after_restart.size(), posted.size() - confirmed.size());
}

TEST_F(ConsumerGroupTest, SeekDeliversFromTheNewPosition) {
  auto gateway = StartGateway();
  GroupMember member(gateway->grpc_port(), JoinRequest("g"));
  ASSERT_TRUE(member.WaitJoined());
  std::vector<std::uint64_t> posted = Post(*gateway, 10, "seek");
  std::vector<std::uint64_t> acks;
  ASSERT_TRUE(Eventually([&] {
    for (const auto& e : member.NextEvents(absl::Milliseconds(20))) {
      acks.push_back(e.event().sequence());
    }
    return acks.size() == 10;
  }));
  member.Ack(acks);
  auto stub = Stub(*gateway);
  v1::SeekConsumerGroupRequest seek;
  seek.set_consumer_group("g");
  seek.set_after_sequence(posted[6]);
  v1::SeekConsumerGroupResponse sought;
  grpc::ClientContext context;
  ASSERT_TRUE(stub->SeekConsumerGroup(&context, seek, &sought).ok());
  EXPECT_EQ(sought.consumer_group().ack_floor_sequence(), posted[6]);
  std::vector<std::uint64_t> again;
  ASSERT_TRUE(Eventually([&] {
    for (const auto& e : member.NextEvents(absl::Milliseconds(20))) {
      again.push_back(e.event().sequence());
    }
    return again.size() >= 3;
  }));
  EXPECT_EQ(again,
            (std::vector<std::uint64_t>{posted[7], posted[8], posted[9]}));
}

TEST_F(ConsumerGroupTest, InvalidRequestsGetAPreciseStatus) {
  auto gateway = StartGateway();
  auto stub = Stub(*gateway);
  {
    v1::GetConsumerGroupRequest get;
    get.set_consumer_group("unknown");
    v1::GetConsumerGroupResponse response;
    grpc::ClientContext context;
    const grpc::Status status =
        stub->GetConsumerGroup(&context, get, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(status.error_message(), HasSubstr("\"unknown\""));
  }
  auto refused = [&](const v1::ConsumeRequest& first) {
    GroupMember member(gateway->grpc_port(), first);
    std::optional<grpc::Status> status = member.WaitFinished();
    return status.value_or(
        grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "still open"));
  };
  v1::ConsumeRequest negative = JoinRequest("g");
  negative.mutable_ack_deadline()->set_seconds(-5);
  grpc::Status status = refused(negative);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("ack_deadline"));

  status = refused(JoinRequest("g", 5000));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("max_in_flight"));

  status = refused(JoinRequest(""));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("consumer_group"));

  {
    GroupMember member(gateway->grpc_port(), JoinRequest("g"));
    ASSERT_TRUE(member.WaitJoined());
    v1::ConsumeRequest other_type = JoinRequest("g");
    other_type.add_event_types(v1::EVENT_TYPE_BUG_REPORTED);
    status = refused(other_type);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);

    member.Ack({12345});
    std::optional<grpc::Status> ended = member.WaitFinished();
    ASSERT_TRUE(ended.has_value());
    EXPECT_EQ(ended->error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(ended->error_message(), HasSubstr("12345"));
  }
  {
    GroupMember member(gateway->grpc_port(), JoinRequest("g"));
    ASSERT_TRUE(member.WaitJoined());
    member.Write(JoinRequest("g"));
    std::optional<grpc::Status> ended = member.WaitFinished();
    ASSERT_TRUE(ended.has_value());
    EXPECT_EQ(ended->error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(ended->error_message(), HasSubstr("only the first"));
  }
}

}  // namespace
}  // namespace convocore::integration
