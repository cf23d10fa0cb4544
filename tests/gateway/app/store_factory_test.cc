#include "gateway/app/store_factory.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "services/hub/event_hub.h"

namespace convocore::app {
namespace {

using ::testing::HasSubstr;

class StoreFactoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/store_factory_test.XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    options_.secrets = {"s"};
    options_.data_dir = dir_ + "/data";
    options_.dedup_window_events = 100;
    options_.dedup_window_age = absl::Hours(1);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Publishes events with these ids, received `age` before now, through a
  // hub over a freshly opened store, then closes it.
  void PublishAndClose(
      const std::vector<std::pair<std::string, absl::Duration>>& events) {
    gateway::Deduplicator deduplicator({});
    absl::StatusOr<OpenedStore> store =
        OpenEventStore(options_, &deduplicator, absl::Now());
    ASSERT_TRUE(store.ok()) << store.status();
    auto hub = hub::EventHub::Create(std::move(store->store));
    ASSERT_TRUE(hub.ok()) << hub.status();
    for (const auto& [id, age] : events) {
      convocore::webhooks::v1::Event event;
      event.set_id(id);
      event.set_type_raw("webhook_test");
      event.set_event_type(convocore::webhooks::v1::EVENT_TYPE_WEBHOOK_TEST);
      *event.mutable_receive_time() =
          google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
              absl::ToUnixNanos(absl::Now() - age));
      ASSERT_TRUE((*hub)->Publish(event).ok());
    }
  }

  std::string dir_;
  GatewayOptions options_;
};

TEST_F(StoreFactoryTest, MemoryStoreStartsEmpty) {
  options_.store = StoreKind::kMemory;
  gateway::Deduplicator deduplicator({});
  absl::StatusOr<OpenedStore> store =
      OpenEventStore(options_, &deduplicator, absl::Now());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(store->store->Stats().last_sequence, 0u);
  EXPECT_FALSE(std::filesystem::exists(options_.data_dir));
}

TEST_F(StoreFactoryTest, DiskStoreRestoresTheDeduplicationWindow) {
  options_.store = StoreKind::kDisk;
  PublishAndClose({{"old", absl::Hours(2)},
                   {"recent-1", absl::Minutes(5)},
                   {"recent-2", absl::Minutes(1)}});
  gateway::Deduplicator deduplicator({});
  absl::StatusOr<OpenedStore> store =
      OpenEventStore(options_, &deduplicator, absl::Now());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(store->store->Stats().last_sequence, 3u);
  EXPECT_EQ(deduplicator.size(), 2u);
  absl::StatusOr<gateway::ClaimTicket> again =
      deduplicator.Claim("recent-1", absl::Now());
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->is_new());
  EXPECT_EQ(again->sequence(), 2u);
  absl::StatusOr<gateway::ClaimTicket> old =
      deduplicator.Claim("old", absl::Now());
  ASSERT_TRUE(old.ok());
  EXPECT_TRUE(old->is_new());
}

TEST_F(StoreFactoryTest, AnUnusableDataDirIsAClearError) {
  options_.store = StoreKind::kDisk;
  std::ofstream(dir_ + "/file") << "not a directory";
  options_.data_dir = dir_ + "/file";
  gateway::Deduplicator deduplicator({});
  absl::StatusOr<OpenedStore> store =
      OpenEventStore(options_, &deduplicator, absl::Now());
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr("--data_dir"));
  EXPECT_THAT(store.status().message(), HasSubstr(options_.data_dir));
}

}  // namespace
}  // namespace convocore::app
