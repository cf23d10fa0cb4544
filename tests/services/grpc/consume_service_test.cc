// Consume and the group RPCs in process: a real server on an ephemeral port,
// real gRPC clients, the real hub and group manager over memory stores. Run
// under TSan too: members ack on their own threads while the hub publishes
// and the manager saves.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "convocore/webhooks/v1/event_stream_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/auth/subscriber_tokens.h"
#include "services/groups/group_manager.h"
#include "services/groups/group_state_store.h"
#include "services/grpc/grpc_server.h"
#include "services/hub/in_memory_event_store.h"
#include "tests/services/hub/test_events.h"
#include "tests/support/eventually.h"
#include "tests/support/group_member.h"

namespace convocore::grpc_service {
namespace {

namespace v1 = convocore::webhooks::v1;
using ::convocore::testing::Eventually;
using ::convocore::testing::GroupMember;
using hub::testing::MakeEvent;
using ::testing::HasSubstr;

constexpr char kCrm[] = "crm-token-for-groups";

v1::ConsumeRequest Join(const std::string& group, std::uint32_t in_flight = 0) {
  v1::ConsumeRequest request;
  request.set_consumer_group(group);
  request.set_from_oldest(true);
  request.set_max_in_flight(in_flight);
  return request;
}

class ConsumeServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto hub = hub::EventHub::Create(
        std::make_unique<hub::InMemoryEventStore>(hub::RetentionOptions{}));
    ASSERT_TRUE(hub.ok()) << hub.status();
    hub_ = *std::move(hub);
    auto groups = groups::GroupManager::Create(
        hub_.get(), groups::NewMemoryGroupStateStore());
    ASSERT_TRUE(groups.ok()) << groups.status();
    groups_ = *std::move(groups);
    GrpcServerOptions options;
    options.address = "127.0.0.1";
    options.port = 0;
    options.heartbeat_interval = absl::Milliseconds(200);
    auto server = GrpcServer::Start(options, hub_.get(), groups_.get());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  // The server first (its streams leave their groups), then the groups,
  // then the hub they read.
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(5));
    server_.reset();
    groups_.reset();
    hub_.reset();
  }

  void Publish(int n, v1::EventType type = v1::EVENT_TYPE_LEAD_CAPTURED) {
    for (int i = 0; i < n; ++i)
      ASSERT_TRUE(hub_->Publish(MakeEvent(type)).ok());
  }

  // `extra`: more keys of the token's entry.
  void UseTokens(const std::string& extra = "") {
    const auth::TokenDigest digest = auth::DigestOf(kCrm);
    auto tokens = auth::SubscriberTokens::Parse(absl::StrCat(
        R"({"tokens": [{"name": "crm", "sha256": ")",
        absl::BytesToHexString(absl::string_view(
            reinterpret_cast<const char*>(digest.data()), digest.size())),
        R"(", "event_types": ["lead_captured"])", extra, "}]}"));
    ASSERT_TRUE(tokens.ok()) << tokens.status();
    server_->SetSubscriberTokens(
        std::make_shared<const auth::SubscriberTokens>(*std::move(tokens)));
  }

  std::unique_ptr<hub::EventHub> hub_;
  std::unique_ptr<groups::GroupManager> groups_;
  std::unique_ptr<GrpcServer> server_;
};

TEST_F(ConsumeServiceTest, MembersAckOnTheirThreadsWhileEventsArrive) {
  constexpr int kMembers = 3;
  constexpr int kEvents = 2000;
  std::vector<std::unique_ptr<GroupMember>> members;
  for (int m = 0; m < kMembers; ++m) {
    members.push_back(
        std::make_unique<GroupMember>(server_->port(), Join("g", 32)));
    ASSERT_TRUE(members.back()->WaitJoined());
  }
  std::thread publisher([&] { Publish(kEvents); });
  absl::Mutex mu;
  std::set<std::uint64_t> handled;
  std::atomic<bool> stop{false};
  std::vector<std::thread> handlers;
  for (int m = 0; m < kMembers; ++m) {
    handlers.emplace_back([&, m] {
      while (!stop.load()) {
        std::vector<std::uint64_t> acks;
        for (const v1::ConsumedEvent& e :
             members[m]->NextEvents(absl::Milliseconds(20))) {
          acks.push_back(e.event().sequence());
        }
        if (acks.empty()) continue;
        members[m]->Ack(acks);
        absl::MutexLock lock(&mu);
        handled.insert(acks.begin(), acks.end());
      }
    });
  }
  publisher.join();
  const bool all = Eventually([&] {
    absl::MutexLock lock(&mu);
    return handled.size() == kEvents;
  });
  // Every ack is eventually reported durable to the member that sent it.
  const bool confirmed = Eventually([&] {
    std::size_t n = 0;
    for (auto& member : members) n += member->Confirmed().size();
    return n >= kEvents;
  });
  stop = true;
  for (std::thread& t : handlers) t.join();
  EXPECT_TRUE(all);
  EXPECT_TRUE(confirmed);
}

TEST_F(ConsumeServiceTest, ShutdownEndsAMemberWithUnavailable) {
  GroupMember member(server_->port(), Join("g"));
  ASSERT_TRUE(member.WaitJoined());
  Publish(1);
  ASSERT_EQ(member.NextEvents().size(), 1u);
  server_->Shutdown(absl::Seconds(5));
  std::optional<grpc::Status> ended = member.WaitFinished();
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ConsumeServiceTest, TokensNarrowANewGroupAndGuardAnExistingOne) {
  UseTokens();
  {
    GroupMember anonymous(server_->port(), Join("g"));
    std::optional<grpc::Status> status = anonymous.WaitFinished();
    ASSERT_TRUE(status.has_value());
    EXPECT_EQ(status->error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  GroupMember member(server_->port(), Join("crm"), kCrm);
  ASSERT_TRUE(member.WaitJoined());
  Publish(1, v1::EVENT_TYPE_BUG_REPORTED);
  Publish(1, v1::EVENT_TYPE_LEAD_CAPTURED);
  std::vector<v1::ConsumedEvent> events = member.NextEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event().event_type(), v1::EVENT_TYPE_LEAD_CAPTURED);

  // A group made before the tokens, reading every type, is out of reach.
  server_->SetSubscriberTokens(nullptr);
  auto stub = v1::EventStreamService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                          grpc::InsecureChannelCredentials()));
  v1::CreateConsumerGroupRequest create;
  create.mutable_consumer_group()->set_name("everything");
  v1::CreateConsumerGroupResponse created;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->CreateConsumerGroup(&context, create, &created).ok());
  }
  UseTokens();
  v1::GetConsumerGroupRequest get;
  get.set_consumer_group("everything");
  v1::GetConsumerGroupResponse got;
  grpc::ClientContext context;
  context.AddMetadata("authorization", absl::StrCat("Bearer ", kCrm));
  const grpc::Status status = stub->GetConsumerGroup(&context, get, &got);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << status.error_message();
}

TEST_F(ConsumeServiceTest, ASecondMemberWithTheSameRequestJoinsANarrowedGroup) {
  UseTokens(R"(, "workspaces": ["acme"])");
  v1::ConsumeRequest request = Join("leads");
  request.add_event_types(v1::EVENT_TYPE_LEAD_CAPTURED);
  GroupMember first(server_->port(), request, kCrm);
  ASSERT_TRUE(first.WaitJoined());
  // The group was created for workspace "acme" only; the same request,
  // narrowed the same way, names the same filter.
  GroupMember second(server_->port(), request, kCrm);
  ASSERT_TRUE(second.WaitJoined());
  EXPECT_FALSE(second.WaitFinished(absl::Milliseconds(200)).has_value());
}

TEST_F(ConsumeServiceTest, AMemberWhoseTokenIsRevokedIsCutOff) {
  UseTokens();
  GroupMember member(server_->port(), Join("crm"), kCrm);
  ASSERT_TRUE(member.WaitJoined());
  auto none = auth::SubscriberTokens::Parse(R"({"tokens": []})");
  ASSERT_TRUE(none.ok()) << none.status();
  server_->SetSubscriberTokens(
      std::make_shared<const auth::SubscriberTokens>(*std::move(none)));
  std::optional<grpc::Status> ended = member.WaitFinished();
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(ended->error_message(), HasSubstr("revoked"));
}

TEST(ConsumeWithoutGroupsTest, EveryGroupRpcIsFailedPrecondition) {
  auto hub = hub::EventHub::Create(
      std::make_unique<hub::InMemoryEventStore>(hub::RetentionOptions{}));
  ASSERT_TRUE(hub.ok());
  GrpcServerOptions options;
  options.address = "127.0.0.1";
  auto server = GrpcServer::Start(options, hub->get());
  ASSERT_TRUE(server.ok());
  {
    GroupMember member((*server)->port(), Join("g"));
    std::optional<grpc::Status> status = member.WaitFinished();
    ASSERT_TRUE(status.has_value());
    EXPECT_EQ(status->error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(status->error_message(), HasSubstr("consumer groups"));
  }
  auto stub = v1::EventStreamService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                          grpc::InsecureChannelCredentials()));
  v1::ListConsumerGroupsResponse list;
  grpc::ClientContext context;
  EXPECT_EQ(stub->ListConsumerGroups(&context, {}, &list).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  (*server)->Shutdown(absl::Seconds(5));
}

}  // namespace
}  // namespace convocore::grpc_service
