// The durable default store through the real binary: every webhook that got
// a 200 survives a SIGKILL, subscribers resume across a restart, duplicates
// are recognised across a restart, and a full or read-only data directory
// answers 503 (ingestion and readiness) until it is writable again.
#include <curl/curl.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "convocore/webhooks/v1/event_stream_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/services/store/fault_injection.h"

extern char** environ;

namespace {

namespace v1 = convocore::webhooks::v1;
using ::convocore::store::testing::FillFileSystem;
using ::convocore::store::testing::ScopedMount;

constexpr char kSecret[] = "your_workspace_secret";

bool Eventually(const std::function<bool()>& done,
                absl::Duration timeout = absl::Seconds(30)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

// The real gateway binary as a child process, stopped whatever happens. Its
// stderr (the log) is drained by a thread, which also finds the ports it
// bound from the "gateway ready" line.
class GatewayProcess {
 public:
  GatewayProcess(const std::filesystem::path& data_dir,
                 std::vector<std::string> extra_args = {}) {
    std::vector<std::string> args = {WEBHOOK_GATEWAY_BINARY,
                                     "--store=disk",
                                     "--data_dir=" + data_dir.string(),
                                     "--http_port=0",
                                     "--grpc_port=0",
                                     "--http_address=127.0.0.1",
                                     "--grpc_address=127.0.0.1"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_strings = {
        absl::StrCat("CONVOCORE_WORKSPACE_SECRET=", kSecret),
        "PATH=/usr/bin:/bin"};
    std::vector<char*> envp;
    for (std::string& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);

    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
    const int spawned = posix_spawn(&pid_, WEBHOOK_GATEWAY_BINARY, &actions,
                                    nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    if (spawned != 0) {
      pid_ = 0;
      close(fds[0]);
      return;
    }
    log_reader_ = std::thread([this, fd = fds[0]] { DrainLog(fd); });
  }

  ~GatewayProcess() {
    Signal(SIGKILL);
    Wait();
  }

  // Waits for the "gateway ready" line; false if the process exits first.
  bool WaitReady(absl::Duration timeout = absl::Seconds(30)) {
    absl::MutexLock lock(&mu_);
    auto ready_or_gone = [this] { return http_port_ != 0 || log_closed_; };
    mu_.AwaitWithTimeout(absl::Condition(&ready_or_gone), timeout);
    return http_port_ != 0;
  }

  void Signal(int signal) {
    if (pid_ != 0 && !exited_) kill(pid_, signal);
  }
  // Waits for the process to exit; its wait status.
  int Wait() {
    if (pid_ != 0 && !exited_) {
      waitpid(pid_, &wait_status_, 0);
      exited_ = true;
    }
    if (log_reader_.joinable()) log_reader_.join();
    return wait_status_;
  }
  void Kill() {
    Signal(SIGKILL);
    Wait();
  }

  int http_port() {
    absl::MutexLock lock(&mu_);
    return http_port_;
  }
  int grpc_port() {
    absl::MutexLock lock(&mu_);
    return grpc_port_;
  }
  std::string log() {
    absl::MutexLock lock(&mu_);
    return log_;
  }

 private:
  void DrainLog(int fd) {
    static const std::regex kReady(
        "gateway ready.*http_port=([0-9]+).*grpc_port=([0-9]+)");
    char chunk[4096];
    std::string pending;
    for (;;) {
      const ssize_t n = read(fd, chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      absl::MutexLock lock(&mu_);
      log_.append(chunk, static_cast<std::size_t>(n));
      pending.append(chunk, static_cast<std::size_t>(n));
      std::size_t newline;
      while ((newline = pending.find('\n')) != std::string::npos) {
        const std::string line = pending.substr(0, newline);
        pending.erase(0, newline + 1);
        std::smatch match;
        if (std::regex_search(line, match, kReady)) {
          http_port_ = std::stoi(match[1]);
          grpc_port_ = std::stoi(match[2]);
        }
      }
    }
    close(fd);
    absl::MutexLock lock(&mu_);
    log_closed_ = true;
  }

  pid_t pid_ = 0;
  bool exited_ = false;
  int wait_status_ = 0;
  std::thread log_reader_;
  absl::Mutex mu_;
  std::string log_ ABSL_GUARDED_BY(mu_);
  int http_port_ ABSL_GUARDED_BY(mu_) = 0;
  int grpc_port_ ABSL_GUARDED_BY(mu_) = 0;
  bool log_closed_ ABSL_GUARDED_BY(mu_) = false;
};

// One HTTP client connection (keep-alive), for one thread.
class HttpClient {
 public:
  HttpClient() : curl_(curl_easy_init()) {}
  ~HttpClient() { curl_easy_cleanup(curl_); }

  struct Response {
    long code = 0;  // 0: no response (connection failed)
    std::string body;
  };

  Response Post(int port, const std::string& path, const std::string& body) {
    Response response;
    const std::string url = absl::StrCat("http://127.0.0.1:", port, path);
    curl_slist* headers =
        curl_slist_append(nullptr, "Content-Type: application/json");
    curl_easy_reset(curl_);
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE,
                     static_cast<long>(body.size()));
    Perform(&response);
    curl_slist_free_all(headers);
    return response;
  }

  Response Get(int port, const std::string& path) {
    Response response;
    const std::string url = absl::StrCat("http://127.0.0.1:", port, path);
    curl_easy_reset(curl_);
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    Perform(&response);
    return response;
  }

 private:
  static size_t Append(char* data, size_t size, size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
  }
  void Perform(Response* response) {
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &HttpClient::Append);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &response->body);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, 30'000L);
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(curl_) == CURLE_OK) {
      curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &response->code);
    }
  }

  CURL* curl_;
};

// A distinct message_received webhook for `tag` (distinct content, hence a
// distinct event id).
std::string Webhook(const std::string& tag) {
  return absl::StrCat(
      R"({"type":"message_received","payload":{"agentId":"agent_1",)",
      R"("agentName":"Bot","convoId":"convo_1","messageContent":")", tag,
      R"(","channel":"whatsapp","messageType":"text","from":"+1234567890",)",
      R"("createdAt":1718035200000,"workspaceSecret":")", kSecret, R"("}})");
}

struct Ack {
  std::uint64_t sequence = 0;
  std::string id;
  bool duplicate = false;
};

std::optional<Ack> ParseAck(const std::string& body) {
  static const std::regex kAck(
      R"re("sequence":\s*([0-9]+).*"id":\s*"([^"]*)".*"duplicate":\s*(true|false))re");
  std::smatch match;
  if (!std::regex_search(body, match, kAck)) return std::nullopt;
  return Ack{std::stoull(match[1]), match[2], match[3] == "true"};
}

// Reads the stream after `after_sequence` until an event with sequence >=
// `through` arrived (or the deadline passes); the events in stream order.
std::vector<v1::Event> ReadStream(int grpc_port, std::uint64_t after_sequence,
                                  std::uint64_t through) {
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc_port),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::EventStreamService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(30));
  v1::SubscribeRequest request;
  request.set_after_sequence(after_sequence);
  std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader =
      stub->Subscribe(&context, request);
  std::vector<v1::Event> events;
  v1::SubscribeResponse response;
  while (reader->Read(&response)) {
    if (!response.has_event()) continue;
    events.push_back(response.event());
    if (response.event().sequence() >= through) break;
  }
  context.TryCancel();
  reader->Finish().IgnoreError();
  return events;
}

class DurableStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { curl_global_init(CURL_GLOBAL_DEFAULT); }

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

  std::unique_ptr<GatewayProcess> StartGateway() {
    auto gateway = std::make_unique<GatewayProcess>(data_dir_);
    EXPECT_TRUE(gateway->WaitReady()) << gateway->log();
    return gateway;
  }

  std::filesystem::path root_;
  std::filesystem::path data_dir_;
};

TEST_F(DurableStoreTest, EveryAcknowledgedEventSurvivesSigkill) {
  auto gateway = StartGateway();
  ASSERT_NE(gateway->http_port(), 0);
  const int port = gateway->http_port();

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
        const HttpClient::Response response =
            client.Post(port, "/webhooks", Webhook(absl::StrCat(s, "-", n)));
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
  ASSERT_TRUE(Eventually([&] { return acks.load() >= kAcksBeforeKill; }))
      << gateway->log();
  gateway->Signal(SIGKILL);
  const int status = gateway->Wait();
  stop = true;
  for (std::thread& sender : senders) sender.join();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_EQ(unexpected.load(), 0);

  gateway = StartGateway();
  ASSERT_NE(gateway->grpc_port(), 0);
  absl::MutexLock lock(&mu);
  const std::uint64_t last_acked = acked.rbegin()->first;
  const std::vector<v1::Event> events =
      ReadStream(gateway->grpc_port(), 0, last_acked);
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
  const HttpClient::Response response =
      client.Post(gateway->http_port(), "/webhooks", Webhook("after-restart"));
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
    const HttpClient::Response response = client.Post(
        gateway->http_port(), "/webhooks", Webhook(absl::StrCat("first-", n)));
    ASSERT_EQ(response.code, 200) << response.body;
    acks.push_back(*ParseAck(response.body));
  }
  // A subscriber reads half of them, then the gateway dies.
  std::vector<v1::Event> events =
      ReadStream(gateway->grpc_port(), 0, acks[9].sequence);
  ASSERT_FALSE(events.empty());
  const std::uint64_t resume_after = events.back().sequence();
  EXPECT_EQ(resume_after, acks[9].sequence);
  gateway->Kill();

  gateway = StartGateway();
  ASSERT_NE(gateway->http_port(), 0);
  // The same webhook again: recognised, same sequence, not streamed twice.
  HttpClient::Response response =
      client.Post(gateway->http_port(), "/webhooks", Webhook("first-3"));
  ASSERT_EQ(response.code, 200) << response.body;
  EXPECT_TRUE(ParseAck(response.body)->duplicate);
  EXPECT_EQ(ParseAck(response.body)->sequence, acks[3].sequence);
  response = client.Post(gateway->http_port(), "/webhooks", Webhook("second"));
  ASSERT_EQ(response.code, 200) << response.body;
  const Ack after_restart = *ParseAck(response.body);
  EXPECT_FALSE(after_restart.duplicate);

  // The subscriber resumes exactly where it left off.
  events =
      ReadStream(gateway->grpc_port(), resume_after, after_restart.sequence);
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
  const int port = gateway->http_port();
  HttpClient client;
  std::vector<Ack> acks;
  for (int n = 0; n < 5; ++n) {
    const HttpClient::Response response =
        client.Post(port, "/webhooks", Webhook(absl::StrCat("before-", n)));
    ASSERT_EQ(response.code, 200) << response.body;
    acks.push_back(*ParseAck(response.body));
  }

  ASSERT_TRUE(FillFileSystem(data_dir_ / "filler"));
  // The log may have a few pages left; it runs out within a few webhooks.
  HttpClient::Response response;
  for (int n = 0; n < 2000; ++n) {
    response =
        client.Post(port, "/webhooks", Webhook(absl::StrCat("full-", n)));
    if (response.code != 200) break;
    acks.push_back(*ParseAck(response.body));
  }
  EXPECT_EQ(response.code, 503) << response.body;
  EXPECT_EQ(client.Get(port, "/readyz").code, 503);

  std::filesystem::remove(data_dir_ / "filler");
  ASSERT_TRUE(Eventually([&] {
    return client.Get(port, "/readyz").code == 200;
  })) << gateway->log();
  response = client.Post(port, "/webhooks", Webhook("after"));
  ASSERT_EQ(response.code, 200) << response.body;
  acks.push_back(*ParseAck(response.body));

  // Every 200 is in the stream, the refused ones are not.
  const std::vector<v1::Event> events =
      ReadStream(gateway->grpc_port(), 0, acks.back().sequence);
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
  HttpClient::Response response =
      client.Post(gateway->http_port(), "/webhooks", Webhook("before"));
  ASSERT_EQ(response.code, 200) << response.body;
  const Ack before = *ParseAck(response.body);
  gateway->Signal(SIGTERM);
  gateway->Wait();

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
  const int port = gateway->http_port();
  EXPECT_EQ(client.Get(port, "/readyz").code, 503);
  response = client.Post(port, "/webhooks", Webhook("while-read-only"));
  EXPECT_EQ(response.code, 503) << response.body;

  ASSERT_EQ(mount.RemountBind(0), 0);
  ASSERT_TRUE(Eventually([&] {
    return client.Get(port, "/readyz").code == 200;
  })) << gateway->log();
  response = client.Post(port, "/webhooks", Webhook("after"));
  ASSERT_EQ(response.code, 200) << response.body;
  const Ack after = *ParseAck(response.body);
  EXPECT_GT(after.sequence, before.sequence);
  const std::vector<v1::Event> events =
      ReadStream(gateway->grpc_port(), 0, after.sequence);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].id(), before.id);
  EXPECT_EQ(events[1].id(), after.id);
  gateway.reset();  // before the unmount
}

}  // namespace
