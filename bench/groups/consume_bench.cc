// Consumer group throughput against plain Subscribe, in one run: the events
// a group of --members members handle per second, each acking every event,
// next to what one Subscribe stream reads per second from the same retained
// events, and the latency of an ack (from the ack request being written to
// the gateway confirming it durable, which includes a group state save with
// fdatasync).
//
// The server (hub over the in-memory store, group manager with its state in
// a temporary directory on disk, GrpcServer) and the clients share this
// process and its CPUs. Rounds alternate Subscribe and group so that the
// machine's noise falls on both; the medians are printed.
//
// With --nats_url the store is JetStream (a stream of its own on that
// server, one replica) and the groups are JetStream's durable consumers:
// bench/run.sh --groups --nats starts a nats-server for it.
//
//   build/bench/groups/consume_bench [--events=100000] [--members=4]
//       [--rounds=3] [--max_in_flight=100] [--nats_url=nats://...]
#include <grpcpp/grpcpp.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "convocore/webhooks/v1/event_stream_service.grpc.pb.h"
#include "services/groups/group_manager.h"
#include "services/groups/group_state_files.h"
#include "services/grpc/grpc_server.h"
#include "services/hub/event_hub.h"
#include "services/hub/in_memory_event_store.h"
#include "services/jetstream/jetstream_event_store.h"
#include "services/jetstream/jetstream_groups.h"

ABSL_FLAG(int, events, 100'000, "events retained and read per round");
ABSL_FLAG(int, members, 4, "members of the group");
ABSL_FLAG(int, rounds, 3, "rounds of each kind, alternating");
ABSL_FLAG(int, max_in_flight, 100, "each member's max_in_flight");
ABSL_FLAG(int, payload, 300, "bytes of message content per event");
ABSL_FLAG(std::string, nats_url, "",
          "the JetStream store and its groups on this server, instead of the "
          "memory store and the local engine");
ABSL_FLAG(std::string, only, "",
          "run only \"subscribe\" or \"group\" rounds (profiling)");

namespace {

namespace v1 = convocore::webhooks::v1;
using convocore::grpc_service::GrpcServer;

v1::Event MakeEvent(int n, int payload) {
  v1::Event event;
  event.set_event_type(v1::EVENT_TYPE_MESSAGE_RECEIVED);
  event.set_type_raw("message_received");
  event.set_id(absl::StrCat("bench-", n));
  auto* message = event.mutable_message_received();
  message->set_agent_id("agent_1");
  message->set_convo_id(absl::StrCat("convo_", n % 100));
  message->set_channel(v1::CHANNEL_WHATSAPP);
  message->set_message_content(std::string(payload, 'x'));
  return event;
}

std::shared_ptr<grpc::Channel> Channel(int port, int index) {
  grpc::ChannelArguments args;
  args.SetInt("bench.channel_index", index);  // one connection per client
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
}

// Seconds for one Subscribe stream to read `events` retained events.
double SubscribeRound(int port, int events) {
  auto stub = v1::EventStreamService::NewStub(Channel(port, 0));
  grpc::ClientContext context;
  v1::SubscribeRequest request;
  request.set_after_sequence(0);
  const absl::Time start = absl::Now();
  auto reader = stub->Subscribe(&context, request);
  v1::SubscribeResponse response;
  int read = 0;
  while (read < events && reader->Read(&response)) {
    read += response.events_size();
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  context.TryCancel();
  reader->Finish();
  if (read < events) {
    std::fprintf(stderr, "subscribe read only %d events\n", read);
    std::exit(1);
  }
  return seconds;
}

struct GroupFigures {
  double seconds = 0;
  std::vector<double> ack_latencies_ms;  // one per ack request confirmed
  std::uint64_t redelivered = 0;
};

// A fresh group from the oldest event: `members` threads handle and ack
// every event; the time until all `events` are acked, and each ack
// request's time to its confirmation.
GroupFigures GroupRound(int port, int events, int members, int max_in_flight,
                        int round) {
  std::atomic<int> handled{0};
  std::atomic<std::uint64_t> redelivered{0};
  absl::Mutex mu;
  GroupFigures figures;
  std::vector<std::thread> threads;
  std::atomic<bool> done{false};
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  for (int m = 0; m < members; ++m) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
  }
  const absl::Time start = absl::Now();
  for (int m = 0; m < members; ++m) {
    threads.emplace_back([&, m] {
      auto stub = v1::EventStreamService::NewStub(Channel(port, m + 1));
      auto stream = stub->Consume(contexts[m].get());
      v1::ConsumeRequest first;
      first.set_consumer_group(absl::StrCat("bench-", round));
      first.set_from_oldest(true);
      first.set_max_in_flight(max_in_flight);
      stream->Write(first);
      // Ack requests in flight: the first sequence each acked -> sent at.
      absl::flat_hash_map<std::uint64_t, absl::Time> sent;
      std::vector<double> latencies;
      v1::ConsumeResponse response;
      while (!done.load() && stream->Read(&response)) {
        for (std::uint64_t s : response.acknowledged_sequences()) {
          if (auto it = sent.find(s); it != sent.end()) {
            latencies.push_back(
                absl::ToDoubleMilliseconds(absl::Now() - it->second));
            sent.erase(it);
          }
        }
        if (response.events_size() == 0) continue;
        v1::ConsumeRequest acks;
        for (const v1::ConsumedEvent& e : response.events()) {
          acks.add_ack_sequences(e.event().sequence());
          if (e.delivery_attempt() > 1) ++redelivered;
        }
        sent.emplace(acks.ack_sequences(0), absl::Now());
        stream->Write(acks);
        if (handled.fetch_add(response.events_size()) +
                response.events_size() >=
            events) {
          done = true;
        }
      }
      absl::MutexLock lock(&mu);
      figures.ack_latencies_ms.insert(figures.ack_latencies_ms.end(),
                                      latencies.begin(), latencies.end());
    });
  }
  while (handled.load() < events) absl::SleepFor(absl::Milliseconds(1));
  figures.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  // Let the last confirmations arrive before the streams go.
  absl::SleepFor(absl::Milliseconds(200));
  done = true;
  for (auto& context : contexts) context->TryCancel();
  for (std::thread& t : threads) t.join();
  figures.redelivered = redelivered.load();
  return figures;
}

// User and system CPU of this process (server and clients) so far.
double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1,
                         static_cast<std::size_t>(p * values.size()))];
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int events = absl::GetFlag(FLAGS_events);
  const int members = absl::GetFlag(FLAGS_members);
  const int rounds = absl::GetFlag(FLAGS_rounds);
  const int max_in_flight = absl::GetFlag(FLAGS_max_in_flight);

  std::string dir_template =
      (std::filesystem::temp_directory_path() / "consume_bench.XXXXXX")
          .string();
  if (mkdtemp(dir_template.data()) == nullptr) return 1;
  const std::filesystem::path dir = dir_template;

  const std::string nats_url = absl::GetFlag(FLAGS_nats_url);
  std::unique_ptr<convocore::hub::EventHub> hub;
  std::unique_ptr<convocore::groups::GroupService> groups;
  convocore::jetstream::JetStreamEventStore* js = nullptr;
  const std::string stream = absl::StrCat("BENCH_", getpid());
  if (nats_url.empty()) {
    auto made = convocore::hub::EventHub::Create(
        std::make_unique<convocore::hub::InMemoryEventStore>(
            convocore::hub::RetentionOptions{
                .max_events = static_cast<std::size_t>(events),
                .max_bytes = 0}),
        convocore::hub::HubOptions{});
    if (!made.ok()) return 1;
    hub = *std::move(made);
    auto states =
        convocore::groups::OpenGroupStateDirectory((dir / "groups").string());
    if (!states.ok()) return 1;
    auto manager = convocore::groups::GroupManager::Create(
        hub.get(), *std::move(states),
        convocore::groups::GroupManagerOptions{.max_groups = 1000});
    if (!manager.ok()) return 1;
    groups = *std::move(manager);
  } else {
    convocore::jetstream::JetStreamOptions options;
    options.servers = {nats_url};
    options.stream = {
        .stream = stream,
        .subject_prefix = absl::StrCat("bench", getpid()),
        .replicas = 1,
        .retention = {.max_events = static_cast<std::size_t>(events),
                      .max_bytes = 0},
        .duplicate_window = absl::Minutes(1)};
    options.window_events = static_cast<std::size_t>(events);
    options.window_bytes = 1 << 30;
    auto store = convocore::jetstream::JetStreamEventStore::Open(options);
    if (!store.ok()) {
      std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
      return 1;
    }
    js = store->get();
    auto made = convocore::hub::EventHub::Create(*std::move(store),
                                                 {.external_sequences = true});
    if (!made.ok() || !js->StartReading(made->get()).ok()) return 1;
    hub = *std::move(made);
    auto jetstream_groups =
        convocore::jetstream::JetStreamGroups::Open(js, {.max_groups = 1000});
    if (!jetstream_groups.ok()) return 1;
    groups = *std::move(jetstream_groups);
  }
  convocore::grpc_service::GrpcServerOptions options;
  options.address = "127.0.0.1";
  auto server = GrpcServer::Start(options, hub.get(), groups.get());
  if (!server.ok()) return 1;
  const int port = (*server)->port();

  const absl::Time publish_start = absl::Now();
  // Outlive every PubAck callback.
  std::atomic<int> failed{0};
  std::atomic<int> answered{0};
  if (js == nullptr) {
    for (int n = 0; n < events; ++n) {
      if (!hub->Publish(MakeEvent(n, absl::GetFlag(FLAGS_payload))).ok()) {
        return 1;
      }
    }
  } else {
    for (int n = 0; n < events; ++n) {
      // Below the store's limit of publishes waiting for their PubAck.
      while (n - answered.load() > 8'000) absl::SleepFor(absl::Milliseconds(1));
      const v1::Event event = MakeEvent(n, absl::GetFlag(FLAGS_payload));
      js->Publish(absl::StrCat("bench", getpid(), ".message_received"),
                  event.id(), event.SerializeAsString(),
                  [&failed, &answered](
                      absl::StatusOr<convocore::jetstream::PublishAck> ack) {
                    if (!ack.ok()) failed.fetch_add(1);
                    answered.fetch_add(1);
                  });
    }
    // Read back into the hub, as a replica serves Subscribe.
    const absl::Time deadline = absl::Now() + absl::Minutes(2);
    while ((answered.load() < events ||
            hub->last_sequence() < static_cast<std::uint64_t>(events)) &&
           failed.load() == 0 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    if (failed.load() != 0 ||
        hub->last_sequence() < static_cast<std::uint64_t>(events)) {
      std::fprintf(stderr, "publishing to JetStream failed\n");
      return 1;
    }
  }
  std::fprintf(stderr, "published %d events in %s (%s)\n", events,
               absl::FormatDuration(absl::Now() - publish_start).c_str(),
               js == nullptr ? "memory store, local groups"
                             : "JetStream store and groups");

  std::vector<double> subscribe_rates, group_rates, latencies;
  std::uint64_t redelivered = 0;
  const std::string only = absl::GetFlag(FLAGS_only);
  std::vector<double> subscribe_cpu, group_cpu;
  for (int r = 0; r < rounds; ++r) {
    double cpu = CpuSeconds();
    const double s = only == "group" ? 1 : SubscribeRound(port, events);
    subscribe_cpu.push_back((CpuSeconds() - cpu) * 1e6 / events);
    subscribe_rates.push_back(events / s);
    cpu = CpuSeconds();
    GroupFigures g = only == "subscribe"
                         ? GroupFigures{.seconds = 1,
                                        .ack_latencies_ms = {},
                                        .redelivered = 0}
                         : GroupRound(port, events, members, max_in_flight, r);
    group_cpu.push_back((CpuSeconds() - cpu) * 1e6 / events);
    group_rates.push_back(events / g.seconds);
    latencies.insert(latencies.end(), g.ack_latencies_ms.begin(),
                     g.ack_latencies_ms.end());
    redelivered += g.redelivered;
    std::printf(
        "round %d: subscribe %.0f events/s, group of %d %.0f events/s\n", r + 1,
        events / s, members, events / g.seconds);
  }
  const double subscribe = Median(subscribe_rates);
  const double group = Median(group_rates);
  std::printf(
      "\n| mode | events/s (median of %d) | CPU µs per event (process) "
      "|\n|---|---|---|\n",
      rounds);
  std::printf("| Subscribe, 1 subscriber | %.0f | %.1f |\n", subscribe,
              Median(subscribe_cpu));
  std::printf("| group of %d members, every event acked | %.0f | %.1f |\n",
              members, group, Median(group_cpu));
  std::printf("\ngroup / Subscribe: %.0f%%\n", 100 * group / subscribe);
  std::printf(
      "ack to durable confirmation, ms: p50 %.2f, p90 %.2f, p99 %.2f, max "
      "%.2f (%zu ack requests)\n",
      Percentile(latencies, 0.5), Percentile(latencies, 0.9),
      Percentile(latencies, 0.99), Percentile(latencies, 1.0),
      latencies.size());
  std::printf("redeliveries: %llu\n",
              static_cast<unsigned long long>(redelivered));

  const absl::Time stop_start = absl::Now();
  (*server)->Shutdown(absl::Seconds(5));
  server->reset();
  groups->Shutdown();
  groups.reset();
  hub.reset();
  std::fprintf(stderr, "stopped in %s\n",
               absl::FormatDuration(absl::Now() - stop_start).c_str());
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  return 0;
}
