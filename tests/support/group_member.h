// A Consume stream for tests: the gateway's responses are read on a thread
// into a queue; acks and nacks are written from the test's thread.
#ifndef TESTS_SUPPORT_GROUP_MEMBER_H_
#define TESTS_SUPPORT_GROUP_MEMBER_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "convocore/webhooks/v1/event_stream_service.grpc.pb.h"

namespace convocore::testing {

namespace v1 = ::convocore::webhooks::v1;

// One Consume stream: responses read on a thread into a queue, requests
// written from the test's thread.
class GroupMember {
 public:
  // With a `token`, sends "authorization: Bearer <token>".
  GroupMember(std::uint16_t grpc_port, const v1::ConsumeRequest& first,
              const std::string& token = "")
      : channel_(grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc_port),
                                     grpc::InsecureChannelCredentials())),
        stub_(v1::EventStreamService::NewStub(channel_)),
        stream_(Open(token)) {
    stream_->Write(first);
    reader_ = std::thread([this] { Read(); });
  }
  ~GroupMember() {
    context_.TryCancel();
    if (reader_.joinable()) reader_.join();
  }

  // The stream's initial metadata, sent once the member joined its group;
  // false if the stream ended first.
  bool WaitJoined(absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&mu_);
    auto done = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return joined_ || finished_.has_value();
    };
    mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
    return joined_;
  }

  // The events of the next responses within `timeout` (at least one
  // response's worth when any comes), recording durable acks.
  std::vector<v1::ConsumedEvent> NextEvents(
      absl::Duration timeout = absl::Seconds(5)) {
    absl::MutexLock lock(&mu_);
    const absl::Time deadline = absl::Now() + timeout;
    std::vector<v1::ConsumedEvent> events;
    auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return !events_.empty() || finished_.has_value();
    };
    mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
    while (!events_.empty()) {
      events.push_back(std::move(events_.front()));
      events_.pop_front();
    }
    return events;
  }

  void Ack(const std::vector<std::uint64_t>& sequences) {
    v1::ConsumeRequest request;
    for (std::uint64_t s : sequences) request.add_ack_sequences(s);
    Write(request);
  }
  void Nack(std::uint64_t sequence, const std::string& error) {
    v1::ConsumeRequest request;
    v1::Nack* nack = request.add_nacks();
    nack->set_sequence(sequence);
    nack->set_error(error);
    Write(request);
  }
  void Write(const v1::ConsumeRequest& request) {
    absl::MutexLock lock(&write_mu_);
    stream_->Write(request);
  }

  // Every ack the gateway reported durable so far.
  std::set<std::uint64_t> Confirmed() {
    absl::MutexLock lock(&mu_);
    return confirmed_;
  }

  std::optional<grpc::Status> WaitFinished(
      absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&mu_);
    auto done = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return finished_.has_value();
    };
    mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
    return finished_;
  }

  // The member crashes: the call is cancelled with no goodbye.
  void Kill() { context_.TryCancel(); }

 private:
  std::unique_ptr<
      grpc::ClientReaderWriter<v1::ConsumeRequest, v1::ConsumeResponse>>
  Open(const std::string& token) {
    if (!token.empty()) {
      context_.AddMetadata("authorization", absl::StrCat("Bearer ", token));
    }
    return stub_->Consume(&context_);
  }

  void Read() {
    stream_->WaitForInitialMetadata();
    {
      absl::MutexLock lock(&mu_);
      joined_ = true;
    }
    v1::ConsumeResponse response;
    while (stream_->Read(&response)) {
      absl::MutexLock lock(&mu_);
      for (v1::ConsumedEvent& event : *response.mutable_events()) {
        events_.push_back(std::move(event));
      }
      confirmed_.insert(response.acknowledged_sequences().begin(),
                        response.acknowledged_sequences().end());
    }
    grpc::Status status = stream_->Finish();
    absl::MutexLock lock(&mu_);
    // The metadata wait returns at the end too; a stream refused at once
    // never joined.
    if (!status.ok() && events_.empty() && confirmed_.empty()) joined_ = false;
    finished_ = status;
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::EventStreamService::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<
      grpc::ClientReaderWriter<v1::ConsumeRequest, v1::ConsumeResponse>>
      stream_;
  absl::Mutex write_mu_;
  std::thread reader_;
  absl::Mutex mu_;
  bool joined_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<v1::ConsumedEvent> events_ ABSL_GUARDED_BY(mu_);
  std::set<std::uint64_t> confirmed_ ABSL_GUARDED_BY(mu_);
  std::optional<grpc::Status> finished_ ABSL_GUARDED_BY(mu_);
};

}  // namespace convocore::testing

#endif  // TESTS_SUPPORT_GROUP_MEMBER_H_
