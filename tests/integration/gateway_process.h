// Integration test fixtures: the real webhook-gateway binary as a child
// process, always killed and reaped when the fixture goes (and killed by the
// kernel if the test process dies first), and a gRPC subscriber that reads
// its stream on a thread.
#ifndef TESTS_INTEGRATION_GATEWAY_PROCESS_H_
#define TESTS_INTEGRATION_GATEWAY_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "convocore/webhooks/v1/event_stream_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace convocore::integration {

inline constexpr char kSampleSecret[] = "your_workspace_secret";

class GatewayProcess {
 public:
  // Runs the binary with loopback addresses, free ports (--http_port=0
  // --grpc_port=0), JSON logs and `args` (later flags win), in an
  // environment of `env` ("NAME=value") plus PATH.
  explicit GatewayProcess(std::vector<std::string> args,
                          std::vector<std::string> env = {
                              std::string("CONVOCORE_WORKSPACE_SECRET=") +
                              kSampleSecret});
  // SIGKILL and reap, if still running.
  ~GatewayProcess();
  GatewayProcess(const GatewayProcess&) = delete;
  GatewayProcess& operator=(const GatewayProcess&) = delete;

  // Waits for the "gateway ready" log line; false if the process exits or
  // the timeout passes first.
  bool WaitReady(absl::Duration timeout = absl::Seconds(30));

  std::uint16_t http_port() const;
  std::uint16_t grpc_port() const;
  std::string base_url() const;

  void Signal(int signal);
  // The exit code (128 + signal when killed), or nullopt if still running
  // after `timeout`.
  std::optional<int> WaitForExit(absl::Duration timeout = absl::Seconds(30));

  // Everything the process wrote on stderr so far (its log).
  std::string log() const;
  // The log's lines, each a JSON object with --log_format=json.
  std::vector<std::string> log_lines() const;

 private:
  void DrainLog(int fd);

  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::thread reader_;
  mutable absl::Mutex mu_;
  std::string log_ ABSL_GUARDED_BY(mu_);
  std::uint16_t http_port_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint16_t grpc_port_ ABSL_GUARDED_BY(mu_) = 0;
  bool log_closed_ ABSL_GUARDED_BY(mu_) = false;
};

// One Subscribe stream, read on its own thread into a queue.
class Subscriber {
 public:
  // With a `token`, sends "authorization: Bearer <token>".
  Subscriber(std::uint16_t grpc_port,
             const convocore::webhooks::v1::SubscribeRequest& request,
             const std::string& token = "");
  // Cancels the call and joins the reader.
  ~Subscriber();

  // Waits for the stream's initial metadata, which the gateway sends once
  // the subscription is registered: every event accepted afterwards
  // reaches it. False if the stream ended first.
  bool WaitStarted(absl::Duration timeout = absl::Seconds(10));
  // The next message, or nullopt at the timeout or the end of the stream.
  // Not to be mixed with NextEvent(), which keeps a response's other events.
  std::optional<convocore::webhooks::v1::SubscribeResponse> Next(
      absl::Duration timeout = absl::Seconds(10));
  // The next event, skipping heartbeats. Only the test's thread calls it.
  std::optional<convocore::webhooks::v1::Event> NextEvent(
      absl::Duration timeout = absl::Seconds(10));
  // Every event until a heartbeat reports last_sequence >= `sequence` (so
  // that every matching event up to it has been delivered), or nullopt.
  std::optional<std::vector<convocore::webhooks::v1::Event>>
  EventsUntilCaughtUpTo(std::uint64_t sequence,
                        absl::Duration timeout = absl::Seconds(10));
  // Every event up to and including the first with a sequence >=
  // `sequence`, or nullopt: what a subscriber that stops there has read.
  std::optional<std::vector<convocore::webhooks::v1::Event>> EventsThrough(
      std::uint64_t sequence, absl::Duration timeout = absl::Seconds(10));
  // The stream's final status once it ended, or nullopt at the timeout.
  std::optional<grpc::Status> WaitFinished(
      absl::Duration timeout = absl::Seconds(10));

 private:
  void Read();

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<convocore::webhooks::v1::EventStreamService::Stub> stub_;
  grpc::ClientContext context_;
  convocore::webhooks::v1::SubscribeRequest request_;
  std::thread reader_;
  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<convocore::webhooks::v1::SubscribeResponse> queue_
      ABSL_GUARDED_BY(mu_);
  std::optional<grpc::Status> finished_ ABSL_GUARDED_BY(mu_);
  // Events of a response that NextEvent() has not returned yet.
  std::deque<convocore::webhooks::v1::Event> unread_;
};

// The text of tests/testdata/samples/<name>.
std::string ReadSample(const std::string& name);
// The names of every sample, sorted ("agent_created.json", ...).
std::vector<std::string> SampleNames();

}  // namespace convocore::integration

#endif  // TESTS_INTEGRATION_GATEWAY_PROCESS_H_
