#include "tests/integration/gateway_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "rapidjson/document.h"

namespace convocore::integration {
namespace {

namespace v1 = ::convocore::webhooks::v1;

// The exit code of a wait status: the code, or 128 + the signal.
int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

GatewayProcess::GatewayProcess(std::vector<std::string> args,
                               std::vector<std::string> env) {
  std::vector<std::string> argv_strings = {
      GATEWAY_BINARY,
      "--http_address=127.0.0.1",
      "--grpc_address=127.0.0.1",
      "--http_port=0",
      "--grpc_port=0",
      "--log_format=json",
  };
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  env.push_back("PATH=/usr/bin:/bin");
  // Everything exec needs is built before fork: only async-signal-safe
  // calls happen in the child.
  std::vector<char*> argv;
  for (std::string& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (std::string& entry : env) envp.push_back(entry.data());
  envp.push_back(nullptr);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return;
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    // The gateway dies with the test, whatever kills the test.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(fds[1], STDERR_FILENO);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(fds[1]);
  if (pid_ < 0) {
    close(fds[0]);
    return;
  }
  reader_ = std::thread([this, fd = fds[0]] { DrainLog(fd); });
}

GatewayProcess::~GatewayProcess() {
  if (pid_ > 0 && !exit_code_.has_value()) {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  if (reader_.joinable()) reader_.join();
  // For the test command's check that no credential reaches a log
  // (buildscripts/test.sh, tests/support/test_credentials.txt).
  if (const char* dir = std::getenv("CONVOCORE_TEST_LOG_DIR");
      dir != nullptr && *dir != '\0') {
    static std::atomic<int> written{0};
    std::ofstream(absl::StrCat(dir, "/gateway-", getpid(), "-", written++,
                               ".log"))
        << log();
  }
}

void GatewayProcess::DrainLog(int fd) {
  char chunk[4096];
  std::string pending;
  for (;;) {
    const ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    absl::MutexLock lock(&mu_);
    log_.append(chunk, static_cast<std::size_t>(n));
    pending.append(chunk, static_cast<std::size_t>(n));
    for (std::size_t end; (end = pending.find('\n')) != std::string::npos;) {
      const std::string line = pending.substr(0, end);
      pending.erase(0, end + 1);
      rapidjson::Document doc;
      doc.Parse(line.c_str());
      if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("message") ||
          std::string(doc["message"].GetString()) != "gateway ready") {
        continue;
      }
      http_port_ = static_cast<std::uint16_t>(doc["http_port"].GetInt());
      grpc_port_ = static_cast<std::uint16_t>(doc["grpc_port"].GetInt());
    }
  }
  close(fd);
  absl::MutexLock lock(&mu_);
  log_closed_ = true;
}

bool GatewayProcess::WaitReady(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const auto ready_or_gone = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return http_port_ != 0 || log_closed_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready_or_gone), timeout);
  return http_port_ != 0;
}

std::uint16_t GatewayProcess::http_port() const {
  absl::MutexLock lock(&mu_);
  return http_port_;
}

std::uint16_t GatewayProcess::grpc_port() const {
  absl::MutexLock lock(&mu_);
  return grpc_port_;
}

std::string GatewayProcess::base_url() const {
  return absl::StrCat("http://127.0.0.1:", http_port());
}

void GatewayProcess::Signal(int signal) {
  if (pid_ > 0 && !exit_code_.has_value()) kill(pid_, signal);
}

std::optional<int> GatewayProcess::WaitForExit(absl::Duration timeout) {
  if (exit_code_.has_value() || pid_ <= 0) return exit_code_;
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      exit_code_ = ExitCode(status);
      if (reader_.joinable()) reader_.join();
      return exit_code_;
    }
    if (absl::Now() >= deadline) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(5));
  }
}

std::string GatewayProcess::log() const {
  absl::MutexLock lock(&mu_);
  return log_;
}

std::vector<std::string> GatewayProcess::log_lines() const {
  std::vector<std::string> lines = absl::StrSplit(log(), '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

Subscriber::Subscriber(std::uint16_t grpc_port,
                       const v1::SubscribeRequest& request,
                       const std::string& token)
    : channel_(grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc_port),
                                   grpc::InsecureChannelCredentials())),
      stub_(v1::EventStreamService::NewStub(channel_)),
      request_(request) {
  if (!token.empty()) {
    context_.AddMetadata("authorization", absl::StrCat("Bearer ", token));
  }
  reader_ = std::thread([this] { Read(); });
}

Subscriber::~Subscriber() {
  context_.TryCancel();
  if (reader_.joinable()) reader_.join();
}

void Subscriber::Read() {
  std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader =
      stub_->Subscribe(&context_, request_);
  reader->WaitForInitialMetadata();
  {
    absl::MutexLock lock(&mu_);
    started_ = true;
  }
  v1::SubscribeResponse response;
  while (reader->Read(&response)) {
    absl::MutexLock lock(&mu_);
    queue_.push_back(response);
  }
  grpc::Status status = reader->Finish();
  absl::MutexLock lock(&mu_);
  finished_ = status;
}

bool Subscriber::WaitStarted(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const auto started = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return started_ || finished_.has_value();
  };
  mu_.AwaitWithTimeout(absl::Condition(&started), timeout);
  return started_;
}

std::optional<v1::SubscribeResponse> Subscriber::Next(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || finished_.has_value();
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (queue_.empty()) return std::nullopt;
  v1::SubscribeResponse response = std::move(queue_.front());
  queue_.pop_front();
  return response;
}

std::optional<v1::Event> Subscriber::NextEvent(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (unread_.empty()) {
    std::optional<v1::SubscribeResponse> response =
        Next(deadline - absl::Now());
    if (!response) return std::nullopt;
    for (v1::Event& event : *response->mutable_events()) {
      unread_.push_back(std::move(event));
    }
  }
  v1::Event event = std::move(unread_.front());
  unread_.pop_front();
  return event;
}

std::optional<std::vector<v1::Event>> Subscriber::EventsUntilCaughtUpTo(
    std::uint64_t sequence, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::vector<v1::Event> events;
  while (std::optional<v1::SubscribeResponse> response =
             Next(deadline - absl::Now())) {
    if (response->has_heartbeat()) {
      if (response->heartbeat().last_sequence() >= sequence) return events;
    } else {
      for (v1::Event& event : *response->mutable_events()) {
        events.push_back(std::move(event));
      }
    }
  }
  return std::nullopt;
}

std::optional<std::vector<v1::Event>> Subscriber::EventsThrough(
    std::uint64_t sequence, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::vector<v1::Event> events;
  while (std::optional<v1::Event> event = NextEvent(deadline - absl::Now())) {
    events.push_back(*std::move(event));
    if (events.back().sequence() >= sequence) return events;
  }
  return std::nullopt;
}

std::optional<grpc::Status> Subscriber::WaitFinished(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const auto finished = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return finished_.has_value();
  };
  mu_.AwaitWithTimeout(absl::Condition(&finished), timeout);
  return finished_;
}

std::string ReadSample(const std::string& name) {
  std::ifstream in(std::string(GATEWAY_TESTDATA_DIR) + "/samples/" + name,
                   std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> SampleNames() {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(
           std::string(GATEWAY_TESTDATA_DIR) + "/samples")) {
    if (entry.path().extension() == ".json") {
      names.push_back(entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace convocore::integration
