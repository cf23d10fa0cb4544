// Ingest throughput of the hub with the durable disk store against the
// in-memory store, in one run: N concurrent publishers (the HTTP requests in
// flight) each Publish() and wait for the acknowledgement, as the gateway's
// handlers do. The hub's group commit makes the events published together
// share one Append, hence one fsync. Prints events/s per store and
// concurrency, the mean batch per commit, and disk/memory ratios; rounds
// interleave the stores so that a noisy neighbour hurts them alike. Not a
// test: it prints figures.
//
//   store_ingest_bench [--dir=/path/on/the/real/disk] [--seconds=3]
//                      [--rounds=3] [--publishers=1,16,64]
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "convocore/webhooks/v1/events.pb.h"
#include "services/hub/event_hub.h"
#include "services/hub/in_memory_event_store.h"
#include "services/store/disk_event_store.h"

ABSL_FLAG(
    std::string, dir,
    (std::filesystem::temp_directory_path() / "store_ingest_bench").string(),
    "Scratch directory for the disk store; put it on the disk to "
    "measure (not a tmpfs). Removed afterwards.");
ABSL_FLAG(double, seconds, 3, "Duration of each measurement.");
ABSL_FLAG(int, rounds, 3, "Rounds; the median is reported.");
ABSL_FLAG(std::string, publishers, "1,16,64",
          "Comma-separated numbers of concurrent publishers.");

namespace {

namespace v1 = convocore::webhooks::v1;
using convocore::hub::EventHub;
using convocore::hub::EventStore;

// A message_received event of about 500 bytes serialized, like a typical
// webhook.
v1::Event RealisticEvent(int publisher, std::uint64_t n) {
  v1::Event event;
  event.set_id("evt_" + std::to_string(publisher) + "_" + std::to_string(n));
  event.set_event_type(v1::EVENT_TYPE_MESSAGE_RECEIVED);
  event.set_type_raw("message_received");
  event.mutable_create_time()->set_seconds(1'700'000'000);
  auto* payload = event.mutable_message_received();
  payload->set_agent_id("agent_6f1c2d9e4b");
  payload->set_channel(v1::CHANNEL_WEBCHAT);
  payload->set_message_content(std::string(380, 'm'));
  return event;
}

struct Result {
  double events_per_second = 0;
  double events_per_commit = 0;
};

struct StoreKind {
  std::string name;
  // A fresh, empty store.
  std::function<std::unique_ptr<EventStore>()> make;
};

Result Measure(const StoreKind& kind, int publishers, absl::Duration length) {
  absl::StatusOr<std::unique_ptr<EventHub>> hub = EventHub::Create(kind.make());
  if (!hub.ok()) {
    std::fprintf(stderr, "hub: %s\n", hub.status().ToString().c_str());
    std::exit(1);
  }
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> acknowledged{0};
  std::atomic<std::uint64_t> failed{0};
  std::vector<std::thread> threads;
  const absl::Time start = absl::Now();
  for (int p = 0; p < publishers; ++p) {
    threads.emplace_back([&, p] {
      for (std::uint64_t n = 0; !stop.load(std::memory_order_relaxed); ++n) {
        if ((*hub)->Publish(RealisticEvent(p, n)).ok()) {
          acknowledged.fetch_add(1, std::memory_order_relaxed);
        } else {
          failed.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  absl::SleepFor(length);
  stop = true;
  for (std::thread& thread : threads) thread.join();
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  if (failed.load() > 0) {
    std::fprintf(stderr, "%s: %llu publishes failed\n", kind.name.c_str(),
                 static_cast<unsigned long long>(failed.load()));
  }
  const std::uint64_t commits = (*hub)->Stats().commit_batches_total;
  return Result{
      .events_per_second = acknowledged.load() / elapsed,
      .events_per_commit =
          commits > 0 ? static_cast<double>(acknowledged.load()) / commits : 0,
  };
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::filesystem::path dir = absl::GetFlag(FLAGS_dir);
  const absl::Duration length = absl::Seconds(absl::GetFlag(FLAGS_seconds));
  const int rounds = std::max(1, absl::GetFlag(FLAGS_rounds));
  std::vector<int> concurrencies;
  for (absl::string_view part :
       absl::StrSplit(absl::GetFlag(FLAGS_publishers), ',')) {
    int n = 0;
    if (absl::SimpleAtoi(part, &n) && n > 0) concurrencies.push_back(n);
  }

  // Retention as the binary's defaults, so trimming runs as in production.
  const convocore::hub::RetentionOptions retention;
  auto disk = [&](convocore::store::Durability durability) {
    return [&, durability]() -> std::unique_ptr<EventStore> {
      std::filesystem::remove_all(dir);
      convocore::store::DiskStoreOptions options;
      options.data_dir = dir.string();
      options.retention = retention;
      options.durability = durability;
      auto store = convocore::store::DiskEventStore::Open(options);
      if (!store.ok()) {
        std::fprintf(stderr, "disk store: %s\n",
                     store.status().ToString().c_str());
        std::exit(1);
      }
      return std::move(*store);
    };
  };
  const std::vector<StoreKind> kinds = {
      {"memory",
       [&] {
         return std::make_unique<convocore::hub::InMemoryEventStore>(retention);
       }},
      {"disk/fsync", disk(convocore::store::Durability::kFsync)},
      {"disk/os_cache", disk(convocore::store::Durability::kOsCache)},
  };

  std::printf("dir=%s, ~500 B events, %d rounds of %.1f s, median shown\n",
              dir.c_str(), rounds, absl::ToDoubleSeconds(length));
  std::map<std::pair<std::string, int>, std::vector<Result>> results;
  for (int round = 0; round < rounds; ++round) {
    for (const int publishers : concurrencies) {
      for (const StoreKind& kind : kinds) {
        results[{kind.name, publishers}].push_back(
            Measure(kind, publishers, length));
      }
    }
  }
  std::filesystem::remove_all(dir);

  std::printf("%-14s %10s %12s %12s %10s\n", "store", "publishers", "events/s",
              "events/commit", "vs memory");
  for (const int publishers : concurrencies) {
    double memory = 0;
    for (const StoreKind& kind : kinds) {
      std::vector<Result>& r = results[{kind.name, publishers}];
      std::sort(r.begin(), r.end(), [](const Result& a, const Result& b) {
        return a.events_per_second < b.events_per_second;
      });
      const Result median = r[r.size() / 2];
      if (kind.name == "memory") memory = median.events_per_second;
      std::printf("%-14s %10d %12.0f %12.1f %9.0f%%\n", kind.name.c_str(),
                  publishers, median.events_per_second,
                  median.events_per_commit,
                  memory > 0 ? 100 * median.events_per_second / memory : 0);
    }
  }
  return 0;
}
