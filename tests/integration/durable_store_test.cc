// The durable default store through the real binary: every webhook that got
// a 200 survives a SIGKILL, subscribers resume across a restart, duplicates
// are recognised across a restart, and a full or read-only data directory
// answers 503 (ingestion and readiness) until it is writable again.
#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "convocore/webhooks/v1/event_stream_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/gateway/http/http_test_client.h"
#include "tests/integration/gateway_process.h"
#include "tests/integration/webhook_requests.h"
#include "tests/services/store/fault_injection.h"
#include "tests/support/eventually.h"

namespace convocore::integration {
namespace {

namespace v1 = ::convocore::webhooks::v1;
using ::convocore::http::testing::HttpClient;
using ::convocore::http::testing::HttpResponse;
using ::convocore::store::testing::FillFileSystem;
using ::convocore::store::testing::ScopedMount;

using ::convocore::testing::Eventually;

class DurableStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string path =
        (std::filesystem::temp_directory_path() / "durable_store_it.XXXXXX")
            .string();
    ASSERT_NE(mkdtemp(path.data()), nullptr);
    root_ = path;
    data_dir_ = root_ / "data";
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }

  // A gateway on the durable store in data_dir_; each call is a restart on
  // the same data.
  std::unique_ptr<GatewayProcess> StartGateway() {
    auto gateway = std::make_unique<GatewayProcess>(std::vector<std::string>{
        "--store=disk", "--data_dir=" + data_dir_.string()});
    EXPECT_TRUE(gateway->WaitReady()) << gateway->log();
    return gateway;
  }

  std::filesystem::path root_;
  std::filesystem::path data_dir_;
};

TEST_F(DurableStoreTest, EveryAcknowledgedEventSurvivesSigkill) {
  auto gateway = StartGateway();
  ASSERT_NE(gateway->http_port(), 0);

  // Several senders post distinct webhooks until the gateway dies.
  constexpr int kSenders = 6;
  constexpr int kAcksBeforeKill = 400;
  absl::Mutex mu;
  std::map<std::uint64_t, std::string> acked;  // sequence -> id
  std::atomic<int> acks{0};
  std::atomic<int> unexpected{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> senders;
  for (int s = 0; s < kSenders; ++s) {
    senders.emplace_back([&, s] {
      HttpClient client;
      for (int n = 0; !stop.load(); ++n) {
        const HttpResponse response =
            PostWebhook(client, *gateway, absl::StrCat(s, "-", n));
        if (response.code == 0) break;  // the gateway is gone
        if (response.code != 200) {
          ++unexpected;
          continue;
        }
        std::optional<Ack> ack = ParseAck(response.body);
        if (!ack || ack->duplicate) {
          ++unexpected;
          continue;
        }
        absl::MutexLock lock(&mu);
        acked.emplace(ack->sequence, ack->id);
        ++acks;
      }
    });
  }
  // The kill ends the senders; so does a failed wait, which must not leave
  // them running past the test.
  const bool enough_acks =
      Eventually([&] { return acks.load() >= kAcksBeforeKill; });
  gateway->Signal(SIGKILL);
  const std::optional<int> exit_code = gateway->WaitForExit();
  stop = true;
  for (std::thread& sender : senders) sender.join();
  ASSERT_TRUE(enough_acks) << gateway->log();
  EXPECT_EQ(exit_code, 128 + SIGKILL);
  EXPECT_EQ(unexpected.load(), 0);

  gateway = StartGateway();
  ASSERT_NE(gateway->grpc_port(), 0);
  absl::MutexLock lock(&mu);
  const std::uint64_t last_acked = acked.rbegin()->first;
  const std::vector<v1::Event> events = ReadStream(*gateway, 0, last_acked);
  // In order, each once...
  std::map<std::uint64_t, std::string> streamed;
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (i > 0) {
      ASSERT_GT(events[i].sequence(), events[i - 1].sequence());
    }
    streamed.emplace(events[i].sequence(), events[i].id());
  }
  // ...and every event that got a 200 is there, under its sequence.
  for (const auto& [sequence, id] : acked) {
    auto it = streamed.find(sequence);
    ASSERT_NE(it, streamed.end())
        << "acknowledged sequence " << sequence << " lost";
    EXPECT_EQ(it->second, id) << sequence;
  }

  // Sequences continue after every stored one, never reused.
  HttpClient client;
  const HttpResponse response = PostWebhook(client, *gateway, "after-restart");
  ASSERT_EQ(response.code, 200) << response.body;
  EXPECT_GT(ParseAck(response.body)->sequence, events.back().sequence());
}

TEST_F(DurableStoreTest,
       SubscriberResumesAndDuplicatesAreRecognisedAcrossRestart) {
  auto gateway = StartGateway();
  ASSERT_NE(gateway->http_port(), 0);
  HttpClient client;
  std::vector<Ack> acks;
  for (int n = 0; n < 20; ++n) {
    const HttpResponse response =
        PostWebhook(client, *gateway, absl::StrCat("first-", n));
    ASSERT_EQ(response.code, 200) << response.body;
    acks.push_back(*ParseAck(response.body));
  }
  // A subscriber reads half of them, then the gateway dies.
  std::vector<v1::Event> events = ReadStream(*gateway, 0, acks[9].sequence);
  ASSERT_FALSE(events.empty());
  const std::uint64_t resume_after = events.back().sequence();
  EXPECT_EQ(resume_after, acks[9].sequence);
  gateway->Signal(SIGKILL);
  ASSERT_EQ(gateway->WaitForExit(), 128 + SIGKILL);

  gateway = StartGateway();
  ASSERT_NE(gateway->http_port(), 0);
  // The same webhook again: recognised, same sequence, not streamed twice.
  HttpResponse response = PostWebhook(client, *gateway, "first-3");
  ASSERT_EQ(response.code, 200) << response.body;
  EXPECT_TRUE(ParseAck(response.body)->duplicate);
  EXPECT_EQ(ParseAck(response.body)->sequence, acks[3].sequence);
  response = PostWebhook(client, *gateway, "second");
  ASSERT_EQ(response.code, 200) << response.body;
  const Ack after_restart = *ParseAck(response.body);
  EXPECT_FALSE(after_restart.duplicate);

  // The subscriber resumes exactly where it left off.
  events = ReadStream(*gateway, resume_after, after_restart.sequence);
  std::vector<std::uint64_t> sequences;
  for (const v1::Event& event : events) sequences.push_back(event.sequence());
  std::vector<std::uint64_t> expected;
  for (std::size_t i = 10; i < acks.size(); ++i) {
    expected.push_back(acks[i].sequence);
  }
  expected.push_back(after_restart.sequence);
  EXPECT_EQ(sequences, expected);
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    EXPECT_EQ(events[i].id(), acks[10 + i].id);
  }
}

// --- Faults. These need root (CAP_SYS_ADMIN) for mounts and skip without.

TEST_F(DurableStoreTest, FullDiskAnswers503ThenRecovers) {
  std::filesystem::create_directories(data_dir_);
  ScopedMount mount;
  if (const int error = mount.MountTmpfs(data_dir_, "size=4m"); error != 0) {
    GTEST_SKIP() << "cannot mount a small tmpfs to fill (needs root with "
                    "CAP_SYS_ADMIN): "
                 << std::strerror(error);
  }
  auto gateway = StartGateway();
  ASSERT_NE(gateway->http_port(), 0);
  HttpClient client;
  std::vector<Ack> acks;
  for (int n = 0; n < 5; ++n) {
    const HttpResponse response =
        PostWebhook(client, *gateway, absl::StrCat("before-", n));
    ASSERT_EQ(response.code, 200) << response.body;
    acks.push_back(*ParseAck(response.body));
  }

  ASSERT_TRUE(FillFileSystem(data_dir_ / "filler"));
  // The log may have a few pages left; it runs out within a few webhooks.
  HttpResponse response;
  for (int n = 0; n < 2000; ++n) {
    response = PostWebhook(client, *gateway, absl::StrCat("full-", n));
    if (response.code != 200) break;
    acks.push_back(*ParseAck(response.body));
  }
  EXPECT_EQ(response.code, 503) << response.body;
  EXPECT_EQ(Readyz(client, *gateway), 503);
  // More refused while the disk stays full.
  for (int n = 0; n < 10; ++n) {
    response = PostWebhook(client, *gateway, absl::StrCat("still-full-", n));
    EXPECT_EQ(response.code, 503) << response.body;
  }

  std::filesystem::remove(data_dir_ / "filler");
  ASSERT_TRUE(Eventually([&] { return Readyz(client, *gateway) == 200; }))
      << gateway->log();
  response = PostWebhook(client, *gateway, "after");
  ASSERT_EQ(response.code, 200) << response.body;
  const std::uint64_t last_acknowledged = acks.back().sequence;
  acks.push_back(*ParseAck(response.body));
  // A failed write uses up no sequence: the stream has no gap where the
  // refused webhooks were, before the disk filled or after.
  EXPECT_EQ(acks.back().sequence, last_acknowledged + 1);
  for (std::size_t i = 1; i < acks.size(); ++i) {
    EXPECT_EQ(acks[i].sequence, acks[i - 1].sequence + 1) << i;
  }

  // Every 200 is in the stream, the refused ones are not.
  const std::vector<v1::Event> events =
      ReadStream(*gateway, 0, acks.back().sequence);
  std::map<std::uint64_t, std::string> streamed;
  for (const v1::Event& event : events) {
    streamed.emplace(event.sequence(), event.id());
  }
  EXPECT_EQ(streamed.size(), acks.size());
  for (const Ack& ack : acks) EXPECT_EQ(streamed[ack.sequence], ack.id);
  gateway.reset();  // before the unmount
}

TEST_F(DurableStoreTest, ReadOnlyDataDirAnswers503ThenRecovers) {
  auto gateway = StartGateway();
  ASSERT_NE(gateway->http_port(), 0);
  HttpClient client;
  HttpResponse response = PostWebhook(client, *gateway, "before");
  ASSERT_EQ(response.code, 200) << response.body;
  const Ack before = *ParseAck(response.body);
  gateway->Signal(SIGTERM);
  gateway->WaitForExit();

  // Root ignores permission bits, so the directory is made read-only by a
  // read-only bind mount (it cannot be remounted while the log is open).
  ScopedMount mount;
  if (const int error = mount.BindReadOnly(data_dir_); error != 0) {
    GTEST_SKIP() << "cannot bind-mount the data directory read-only (needs "
                    "root with CAP_SYS_ADMIN): "
                 << std::strerror(error);
  }
  gateway = StartGateway();
  ASSERT_NE(gateway->http_port(), 0);
  EXPECT_EQ(Readyz(client, *gateway), 503);
  response = PostWebhook(client, *gateway, "while-read-only");
  EXPECT_EQ(response.code, 503) << response.body;

  ASSERT_EQ(mount.RemountBind(0), 0);
  ASSERT_TRUE(Eventually([&] { return Readyz(client, *gateway) == 200; }))
      << gateway->log();
  response = PostWebhook(client, *gateway, "after");
  ASSERT_EQ(response.code, 200) << response.body;
  const Ack after = *ParseAck(response.body);
  EXPECT_GT(after.sequence, before.sequence);
  const std::vector<v1::Event> events = ReadStream(*gateway, 0, after.sequence);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].id(), before.id);
  EXPECT_EQ(events[1].id(), after.id);
  gateway.reset();  // before the unmount
}

}  // namespace
}  // namespace convocore::integration
