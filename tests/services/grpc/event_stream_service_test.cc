// EventStreamService end to end: a real server on an ephemeral port, real gRPC
// clients, the real hub over the in-memory store.
#include "services/grpc/event_stream_service.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "convocore/webhooks/v1/event_stream_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/unknown_field_set.h"
#include "gtest/gtest.h"
#include "services/auth/subscriber_tokens.h"
#include "services/grpc/grpc_server.h"
#include "services/hub/event_hub.h"
#include "services/hub/in_memory_event_store.h"
#include "tests/services/hub/test_events.h"
#include "tests/support/eventually.h"

namespace convocore::grpc_service {
namespace {

namespace v1 = convocore::webhooks::v1;
using hub::testing::MakeEvent;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::Each;
using ::testing::ElementsAreArray;
using ::testing::Ge;
using ::testing::Gt;
using ::testing::HasSubstr;
using ::testing::Le;

constexpr absl::Duration kTimeout = absl::Seconds(20);

using ::convocore::testing::Eventually;

// The ResumeInfo detail of `status`, decoded from its google.rpc.Status
// (`grpc-status-details-bin`) with protobuf's generic parser, as a client
// without our C++ helpers would; nullopt when there is none. Checks that the
// google.rpc.Status repeats the status's code and message.
std::optional<v1::ResumeInfo> ResumeInfoOf(const grpc::Status& status) {
  if (status.error_details().empty()) return std::nullopt;
  google::protobuf::UnknownFieldSet rpc_status;
  if (!rpc_status.ParseFromString(status.error_details())) {
    ADD_FAILURE() << "grpc-status-details-bin is not a message";
    return std::nullopt;
  }
  std::optional<v1::ResumeInfo> found;
  for (int i = 0; i < rpc_status.field_count(); ++i) {
    const google::protobuf::UnknownField& field = rpc_status.field(i);
    if (field.number() == 1) {
      EXPECT_EQ(field.varint(),
                static_cast<std::uint64_t>(status.error_code()));
    } else if (field.number() == 2) {
      EXPECT_EQ(field.length_delimited(), status.error_message());
    } else if (field.number() == 3) {
      google::protobuf::Any any;
      EXPECT_TRUE(any.ParseFromString(field.length_delimited()));
      v1::ResumeInfo info;
      if (any.UnpackTo(&info)) found = info;
    }
  }
  return found;
}

int ThreadCount() {
  int n = 0;
  for ([[maybe_unused]] const auto& entry :
       std::filesystem::directory_iterator("/proc/self/task")) {
    ++n;
  }
  return n;
}

// A subscriber on the synchronous client API, for tests that read in order.
class SyncSubscriber {
 public:
  // With a `token`, sends it as "authorization: Bearer <token>".
  SyncSubscriber(v1::EventStreamService::Stub* stub,
                 const v1::SubscribeRequest& request,
                 const std::string& token = "") {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + kTimeout));
    if (!token.empty()) {
      context_.AddMetadata("authorization", absl::StrCat("Bearer ", token));
    }
    reader_ = stub->Subscribe(&context_, request);
    // The server sends initial metadata once the subscription is
    // registered (or with the trailers of an immediate error).
    reader_->WaitForInitialMetadata();
  }
  ~SyncSubscriber() {
    if (!finished_) {
      context_.TryCancel();
      reader_->Finish();
    }
  }

  // The next event, skipping heartbeats and unpacking batches; nullopt once
  // the stream ended.
  std::optional<v1::Event> NextEvent() {
    if (!unread_.empty()) {
      v1::Event event = std::move(unread_.front());
      unread_.pop_front();
      return event;
    }
    v1::SubscribeResponse response;
    while (reader_->Read(&response)) {
      const bool heartbeat = response.has_heartbeat();
      if (heartbeat == (response.events_size() > 0)) {
        ADD_FAILURE() << "a response must carry events or a heartbeat: "
                      << response.ShortDebugString();
        continue;
      }
      if (heartbeat) {
        ++heartbeats_;
        last_heartbeat_ = response.heartbeat();
        continue;
      }
      response_sizes_.push_back(response.events_size());
      response_bytes_.push_back(response.ByteSizeLong());
      for (v1::Event& event : *response.mutable_events()) {
        unread_.push_back(std::move(event));
      }
      return NextEvent();
    }
    return std::nullopt;
  }

  // Reads `n` events; fewer if the stream ends.
  std::vector<std::uint64_t> ReadSequences(std::size_t n) {
    std::vector<std::uint64_t> out;
    while (out.size() < n) {
      std::optional<v1::Event> event = NextEvent();
      if (!event) break;
      out.push_back(event->sequence());
    }
    return out;
  }

  // Reads to the end of the stream; returns its status.
  grpc::Status ReadToEnd(std::vector<std::uint64_t>* sequences = nullptr) {
    while (std::optional<v1::Event> event = NextEvent()) {
      if (sequences != nullptr) sequences->push_back(event->sequence());
    }
    finished_ = true;
    return reader_->Finish();
  }

  grpc::Status Cancel() {
    context_.TryCancel();
    return ReadToEnd();
  }

  int heartbeats() const { return heartbeats_.load(); }
  const v1::Heartbeat& last_heartbeat() const { return last_heartbeat_; }
  // Responses that carried one event in `event`.
  // The number of events, and the bytes, of each `events` response.
  // Events per response, and each response's size, in arrival order.
  const std::vector<int>& response_sizes() const { return response_sizes_; }
  const std::vector<std::size_t>& response_bytes() const {
    return response_bytes_;
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader_;
  bool finished_ = false;
  std::atomic<int> heartbeats_{0};
  v1::Heartbeat last_heartbeat_;
  std::deque<v1::Event> unread_;
  std::vector<int> response_sizes_;
  std::vector<std::size_t> response_bytes_;
};

class EventStreamServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { StartAll(); }
  void TearDown() override { StopAll(); }

  void StartAll(hub::RetentionOptions retention = {},
                hub::HubOptions hub_options = {},
                absl::Duration heartbeat = absl::Hours(1)) {
    auto hub = hub::EventHub::Create(
        std::make_unique<hub::InMemoryEventStore>(retention), hub_options);
    ASSERT_TRUE(hub.ok()) << hub.status();
    hub_ = *std::move(hub);
    GrpcServerOptions options;
    options.address = "127.0.0.1";
    options.port = 0;
    options.heartbeat_interval = heartbeat;
    auto server = GrpcServer::Start(options, hub_.get());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_NE(server_->port(), 0);
    channel_ = NewChannel();
    stub_ = v1::EventStreamService::NewStub(channel_);
  }

  // Server before hub: streams end (and cancel their subscriptions) first.
  void StopAll() {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(5));
    server_.reset();
    hub_.reset();
  }

  std::shared_ptr<grpc::Channel> NewChannel(int index = 0) {
    grpc::ChannelArguments args;
    // A distinct argument keeps channels from sharing one connection.
    args.SetInt("convocore.test_channel_index", index);
    return grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", server_->port()),
        grpc::InsecureChannelCredentials(), args);
  }

  std::uint64_t Publish(v1::Event event) {
    auto sequence = hub_->Publish(std::move(event));
    EXPECT_TRUE(sequence.ok()) << sequence.status();
    return sequence.ok() ? *sequence : 0;
  }

  std::unique_ptr<hub::EventHub> hub_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::EventStreamService::Stub> stub_;
};

TEST_F(EventStreamServiceTest, SubscribersReceiveExactlyTheirEventsInOrder) {
  v1::SubscribeRequest all;
  v1::SubscribeRequest agents;
  agents.add_event_types(v1::EVENT_TYPE_AGENT_CREATED);
  agents.add_event_types(v1::EVENT_TYPE_OTHER);
  v1::SubscribeRequest voice_a1;
  voice_a1.add_agent_ids("a1");
  voice_a1.add_channels(v1::CHANNEL_VOICE);
  voice_a1.add_channels(v1::CHANNEL_OTHER);
  SyncSubscriber s_all(stub_.get(), all);
  SyncSubscriber s_agents(stub_.get(), agents);
  SyncSubscriber s_voice(stub_.get(), voice_a1);

  std::vector<std::uint64_t> want_all, want_agents, want_voice;
  for (int round = 0; round < 3; ++round) {
    std::uint64_t s;
    s = Publish(
        MakeEvent(v1::EVENT_TYPE_MESSAGE_RECEIVED, "a1", v1::CHANNEL_VOICE));
    want_all.push_back(s);
    want_voice.push_back(s);
    s = Publish(
        MakeEvent(v1::EVENT_TYPE_MESSAGE_RECEIVED, "a2", v1::CHANNEL_VOICE));
    want_all.push_back(s);
    s = Publish(
        MakeEvent(v1::EVENT_TYPE_LEAD_CAPTURED, "a1", v1::CHANNEL_OTHER));
    want_all.push_back(s);
    want_voice.push_back(s);
    s = Publish(MakeEvent(v1::EVENT_TYPE_AGENT_CREATED, "a1"));
    want_all.push_back(s);
    want_agents.push_back(s);
    s = Publish(MakeEvent(v1::EVENT_TYPE_OTHER, "a1"));
    want_all.push_back(s);
    want_agents.push_back(s);
    s = Publish(MakeEvent(v1::EVENT_TYPE_ORGANISATION_CREATED));
    want_all.push_back(s);
  }
  // A last event that every filter takes shows nothing else was queued.
  v1::Event last = MakeEvent(v1::EVENT_TYPE_OTHER, "a1");
  last.set_other_json(R"({"agentId":"a1","channel":"fax"})");
  const std::uint64_t marker = Publish(last);
  for (auto* want : {&want_all, &want_agents, &want_voice}) {
    want->push_back(marker);
  }

  EXPECT_THAT(s_all.ReadSequences(want_all.size()), ElementsAreArray(want_all));
  EXPECT_THAT(s_agents.ReadSequences(want_agents.size()),
              ElementsAreArray(want_agents));
  EXPECT_THAT(s_voice.ReadSequences(want_voice.size()),
              ElementsAreArray(want_voice));
}

TEST_F(EventStreamServiceTest, ResumeAfterTheLastSequenceHasNoGapNoDuplicate) {
  for (int i = 0; i < 10; ++i) Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  std::uint64_t last_read;
  {
    v1::SubscribeRequest request;
    request.set_after_sequence(0);
    SyncSubscriber first(stub_.get(), request);
    std::vector<std::uint64_t> got = first.ReadSequences(6);
    ASSERT_THAT(got, ElementsAreArray({1, 2, 3, 4, 5, 6}));
    last_read = got.back();
    EXPECT_EQ(first.Cancel().error_code(), grpc::StatusCode::CANCELLED);
  }
  for (int i = 0; i < 10; ++i) Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));

  v1::SubscribeRequest resume;
  resume.set_after_sequence(last_read);
  SyncSubscriber second(stub_.get(), resume);
  std::vector<std::uint64_t> want;
  for (std::uint64_t s = last_read + 1; s <= 20; ++s) want.push_back(s);
  EXPECT_THAT(second.ReadSequences(want.size()), ElementsAreArray(want));
  // Live after the replay: the next event is the next one published.
  const std::uint64_t next = Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  EXPECT_THAT(second.ReadSequences(1), ElementsAreArray({next}));
}

TEST_F(EventStreamServiceTest, ResumeFromAnEvictedPositionIsOutOfRange) {
  StopAll();
  StartAll(hub::RetentionOptions{5, 0, absl::ZeroDuration()});
  for (int i = 0; i < 20; ++i) Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  v1::SubscribeRequest request;
  request.set_after_sequence(3);
  SyncSubscriber subscriber(stub_.get(), request);
  grpc::Status status = subscriber.ReadToEnd();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_THAT(status.error_message(),
              HasSubstr("the oldest sequence available is 16"));
  std::optional<v1::ResumeInfo> info = ResumeInfoOf(status);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->last_sent_sequence(), 3u);
  EXPECT_EQ(info->oldest_available_sequence(), 16u);
  EXPECT_EQ(info->last_sequence(), 20u);
}

TEST_F(EventStreamServiceTest,
       AResumePointPastTheNewestIsInvalidForEveryValue) {
  Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  for (std::uint64_t after : {std::uint64_t{2}, std::uint64_t{1} << 63,
                              ~std::uint64_t{0} - 1, ~std::uint64_t{0}}) {
    v1::SubscribeRequest request;
    request.set_after_sequence(after);
    SyncSubscriber subscriber(stub_.get(), request);
    grpc::Status status = subscriber.ReadToEnd();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << after << ": " << status.error_message();
    EXPECT_THAT(status.error_message(),
                HasSubstr("beyond the newest sequence"));
  }
}

TEST_F(EventStreamServiceTest, ResponsesCarryUpToAHundredEventsByDefault) {
  std::vector<std::uint64_t> want;
  for (int i = 0; i < 450; ++i) {
    want.push_back(Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST)));
  }
  v1::SubscribeRequest request;
  request.set_from_oldest(true);
  SyncSubscriber subscriber(stub_.get(), request);
  EXPECT_THAT(subscriber.ReadSequences(want.size()), ElementsAreArray(want));
  EXPECT_THAT(subscriber.response_sizes(), Each(AllOf(Ge(1), Le(100))));
  EXPECT_THAT(subscriber.response_sizes(), Contains(Gt(1)));
}

TEST_F(EventStreamServiceTest, BadRequestsAreInvalidArgument) {
  Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  v1::SubscribeRequest future;
  future.set_after_sequence(5);
  SyncSubscriber s1(stub_.get(), future);
  grpc::Status status = s1.ReadToEnd();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("beyond the newest sequence"));

  v1::SubscribeRequest bad_filter;
  bad_filter.add_event_types(v1::EVENT_TYPE_UNSPECIFIED);
  SyncSubscriber s2(stub_.get(), bad_filter);
  EXPECT_EQ(s2.ReadToEnd().error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  v1::SubscribeRequest huge_batches;
  huge_batches.set_max_events_per_response(1001);
  SyncSubscriber s3(stub_.get(), huge_batches);
  status = s3.ReadToEnd();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("max_events_per_response must be at most 1000, got "
                        "1001"));
}

TEST_F(EventStreamServiceTest, BatchedStreamsSendQueuedEventsTogetherInOrder) {
  // Published before the stream opens: the replay queues many at once.
  std::vector<std::uint64_t> want;
  for (int i = 0; i < 500; ++i) {
    want.push_back(Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST)));
  }
  v1::SubscribeRequest request;
  request.set_from_oldest(true);
  request.set_max_events_per_response(100);
  SyncSubscriber subscriber(stub_.get(), request);
  EXPECT_THAT(subscriber.ReadSequences(want.size()), ElementsAreArray(want));
  // Live events follow, in batches too.
  const std::uint64_t live = Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  EXPECT_THAT(subscriber.ReadSequences(1), ElementsAreArray({live}));

  EXPECT_THAT(subscriber.response_sizes(), Each(AllOf(Ge(1), Le(100))));
  EXPECT_THAT(subscriber.response_sizes(), Contains(Gt(1)));
  EXPECT_LT(subscriber.response_sizes().size(), want.size());
}

TEST_F(EventStreamServiceTest, ABatchStopsGrowingPastOneMebibyte) {
  constexpr std::size_t kEventBytes = 100 << 10;
  constexpr int kEvents = 30;
  for (int i = 0; i < kEvents; ++i) {
    Publish(MakeEvent(v1::EVENT_TYPE_MESSAGE_RECEIVED, "a", v1::CHANNEL_VOICE,
                      kEventBytes));
  }
  v1::SubscribeRequest request;
  request.set_from_oldest(true);
  request.set_max_events_per_response(1000);
  SyncSubscriber subscriber(stub_.get(), request);
  EXPECT_EQ(subscriber.ReadSequences(kEvents).size(), kEvents);
  // 1 MiB, plus the event that crossed it.
  EXPECT_THAT(subscriber.response_bytes(),
              Each(Le((1u << 20) + kEventBytes + 1024)));
  EXPECT_GE(subscriber.response_sizes().size(), 3u);
}

// With one event per response, the default (0: up to 100) and 50.
class CutOffTest : public EventStreamServiceTest,
                   public ::testing::WithParamInterface<std::uint32_t> {};

INSTANTIATE_TEST_SUITE_P(EventsPerResponse, CutOffTest,
                         ::testing::Values(1u, 0u, 50u));

TEST_P(CutOffTest, SlowSubscriberIsCutOffWhileAFastOneGetsAll) {
  StopAll();
  StartAll({}, hub::HubOptions{.subscriber_queue_limit = 64});
  auto slow_channel = NewChannel(1);
  auto slow_stub = v1::EventStreamService::NewStub(slow_channel);
  v1::SubscribeRequest request;
  request.set_max_events_per_response(GetParam());
  SyncSubscriber slow(slow_stub.get(), request);
  SyncSubscriber fast(stub_.get(), request);

  // The slow one reads nothing: once gRPC's flow-control windows and the
  // socket buffers are full, its queue fills and it is cut off. Publish in
  // rounds that the fast one keeps up with.
  constexpr std::size_t kEventBytes = 16 << 10;
  std::vector<std::uint64_t> published;
  std::vector<std::uint64_t> fast_got;
  while (hub_->Stats().subscribers_cut_off_total == 0 &&
         published.size() < 20'000) {
    for (int i = 0; i < 32; ++i) {
      published.push_back(
          Publish(MakeEvent(v1::EVENT_TYPE_MESSAGE_RECEIVED, "a",
                            v1::CHANNEL_VOICE, kEventBytes)));
    }
    std::vector<std::uint64_t> got = fast.ReadSequences(32);
    fast_got.insert(fast_got.end(), got.begin(), got.end());
    ASSERT_EQ(fast_got.size(), published.size());
  }
  ASSERT_EQ(hub_->Stats().subscribers_cut_off_total, 1u);
  for (int i = 0; i < 10; ++i) {
    published.push_back(Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST)));
  }
  std::vector<std::uint64_t> got = fast.ReadSequences(10);
  fast_got.insert(fast_got.end(), got.begin(), got.end());
  EXPECT_EQ(fast_got, published);

  // The slow one gets what was already sent, in order from the start, then
  // the status naming the last of it.
  std::vector<std::uint64_t> slow_got;
  grpc::Status status = slow.ReadToEnd(&slow_got);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  ASSERT_FALSE(slow_got.empty());
  for (std::size_t i = 0; i < slow_got.size(); ++i) {
    EXPECT_EQ(slow_got[i], published[i]);
  }
  EXPECT_THAT(
      status.error_message(),
      HasSubstr(absl::StrCat("the last sequence sent was ", slow_got.back())));
  EXPECT_THAT(status.error_message(),
              HasSubstr(absl::StrCat("after_sequence=", slow_got.back())));
  std::optional<v1::ResumeInfo> info = ResumeInfoOf(status);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->last_sent_sequence(), slow_got.back());
  EXPECT_EQ(info->oldest_available_sequence(), 1u);
  EXPECT_GE(info->last_sequence(), slow_got.back());
}

TEST_F(EventStreamServiceTest, HeartbeatsArriveOnAnIdleStream) {
  StopAll();
  StartAll({}, {}, absl::Milliseconds(50));
  const std::uint64_t last = Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  SyncSubscriber subscriber(stub_.get(), v1::SubscribeRequest());
  // Nothing is published until two heartbeats have arrived; NextEvent()
  // counts them while it waits for the event.
  std::thread publisher([&] {
    Eventually([&] { return subscriber.heartbeats() >= 2; });
    Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  });
  std::optional<v1::Event> event = subscriber.NextEvent();
  publisher.join();
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(event->sequence(), last + 1);
  EXPECT_GE(subscriber.heartbeats(), 2);
  EXPECT_EQ(subscriber.last_heartbeat().last_sequence(), last);
  EXPECT_GT(subscriber.last_heartbeat().send_time().seconds(), 0);
}

// Holds a stream open on the callback client API, so that a handful of
// gRPC threads carry any number of them.
class IdleStream : public grpc::ClientReadReactor<v1::SubscribeResponse> {
 public:
  struct Counters {
    std::mutex mu;
    std::condition_variable changed;
    int ready = 0;
    int events = 0;
    int done = 0;
  };

  IdleStream(v1::EventStreamService::Stub* stub, Counters* counters)
      : counters_(counters) {
    stub->async()->Subscribe(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
  }
  void Cancel() { context_.TryCancel(); }

  void OnReadInitialMetadataDone(bool ok) override { Bump(&Counters::ready); }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    if (response_.events_size() > 0) Bump(&Counters::events);
    StartRead(&response_);
  }
  void OnDone(const grpc::Status& status) override { Bump(&Counters::done); }

 private:
  void Bump(int Counters::*field) {
    {
      std::lock_guard<std::mutex> lock(counters_->mu);
      ++(counters_->*field);
    }
    counters_->changed.notify_all();
  }

  Counters* const counters_;
  grpc::ClientContext context_;
  v1::SubscribeRequest request_;
  v1::SubscribeResponse response_;
};

TEST_F(EventStreamServiceTest, AThousandIdleSubscribersNeedNoThreadEach) {
  constexpr int kStreams = 1000;
  constexpr int kChannels = 4;
  std::vector<std::unique_ptr<v1::EventStreamService::Stub>> stubs;
  for (int c = 0; c < kChannels; ++c) {
    stubs.push_back(v1::EventStreamService::NewStub(NewChannel(c + 1)));
  }
  const int threads_before = ThreadCount();

  IdleStream::Counters counters;
  std::vector<std::unique_ptr<IdleStream>> streams;
  for (int i = 0; i < kStreams; ++i) {
    streams.push_back(
        std::make_unique<IdleStream>(stubs[i % kChannels].get(), &counters));
  }
  auto wait_for = [&](int IdleStream::Counters::*field, int n) {
    std::unique_lock<std::mutex> lock(counters.mu);
    return counters.changed.wait_for(lock, absl::ToChronoNanoseconds(kTimeout),
                                     [&] { return counters.*field >= n; });
  };
  ASSERT_TRUE(wait_for(&IdleStream::Counters::ready, kStreams));
  EXPECT_EQ(hub_->Stats().subscribers_open, kStreams);
  EXPECT_EQ(server_->open_streams(), kStreams);

  // Client and server together, in this process: a few dozen threads at
  // most, not one per stream.
  const int threads_open = ThreadCount();
  EXPECT_LT(threads_open - threads_before, 32)
      << threads_before << " threads before, " << threads_open << " with "
      << kStreams << " streams";

  // They are live: one event reaches all of them.
  Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  ASSERT_TRUE(wait_for(&IdleStream::Counters::events, kStreams));

  for (auto& stream : streams) stream->Cancel();
  ASSERT_TRUE(wait_for(&IdleStream::Counters::done, kStreams));
  EXPECT_TRUE(Eventually([&] {
    return hub_->Stats().subscribers_open == 0 && server_->open_streams() == 0;
  }));
}

TEST_F(EventStreamServiceTest, ShutdownEndsEveryStreamWithUnavailable) {
  Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  v1::SubscribeRequest from_start;
  from_start.set_after_sequence(0);
  SyncSubscriber a(stub_.get(), from_start);
  SyncSubscriber b(stub_.get(), v1::SubscribeRequest());
  ASSERT_THAT(a.ReadSequences(1), ElementsAreArray({1}));

  server_->Shutdown(absl::Seconds(5));
  EXPECT_EQ(server_->open_streams(), 0u);
  grpc::Status status_a = a.ReadToEnd();
  grpc::Status status_b = b.ReadToEnd();
  EXPECT_EQ(status_a.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status_a.error_message(), HasSubstr("shutting down"));
  EXPECT_THAT(status_a.error_message(), HasSubstr("after_sequence=1"));
  std::optional<v1::ResumeInfo> info_a = ResumeInfoOf(status_a);
  ASSERT_TRUE(info_a.has_value());
  EXPECT_EQ(info_a->last_sent_sequence(), 1u);
  EXPECT_EQ(info_a->last_sequence(), 1u);
  EXPECT_EQ(status_b.error_code(), grpc::StatusCode::UNAVAILABLE);
  // A stream from now that sent nothing resumes from where it started.
  std::optional<v1::ResumeInfo> info_b = ResumeInfoOf(status_b);
  ASSERT_TRUE(info_b.has_value());
  EXPECT_EQ(info_b->last_sent_sequence(), 1u);
  EXPECT_EQ(hub_->Stats().subscribers_open, 0u);
}

// grpc.health.v1.Health/Check by hand: HealthCheckRequest{service = 1} in,
// HealthCheckResponse{status = 1} out (1 SERVING, 2 NOT_SERVING).
int HealthStatus(grpc::Channel* channel, const std::string& service) {
  grpc::GenericStub stub(channel->shared_from_this());
  std::string request_bytes = "\x0a";
  request_bytes.push_back(static_cast<char>(service.size()));
  request_bytes += service;
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kTimeout));
  std::mutex mu;
  std::condition_variable cv;
  std::optional<grpc::Status> status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &request, &response, [&](grpc::Status s) {
                   std::lock_guard<std::mutex> lock(mu);
                   status = s;
                   cv.notify_all();
                 });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return status.has_value(); });
  if (!status->ok()) return -status->error_code();
  grpc::Slice out;
  if (!response.DumpToSingleSlice(&out).ok()) return -100;
  std::string bytes(reinterpret_cast<const char*>(out.begin()), out.size());
  return bytes.size() == 2 && bytes[0] == '\x08' ? bytes[1] : 0;
}

TEST_F(EventStreamServiceTest, HealthReportsTheServiceAndTheServer) {
  EXPECT_EQ(HealthStatus(channel_.get(), ""), 1);
  EXPECT_EQ(HealthStatus(channel_.get(), kEventStreamServiceName), 1);
  server_->SetServing(false);
  EXPECT_EQ(HealthStatus(channel_.get(), ""), 2);
  EXPECT_EQ(HealthStatus(channel_.get(), kEventStreamServiceName), 2);
  server_->SetServing(true);
  EXPECT_EQ(HealthStatus(channel_.get(), kEventStreamServiceName), 1);
}

// Reflection, as grpcurl uses it: ServerReflectionInfo with
// list_services (field 7) lists EventStreamService.
class ReflectionCall
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit ReflectionCall(grpc::Channel* channel)
      : stub_(channel->shared_from_this()) {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + kTimeout));
    stub_.PrepareBidiStreamingCall(
        &context_,
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        grpc::StubOptions(), this);
    grpc::Slice slice(std::string("\x3a\x00", 2));  // list_services = ""
    request_ = grpc::ByteBuffer(&slice, 1);
    StartWrite(&request_);
    StartRead(&response_);
    StartCall();
  }
  void OnWriteDone(bool ok) override { StartWritesDone(); }
  void OnReadDone(bool ok) override {
    if (ok) {
      grpc::Slice out;
      if (response_.DumpToSingleSlice(&out).ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        text_.assign(reinterpret_cast<const char*>(out.begin()), out.size());
      }
      StartRead(&response_);
    }
  }
  void OnDone(const grpc::Status& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    status_ = status;
    cv_.notify_all();
  }
  std::string Await() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
    return text_;
  }
  grpc::StatusCode AwaitCode() {
    Await();
    std::lock_guard<std::mutex> lock(mu_);
    return status_.error_code();
  }

 private:
  grpc::GenericStub stub_;
  grpc::ClientContext context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  grpc::Status status_;
  std::string text_;
};

TEST_F(EventStreamServiceTest, ASecondServerOnTheSamePortFailsToStart) {
  GrpcServerOptions options;
  options.address = "127.0.0.1";
  options.port = server_->port();
  auto second = GrpcServer::Start(options, hub_.get());
  EXPECT_FALSE(second.ok());
  if (second.ok()) (*second)->Shutdown(absl::Seconds(1));
}

TEST_F(EventStreamServiceTest, ReflectionListsTheService) {
  ReflectionCall call(channel_.get());
  EXPECT_THAT(call.Await(), HasSubstr(kEventStreamServiceName));
}

TEST_F(EventStreamServiceTest, ReflectionCanBeTurnedOffForOneServer) {
  GrpcServerOptions options;
  options.address = "127.0.0.1";
  options.reflection = false;
  auto closed = GrpcServer::Start(options, hub_.get());
  ASSERT_TRUE(closed.ok()) << closed.status();
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*closed)->port()),
                          grpc::InsecureChannelCredentials());
  ReflectionCall call(channel.get());
  EXPECT_EQ(call.AwaitCode(), grpc::StatusCode::UNIMPLEMENTED);
  // The service itself is there, and the other server keeps reflection.
  EXPECT_EQ(HealthStatus(channel.get(), kEventStreamServiceName), 1);
  ReflectionCall open(channel_.get());
  EXPECT_THAT(open.Await(), HasSubstr(kEventStreamServiceName));
  (*closed)->Shutdown(absl::Seconds(5));
}

// Subscriber tokens: "crm" may read leads and forms, "ops" everything.
class SubscriberAuthTest : public EventStreamServiceTest {
 protected:
  static constexpr char kCrm[] = "crm-token-4f1d2a";
  static constexpr char kOps[] = "ops-token-9b7c3e";

  void SetUp() override {
    EventStreamServiceTest::SetUp();
    server_->SetSubscriberTokens(
        Tokens({Entry("crm", kCrm, "\"lead_captured\", \"form_submitted\""),
                Entry("ops", kOps, "\"*\"")}));
  }

  static std::string Entry(const std::string& name, const std::string& token,
                           const std::string& types) {
    const auth::TokenDigest digest = auth::DigestOf(token);
    return absl::StrCat(
        "{\"name\": \"", name, "\", \"sha256\": \"",
        absl::BytesToHexString(absl::string_view(
            reinterpret_cast<const char*>(digest.data()), digest.size())),
        "\", \"event_types\": [", types, "]}");
  }

  static std::shared_ptr<const auth::SubscriberTokens> Tokens(
      const std::vector<std::string>& entries) {
    std::string text = "{\"tokens\": [";
    for (std::size_t i = 0; i < entries.size(); ++i) {
      absl::StrAppend(&text, i == 0 ? "" : ", ", entries[i]);
    }
    absl::StatusOr<auth::SubscriberTokens> tokens =
        auth::SubscriberTokens::Parse(absl::StrCat(text, "]}"));
    EXPECT_TRUE(tokens.ok()) << tokens.status();
    return std::make_shared<const auth::SubscriberTokens>(*std::move(tokens));
  }

  // The first event of a stream, after publishing the events of one each
  // type it may or may not read.
  void PublishOneOfEach() {
    Publish(MakeEvent(v1::EVENT_TYPE_MESSAGE_RECEIVED));
    Publish(MakeEvent(v1::EVENT_TYPE_LEAD_CAPTURED));
    Publish(MakeEvent(v1::EVENT_TYPE_OTHER));
    Publish(MakeEvent(v1::EVENT_TYPE_FORM_SUBMITTED));
  }
};

TEST_F(SubscriberAuthTest, WithoutAValidTokenAStreamIsUnauthenticated) {
  for (const std::string token : {"", "not-a-token", "crm-token-4f1d2"}) {
    SyncSubscriber subscriber(stub_.get(), v1::SubscribeRequest(), token);
    const grpc::Status status = subscriber.ReadToEnd();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << token;
    if (!token.empty()) {
      EXPECT_THAT(status.error_message(), ::testing::Not(HasSubstr(token)));
    }
  }
  // Another scheme is not a token either.
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kTimeout));
  context.AddMetadata("authorization", absl::StrCat("Basic ", kCrm));
  auto reader = stub_->Subscribe(&context, v1::SubscribeRequest());
  v1::SubscribeResponse response;
  while (reader->Read(&response)) {
  }
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("Bearer"));
  EXPECT_THAT(status.error_message(), ::testing::Not(HasSubstr(kCrm)));
}

TEST_F(SubscriberAuthTest, AnEmptyRequestReadsWhatTheTokenMayAndNoMore) {
  SyncSubscriber crm(stub_.get(), v1::SubscribeRequest(), kCrm);
  SyncSubscriber ops(stub_.get(), v1::SubscribeRequest(), kOps);
  PublishOneOfEach();
  std::optional<v1::Event> first = crm.NextEvent();
  std::optional<v1::Event> second = crm.NextEvent();
  ASSERT_TRUE(first.has_value() && second.has_value());
  EXPECT_EQ(first->event_type(), v1::EVENT_TYPE_LEAD_CAPTURED);
  EXPECT_EQ(second->event_type(), v1::EVENT_TYPE_FORM_SUBMITTED);
  // "*" reads every type, the unknown ones too.
  EXPECT_EQ(ops.ReadSequences(4), (std::vector<std::uint64_t>{1, 2, 3, 4}));
}

TEST_F(SubscriberAuthTest, ATypeOutsideTheTokensSetIsPermissionDenied) {
  v1::SubscribeRequest request;
  request.add_event_types(v1::EVENT_TYPE_LEAD_CAPTURED);
  request.add_event_types(v1::EVENT_TYPE_MESSAGE_RECEIVED);
  SyncSubscriber subscriber(stub_.get(), request, kCrm);
  const grpc::Status status = subscriber.ReadToEnd();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("\"message_received\""));
  v1::SubscribeRequest unknown;
  unknown.add_event_types(v1::EVENT_TYPE_OTHER);
  SyncSubscriber other(stub_.get(), unknown, kCrm);
  EXPECT_EQ(other.ReadToEnd().error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // A malformed filter is INVALID_ARGUMENT, token or not.
  v1::SubscribeRequest invalid;
  invalid.add_event_types(static_cast<v1::EventType>(999));
  SyncSubscriber bad(stub_.get(), invalid, kCrm);
  EXPECT_EQ(bad.ReadToEnd().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(SubscriberAuthTest, ARevokedTokensStreamEndsWithWhereToResume) {
  SyncSubscriber crm(stub_.get(), v1::SubscribeRequest(), kCrm);
  SyncSubscriber ops(stub_.get(), v1::SubscribeRequest(), kOps);
  PublishOneOfEach();
  ASSERT_TRUE(crm.NextEvent().has_value());  // sequence 2
  ASSERT_EQ(ops.ReadSequences(4).size(), 4u);
  server_->SetSubscriberTokens(Tokens({Entry("ops", kOps, "\"*\"")}));
  std::vector<std::uint64_t> rest;
  const grpc::Status status = crm.ReadToEnd(&rest);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("revoked"));
  std::optional<v1::ResumeInfo> info = ResumeInfoOf(status);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->last_sent_sequence(), rest.empty() ? 2u : rest.back());
  // The other token's stream goes on, and the revoked one cannot come back.
  Publish(MakeEvent(v1::EVENT_TYPE_WEBHOOK_TEST));
  EXPECT_EQ(ops.ReadSequences(1), (std::vector<std::uint64_t>{5}));
  SyncSubscriber again(stub_.get(), v1::SubscribeRequest(), kCrm);
  EXPECT_EQ(again.ReadToEnd().error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(SubscriberAuthTest, ANarrowedTokenEndsOnlyTheStreamsItNoLongerAllows) {
  v1::SubscribeRequest forms;
  forms.add_event_types(v1::EVENT_TYPE_FORM_SUBMITTED);
  SyncSubscriber forms_only(stub_.get(), forms, kCrm);
  SyncSubscriber everything_crm(stub_.get(), v1::SubscribeRequest(), kCrm);
  SyncSubscriber everything_ops(stub_.get(), v1::SubscribeRequest(), kOps);
  server_->SetSubscriberTokens(
      Tokens({Entry("crm", kCrm, "\"form_submitted\""),
              Entry("ops", kOps, "\"lead_captured\"")}));
  // Leads were part of what the crm stream was authorized for.
  const grpc::Status crm_status = everything_crm.ReadToEnd();
  EXPECT_EQ(crm_status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(crm_status.error_message(), HasSubstr("\"lead_captured\""));
  EXPECT_TRUE(ResumeInfoOf(crm_status).has_value());
  // "*" narrowed to a list no longer covers "every type".
  EXPECT_EQ(everything_ops.ReadToEnd().error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  PublishOneOfEach();
  std::optional<v1::Event> form = forms_only.NextEvent();
  ASSERT_TRUE(form.has_value());
  EXPECT_EQ(form->event_type(), v1::EVENT_TYPE_FORM_SUBMITTED);
}

TEST_F(SubscriberAuthTest, HealthNeedsNoToken) {
  EXPECT_EQ(HealthStatus(channel_.get(), ""), 1);
  EXPECT_EQ(HealthStatus(channel_.get(), kEventStreamServiceName), 1);
}

}  // namespace
}  // namespace convocore::grpc_service
