// The hub and EventStreamService benchmark: deliveries per second to 1, 10
// and 100 subscribers that each take every event over real gRPC on loopback,
// with nothing lost, and the server's memory per idle subscriber.
//
// The server (hub, in-memory store, GrpcServer) runs in this process; the
// subscribers run in a child process (this binary with --client), so that
// the RSS measured is the server's alone and the two compete for the CPU as
// a real deployment's would. Publishers are paced by the hub's longest
// subscriber queue so that nobody is cut off: the figure is the sustained
// rate, not a burst into queues.
//
//   build-release/bench/hub/hub_bench [--deliveries=3000000] [--publishers=4]
#include <fcntl.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "convocore/webhooks/v1/events.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "services/grpc/grpc_server.h"
#include "services/hub/event_hub.h"
#include "services/hub/in_memory_event_store.h"

ABSL_FLAG(std::uint64_t, deliveries, 3'000'000,
          "deliveries per run (events = deliveries / subscribers)");
ABSL_FLAG(std::uint64_t, min_events, 20'000, "events per run at least");
ABSL_FLAG(int, publishers, 4, "publisher threads (HTTP workers)");
ABSL_FLAG(std::string, subscribers, "1,10,100", "runs: subscribers per run");
ABSL_FLAG(int, idle_streams, 1000, "idle streams for the memory figure");
ABSL_FLAG(int, channels, 4, "client connections the streams share");
// Client mode, used by the driver for its child process.
ABSL_FLAG(bool, client, false, "run as the subscriber process");
ABSL_FLAG(std::string, target, "", "client: server address");
ABSL_FLAG(int, streams, 1, "client: streams to open");
ABSL_FLAG(bool, check_order, true,
          "client: check that sequences follow one another");
ABSL_FLAG(bool, baseline, true,
          "also measure a bare raw callback service writing one prebuilt "
          "message over and over: gRPC's own ceiling on this machine");
ABSL_FLAG(std::uint64_t, expect, 0,
          "client: events every stream must get (0: stay idle until stdin "
          "closes)");

namespace {

namespace v1 = convocore::webhooks::v1;
using convocore::grpc_service::GrpcServer;
using convocore::grpc_service::GrpcServerOptions;
using convocore::hub::EventHub;

constexpr char kMethod[] =
    "/convocore.webhooks.v1.EventStreamService/Subscribe";
// SubscribeResponse.event (field 1, bytes) and Event.sequence (field 1,
// varint), which the hub's serialization puts first.
constexpr std::uint32_t kEventTag = (1 << 3) | 2;
constexpr std::uint32_t kSequenceTag = (1 << 3) | 0;

// ---------------------------------------------------------------------------
// Client process.

class Client {
 public:
  explicit Client(std::uint64_t expect) : expect_(expect) {}

  // What the streams report; WaitFor() counts them.
  enum Counter { kReady, kComplete, kEnded, kCounters };

  void Ready() { Bump(kReady); }
  void StreamComplete() { Bump(kComplete); }
  void StreamEnded(bool error) {
    if (error) errors_.fetch_add(1);
    Bump(kEnded);
  }
  void Error() { errors_.fetch_add(1); }

  // Returns once `counter` reached `n`.
  void WaitFor(Counter counter, int n) ABSL_LOCKS_EXCLUDED(mu_) {
    struct Reached {
      const int* count;
      int n;
      bool operator()() const { return *count >= n; }
    };
    Reached reached{&counts_[counter], n};
    absl::MutexLock lock(&mu_, absl::Condition(&reached));
  }

  std::uint64_t expect() const { return expect_; }
  int errors() const { return errors_.load(); }

 private:
  void Bump(Counter counter) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    ++counts_[counter];
  }

  const std::uint64_t expect_;
  absl::Mutex mu_;
  int counts_[kCounters] ABSL_GUARDED_BY(mu_) = {};
  std::atomic<int> errors_{0};
};

// One Subscribe stream reading raw bytes: each message is classified by its
// first byte (field 1 event, field 2 heartbeat) and the event's sequence read
// from its leading varint, so that the client does not spend the CPU it
// shares with the server on parsing.
class Stream
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  Stream(grpc::GenericStub* stub, Client* client) : client_(client) {
    stub->PrepareBidiStreamingCall(&context_, kMethod, grpc::StubOptions(),
                                   this);
    grpc::Slice empty;  // SubscribeRequest{}: every event, from now
    request_ = grpc::ByteBuffer(&empty, 1);
    StartWrite(&request_);
    StartRead(&response_);
    StartCall();
  }
  void Cancel() { context_.TryCancel(); }

  void OnWriteDone(bool ok) override {
    if (ok) StartWritesDone();
  }
  void OnReadInitialMetadataDone(bool ok) override { client_->Ready(); }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    if (!response_.Dump(&slices_).ok() || slices_.empty()) {
      client_->Error();
      return;
    }
    // The first slice holds at least the header and the sequence in
    // practice; copy a few bytes across slices if not.
    std::uint8_t head[24];
    std::size_t n = 0;
    for (const grpc::Slice& s : slices_) {
      const std::size_t take = std::min(sizeof(head) - n, s.size());
      std::copy(s.begin(), s.begin() + take, head + n);
      n += take;
      if (n == sizeof(head)) break;
    }
    google::protobuf::io::CodedInputStream in(head, static_cast<int>(n));
    std::uint32_t length;
    std::uint64_t sequence;
    if (in.ReadTag() == kEventTag && in.ReadVarint32(&length) &&
        in.ReadTag() == kSequenceTag && in.ReadVarint64(&sequence)) {
      if (check_order_ && last_ != 0 && sequence != last_ + 1) {
        client_->Error();
      }
      last_ = sequence;
      if (++events_ == client_->expect()) client_->StreamComplete();
    }
    StartRead(&response_);
  }
  void OnDone(const grpc::Status& status) override {
    client_->StreamEnded(status.error_code() != grpc::StatusCode::CANCELLED);
  }

 private:
  Client* const client_;
  grpc::ClientContext context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  std::vector<grpc::Slice> slices_;
  const bool check_order_ = absl::GetFlag(FLAGS_check_order);
  std::uint64_t last_ = 0;
  std::uint64_t events_ = 0;
};

int RunClient() {
  const int n = absl::GetFlag(FLAGS_streams);
  const int channels = std::max(1, absl::GetFlag(FLAGS_channels));
  Client client(absl::GetFlag(FLAGS_expect));
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (int c = 0; c < channels; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("hub_bench.channel", c);  // one connection per channel
    stubs.push_back(std::make_unique<grpc::GenericStub>(
        grpc::CreateCustomChannel(absl::GetFlag(FLAGS_target),
                                  grpc::InsecureChannelCredentials(), args)));
  }
  std::vector<std::unique_ptr<Stream>> streams;
  for (int i = 0; i < n; ++i) {
    streams.push_back(
        std::make_unique<Stream>(stubs[i % channels].get(), &client));
  }
  client.WaitFor(Client::kReady, n);
  std::printf("ready\n");
  std::fflush(stdout);
  if (client.expect() > 0) {
    client.WaitFor(Client::kComplete, n);
  } else {
    // Idle until the driver closes our stdin.
    char c;
    while (read(STDIN_FILENO, &c, 1) > 0) {
    }
  }
  for (auto& s : streams) s->Cancel();
  client.WaitFor(Client::kEnded, n);
  std::printf("done %d\n", client.errors());
  std::fflush(stdout);
  return 0;
}

// ---------------------------------------------------------------------------
// Driver process.

absl::Duration CpuTime(const struct rusage& usage) {
  return absl::DurationFromTimeval(usage.ru_utime) +
         absl::DurationFromTimeval(usage.ru_stime);
}

absl::Duration SelfCpuTime() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return CpuTime(usage);
}

// The client child process, talking over its stdin and stdout.
class Child {
 public:
  Child(int port, int streams, std::uint64_t expect, bool check_order = true) {
    int to_child[2], from_child[2];
    if (pipe2(to_child, O_CLOEXEC) != 0 || pipe2(from_child, O_CLOEXEC) != 0) {
      std::perror("pipe2");
      std::exit(1);
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, to_child[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, from_child[1], STDOUT_FILENO);
    std::vector<std::string> args = {
        "hub_bench",
        "--client",
        absl::StrCat("--target=127.0.0.1:", port),
        absl::StrCat("--streams=", streams),
        absl::StrCat("--expect=", expect),
        absl::StrCat("--check_order=", check_order ? "true" : "false"),
        absl::StrCat("--channels=", absl::GetFlag(FLAGS_channels))};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, "/proc/self/exe", &actions, nullptr, argv.data(),
                    environ) != 0) {
      std::perror("posix_spawn");
      std::exit(1);
    }
    posix_spawn_file_actions_destroy(&actions);
    close(to_child[0]);
    close(from_child[1]);
    in_ = to_child[1];
    out_ = fdopen(from_child[0], "r");
  }
  ~Child() { Wait(); }

  // Waits for the child to exit; returns the CPU time it used.
  absl::Duration Wait() {
    CloseInput();
    if (out_ != nullptr) fclose(out_);
    out_ = nullptr;
    if (pid_ == 0) return absl::ZeroDuration();
    int status;
    struct rusage usage {};
    wait4(pid_, &status, 0, &usage);
    pid_ = 0;
    return CpuTime(usage);
  }

  // The child's next line, without the newline; empty at its end.
  std::string ReadLine() {
    char line[256];
    if (std::fgets(line, sizeof(line), out_) == nullptr) return "";
    std::string s(line);
    if (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  }
  void CloseInput() {
    if (in_ >= 0) close(in_);
    in_ = -1;
  }

 private:
  pid_t pid_ = 0;
  int in_ = -1;
  FILE* out_ = nullptr;
};

std::uint64_t RssBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  if (f != nullptr) {
    if (std::fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<std::uint64_t>(resident) * sysconf(_SC_PAGESIZE);
}

bool WaitUntil(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

// A message_received event of a realistic size (~300 bytes serialized).
v1::Event SampleEvent() {
  v1::Event event;
  event.set_id("3f0c2a9e7b5d4c1a8e6f0b2d9c7a5e3f");
  event.set_event_type(v1::EVENT_TYPE_MESSAGE_RECEIVED);
  event.set_type_raw("message_received");
  event.mutable_create_time()->set_seconds(1'700'000'000);
  v1::MessagePayload* p = event.mutable_message_received();
  p->set_agent_id("agent_123456");
  p->set_agent_name("Support Agent");
  p->set_convo_id("convo_789012");
  p->set_message_content(
      "Hello, I would like to know more about your pricing plans for teams "
      "of ten to fifty people, and whether annual billing gets a discount.");
  p->set_channel(v1::CHANNEL_WHATSAPP);
  p->set_channel_raw("whatsapp");
  p->set_message_type("text");
  p->set_sender("+15551234567");
  p->set_create_time_millis(1'700'000'000'000);
  return event;
}

struct RunResult {
  double deliveries_per_second = 0;
  // Deliveries per second of CPU used by server and client together: the
  // rate two idle cores would reach, whatever else shares the machine.
  double deliveries_per_cpu_second = 0;
  double server_cpu_seconds = 0;
  double client_cpu_seconds = 0;
  double events_per_second = 0;
  int client_errors = 0;
  std::uint64_t cut_off = 0;
  std::uint64_t batches = 0;
};

RunResult RunThroughput(EventHub* hub, int port, int subscribers,
                        std::uint64_t events, std::size_t queue_limit) {
  Child child(port, subscribers, events);
  if (child.ReadLine() != "ready") {
    std::fprintf(stderr, "client did not start\n");
    std::exit(1);
  }
  const convocore::hub::HubStats before = hub->Stats();
  const int publishers = std::max(1, absl::GetFlag(FLAGS_publishers));
  const v1::Event sample = SampleEvent();
  std::atomic<std::uint64_t> next{0};
  std::atomic<bool> failed{false};

  const absl::Time start = absl::Now();
  const absl::Duration server_cpu_start = SelfCpuTime();
  std::vector<std::thread> threads;
  for (int t = 0; t < publishers; ++t) {
    threads.emplace_back([&] {
      std::uint64_t published = 0;
      while (next.fetch_add(1) < events) {
        if (!hub->Publish(sample).ok()) failed = true;
        // Pace by the slowest subscriber: stay under half its bound.
        if (++published % 64 == 0) {
          while (hub->Stats().subscriber_queue_max > queue_limit / 2) {
            absl::SleepFor(absl::Microseconds(200));
          }
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const absl::Duration publish_time = absl::Now() - start;
  const std::string done = child.ReadLine();
  const absl::Duration total = absl::Now() - start;
  const absl::Duration server_cpu = SelfCpuTime() - server_cpu_start;
  // The child's CPU from its start includes opening the streams: a slight
  // overestimate of the client's share.
  const absl::Duration client_cpu = child.Wait();

  RunResult result;
  int errors = -1;
  if (!absl::StartsWith(done, "done ") ||
      !absl::SimpleAtoi(done.substr(5), &errors)) {
    errors = -1;
  }
  const convocore::hub::HubStats after = hub->Stats();
  result.client_errors = failed ? -1 : errors;
  result.cut_off =
      after.subscribers_cut_off_total - before.subscribers_cut_off_total;
  result.batches = after.commit_batches_total - before.commit_batches_total;
  result.deliveries_per_second =
      static_cast<double>(events) * subscribers / absl::ToDoubleSeconds(total);
  result.server_cpu_seconds = absl::ToDoubleSeconds(server_cpu);
  result.client_cpu_seconds = absl::ToDoubleSeconds(client_cpu);
  result.deliveries_per_cpu_second =
      static_cast<double>(events) * subscribers /
      (result.server_cpu_seconds + result.client_cpu_seconds);
  result.events_per_second =
      static_cast<double>(events) / absl::ToDoubleSeconds(publish_time);
  return result;
}

// The ceiling: a raw callback service whose streams write one prebuilt
// SubscribeResponse (a single shared slice) back to back, `expect` times,
// from OnWriteDone, with nothing behind it. What gRPC itself costs per
// message on this machine.
class BaselineService final
    : public v1::EventStreamService::WithRawCallbackMethod_Subscribe<
          v1::EventStreamService::Service> {
 public:
  BaselineService() {
    v1::SubscribeResponse response;
    v1::Event* event = response.add_events();
    *event = SampleEvent();
    event->set_sequence(1);
    grpc::Slice slice(response.SerializeAsString());
    message_ = grpc::ByteBuffer(&slice, 1);
  }

  void Go(std::uint64_t count) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    for (Reactor* r : reactors_) r->Go(count);
  }

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Subscribe(
      grpc::CallbackServerContext*, const grpc::ByteBuffer*) override {
    return new Reactor(this);
  }

 private:
  class Reactor : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
   public:
    explicit Reactor(BaselineService* service) : service_(service) {
      absl::MutexLock lock(&service_->mu_);
      service_->reactors_.insert(this);
      StartSendInitialMetadata();
    }
    void Go(std::uint64_t count) {
      left_ = count;
      WriteNext();
    }
    void OnWriteDone(bool ok) override {
      if (ok) WriteNext();
    }
    void OnCancel() override { Finish(grpc::Status::CANCELLED); }
    void OnDone() override {
      {
        absl::MutexLock lock(&service_->mu_);
        service_->reactors_.erase(this);
      }
      delete this;
    }

   private:
    void WriteNext() {
      if (left_ == 0) return;
      buffer_ = service_->message_;
      --left_;
      grpc::WriteOptions options;
      if (left_ > 0) options.set_buffer_hint();
      StartWrite(&buffer_, options);
    }
    BaselineService* const service_;
    std::atomic<std::uint64_t> left_{0};
    grpc::ByteBuffer buffer_;
  };

  grpc::ByteBuffer message_;
  absl::Mutex mu_;
  absl::flat_hash_set<Reactor*> reactors_ ABSL_GUARDED_BY(mu_);
};

RunResult RunBaseline(int subscribers, std::uint64_t events) {
  BaselineService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  RunResult result;
  {
    Child child(port, subscribers, events, /*check_order=*/false);
    if (child.ReadLine() != "ready") return result;
    const absl::Time start = absl::Now();
    const absl::Duration server_cpu_start = SelfCpuTime();
    service.Go(events);
    const std::string done = child.ReadLine();
    const absl::Duration total = absl::Now() - start;
    result.server_cpu_seconds =
        absl::ToDoubleSeconds(SelfCpuTime() - server_cpu_start);
    result.client_cpu_seconds = absl::ToDoubleSeconds(child.Wait());
    result.client_errors = done == "done 0" ? 0 : -1;
    const double deliveries = static_cast<double>(events) * subscribers;
    result.deliveries_per_second = deliveries / absl::ToDoubleSeconds(total);
    result.deliveries_per_cpu_second =
        deliveries / (result.server_cpu_seconds + result.client_cpu_seconds);
  }
  server->Shutdown();
  return result;
}

void PrintRow(const char* what, int subscribers, std::uint64_t events,
              const RunResult& r) {
  std::printf("%-9s %11d %9lu %13.0f %16.0f %10.2fs %10.2fs %9lu %8lu %7d\n",
              what, subscribers, static_cast<unsigned long>(events),
              r.deliveries_per_second, r.deliveries_per_cpu_second,
              r.server_cpu_seconds, r.client_cpu_seconds,
              static_cast<unsigned long>(r.batches),
              static_cast<unsigned long>(r.cut_off), r.client_errors);
}

int RunDriver() {
  convocore::hub::HubOptions hub_options;
  auto hub =
      EventHub::Create(std::make_unique<convocore::hub::InMemoryEventStore>(
                           convocore::hub::RetentionOptions{}),
                       hub_options);
  if (!hub.ok()) {
    std::fprintf(stderr, "%s\n", hub.status().ToString().c_str());
    return 1;
  }
  GrpcServerOptions options;
  options.address = "127.0.0.1";
  options.heartbeat_interval = absl::Seconds(15);
  auto server = GrpcServer::Start(options, hub->get());
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  const int port = (*server)->port();
  std::printf(
      "hub_bench: server on port %d, %d publisher threads, queue bound "
      "%zu, %ld cores\n",
      port, absl::GetFlag(FLAGS_publishers), hub_options.subscriber_queue_limit,
      sysconf(_SC_NPROCESSORS_ONLN));

  // Warm-up: connections, allocator, page cache of the binary.
  RunThroughput(hub->get(), port, 10, 20'000,
                hub_options.subscriber_queue_limit);

  std::printf("%-9s %11s %9s %13s %16s %11s %11s %9s %8s %7s\n", "server",
              "subscribers", "events", "deliveries/s", "per_cpu_second",
              "server_cpu", "client_cpu", "batches", "cut_off", "errors");
  bool ok = true;
  for (absl::string_view s :
       absl::StrSplit(absl::GetFlag(FLAGS_subscribers), ',')) {
    int subscribers = 0;
    if (!absl::SimpleAtoi(s, &subscribers) || subscribers <= 0) continue;
    const std::uint64_t events =
        std::max(absl::GetFlag(FLAGS_min_events),
                 absl::GetFlag(FLAGS_deliveries) / subscribers);
    RunResult r = RunThroughput(hub->get(), port, subscribers, events,
                                hub_options.subscriber_queue_limit);
    PrintRow("hub", subscribers, events, r);
    ok = ok && r.cut_off == 0 && r.client_errors == 0;
    if (absl::GetFlag(FLAGS_baseline)) {
      PrintRow("baseline", subscribers, events,
               RunBaseline(subscribers, events));
    }
  }

  // Memory per idle subscriber: the server's RSS with N idle streams open.
  const int idle = absl::GetFlag(FLAGS_idle_streams);
  const std::uint64_t rss_before = RssBytes();
  {
    Child child(port, idle, 0);
    if (child.ReadLine() != "ready") return 1;
    WaitUntil(
        [&] { return (*hub)->Stats().subscribers_open == std::uint64_t(idle); },
        absl::Seconds(30));
    absl::SleepFor(absl::Milliseconds(200));
    const std::uint64_t rss_open = RssBytes();
    std::printf(
        "idle subscribers: %d, server RSS %.1f MiB -> %.1f MiB: %.1f "
        "KiB per idle subscriber\n",
        idle, rss_before / 1048576.0, rss_open / 1048576.0,
        (static_cast<double>(rss_open) - rss_before) / idle / 1024.0);
    child.CloseInput();
    child.ReadLine();
  }
  WaitUntil([&] { return (*hub)->Stats().subscribers_open == 0; },
            absl::Seconds(30));
  (*server)->Shutdown(absl::Seconds(5));
  std::printf("%s\n", ok ? "nothing lost, nobody cut off" : "LOSS OR CUT-OFF");
  return ok ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return absl::GetFlag(FLAGS_client) ? RunClient() : RunDriver();
}
