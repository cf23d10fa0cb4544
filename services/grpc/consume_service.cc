// EventStreamServiceImpl's consumer group RPCs: the Consume reactor and the
// unary group methods, thin adapters over groups::GroupService.
#include <grpc/slice.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "services/grpc/caller_grant.h"
#include "services/grpc/event_framing.h"
#include "services/grpc/event_stream_service.h"
#include "services/grpc/grpc_status.h"

namespace convocore::grpc_service {
namespace {

namespace v1 = convocore::webhooks::v1;
using google::protobuf::io::CodedOutputStream;

// A ConsumeResponse is written by hand from the events' stored bytes, as a
// SubscribeResponse is: parsing each event to serialize it again would cost
// more than the rest of the write.
static_assert(v1::ConsumeResponse::kEventsFieldNumber == 1);
static_assert(v1::ConsumeResponse::kAcknowledgedSequencesFieldNumber == 2);
static_assert(v1::ConsumedEvent::kEventFieldNumber == 1);
static_assert(v1::ConsumedEvent::kDeliveryAttemptFieldNumber == 2);
constexpr std::uint32_t kLengthDelimited1 = (1 << 3) | 2;
constexpr std::uint32_t kLengthDelimited2 = (2 << 3) | 2;
constexpr std::uint32_t kVarint2 = (2 << 3) | 0;

constexpr std::size_t kResponseBytes = 1 << 20;

// Each ConsumedEvent is the event's shared slice (EventSlice(), which is
// ConsumedEvent.event's field) between a small header (ConsumeResponse.events'
// tag and length) and trailer (delivery_attempt), so that the event's bytes
// are not copied per member.
grpc::ByteBuffer ConsumeResponseBuffer(const groups::MemberBatch& batch) {
  std::vector<grpc::Slice> slices;
  slices.reserve(2 * batch.events.size() + 2);
  std::uint8_t small[2 * (1 + 5)];
  for (const groups::Assignment& assignment : batch.events) {
    grpc::Slice event = EventSlice(*assignment.delivery);
    const std::size_t inner =
        event.size() + 1 + CodedOutputStream::VarintSize32(assignment.attempt);
    std::uint8_t* at = small;
    // The previous event's trailer and this one's header share a slice.
    if (!slices.empty()) {
      *at++ = kVarint2;
      at = CodedOutputStream::WriteVarint32ToArray(
          batch.events[slices.size() / 2 - 1].attempt, at);
    }
    *at++ = kLengthDelimited1;
    at = CodedOutputStream::WriteVarint32ToArray(
        static_cast<std::uint32_t>(inner), at);
    slices.emplace_back(small, static_cast<std::size_t>(at - small));
    slices.push_back(std::move(event));
  }
  std::string tail;
  if (!batch.events.empty()) {
    tail.push_back(static_cast<char>(kVarint2));
    std::uint8_t varint[5];
    tail.append(reinterpret_cast<const char*>(varint),
                CodedOutputStream::WriteVarint32ToArray(
                    batch.events.back().attempt, varint) -
                    varint);
  }
  if (!batch.acknowledged.empty()) {
    google::protobuf::io::StringOutputStream stream(&tail);
    CodedOutputStream out(&stream);
    std::size_t packed = 0;
    for (std::uint64_t sequence : batch.acknowledged) {
      packed += CodedOutputStream::VarintSize64(sequence);
    }
    out.WriteTag(kLengthDelimited2);
    out.WriteVarint32(static_cast<std::uint32_t>(packed));
    for (std::uint64_t sequence : batch.acknowledged) {
      out.WriteVarint64(sequence);
    }
  }
  if (!tail.empty()) slices.emplace_back(tail);
  return grpc::ByteBuffer(slices.data(), slices.size());
}

absl::StatusOr<v1::ConsumeRequest> ParseConsumeRequest(
    const grpc::ByteBuffer& buffer) {
  grpc::Slice slice;
  v1::ConsumeRequest request;
  if (!buffer.DumpToSingleSlice(&slice).ok() ||
      !request.ParseFromArray(slice.begin(), static_cast<int>(slice.size()))) {
    return absl::InvalidArgumentError("the ConsumeRequest cannot be parsed");
  }
  return request;
}

// INVALID_ARGUMENT when a request after the first sets what only the first
// may.
absl::Status CheckLaterRequest(const v1::ConsumeRequest& request) {
  const bool first_only =
      !request.consumer_group().empty() || request.event_types_size() > 0 ||
      request.agent_ids_size() > 0 || request.channels_size() > 0 ||
      request.workspaces_size() > 0 ||
      request.start_position_case() !=
          v1::ConsumeRequest::START_POSITION_NOT_SET ||
      request.has_ack_deadline() || request.max_delivery_attempts() != 0 ||
      request.max_in_flight() != 0;
  if (!first_only) return absl::OkStatus();
  return absl::InvalidArgumentError(
      "only the first ConsumeRequest of a stream may set consumer_group, the "
      "filter, the start position, ack_deadline, max_delivery_attempts or "
      "max_in_flight; later ones carry ack_sequences and nacks");
}

}  // namespace

// One Consume stream: a member of its group from its first request until
// OnDone. Lock order: a member's sink lock (the group's), then mu_, then the
// group's own lock (Take()); Settle() and Leave() are called without mu_,
// since they may notify this very reactor.
class EventStreamServiceImpl::ConsumeReactor final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
      public groups::MemberSink,
      public EventStreamServiceImpl::StreamReactor {
 public:
  ConsumeReactor(EventStreamServiceImpl* service,
                 grpc::CallbackServerContext* context)
      : service_(service), context_(context) {
    bool shutting_down = false;
    service_->Register(this, &shutting_down, &tokens_);
    absl::MutexLock lock(&mu_);
    if (shutting_down) {
      FinishLocked(grpc::Status(
          grpc::StatusCode::UNAVAILABLE,
          "the event stream is shutting down; consume again later"));
      return;
    }
    if (service_->groups_ == nullptr) {
      FinishLocked(ToGrpcStatus(service_->GroupAccess(*context).status()));
      return;
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client half-closed (or went away): it will ack nothing more.
      absl::MutexLock lock(&mu_);
      FinishWhenIdleLocked(grpc::Status::OK);
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      if (finish_called_ || pending_finish_) return;
    }
    absl::StatusOr<v1::ConsumeRequest> request = ParseConsumeRequest(request_);
    request_.Clear();
    absl::Status status = !request.ok()              ? request.status()
                          : !membership_.has_value() ? Join(*request)
                                                     : Settle(*request);
    absl::MutexLock lock(&mu_);
    if (!status.ok()) {
      FinishWhenIdleLocked(ToGrpcStatus(status));
      return;
    }
    if (finish_called_ || pending_finish_) return;
    StartRead(&request_);
  }

  // groups::MemberSink.
  void OnReady() override {
    absl::MutexLock lock(&mu_);
    WriteNextLocked();
  }

  void Stop() override {
    absl::MutexLock lock(&mu_);
    FinishWhenIdleLocked(
        grpc::Status(grpc::StatusCode::UNAVAILABLE,
                     "the event stream is shutting down; consume again later"));
  }

  void Reauthorize(const auth::SubscriberTokens& tokens) override {
    absl::MutexLock lock(&mu_);
    // membership_ was set before joined_, under mu_.
    if (!joined_ || !grant_.has_value() || finish_called_) return;
    const auth::SubscriberGrant* grant =
        grant_->certificate.empty()
            ? tokens.FindByDigest(grant_->digest)
            : tokens.FindByCertificate({grant_->certificate});
    const v1::SubscribeRequest& filter = membership_->group->settings().filter;
    std::vector<v1::EventType> types;
    for (int type : filter.event_types()) {
      types.push_back(static_cast<v1::EventType>(type));
    }
    const absl::Status allowed =
        grant == nullptr
            ? absl::UnauthenticatedError(absl::StrCat(
                  "the token of subscriber \"", grant_->name, "\" was revoked"))
            : auth::StillAllowed(
                  *grant, types,
                  {filter.workspaces().begin(), filter.workspaces().end()});
    if (!allowed.ok()) FinishWhenIdleLocked(ToGrpcStatus(allowed));
  }

  void Heartbeat(const grpc::ByteBuffer& /*subscribe*/,
                 const grpc::ByteBuffer& consume, int idle_ticks) override {
    absl::MutexLock lock(&mu_);
    if (finish_called_ || write_in_flight_ || !joined_) return;
    if (++idle_ticks_ < idle_ticks) return;
    buffer_ = consume;
    StartWriteLocked(grpc::WriteOptions());
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    write_in_flight_ = false;
    buffer_.Clear();
    if (!ok) {
      FinishLocked(
          grpc::Status(grpc::StatusCode::CANCELLED, "the consumer is gone"));
      return;
    }
    if (pending_finish_) {
      FinishLocked(*pending_finish_);
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishWhenIdleLocked(
        grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
  }

  void OnDone() override {
    // gRPC runs OnDone only after every other reaction, OnCancel included,
    // has returned, but orders them with its own atomics, which TSan does not
    // see in Debian's uninstrumented libgrpc. Passing through mu_ states that
    // order where TSan can check it, as SubscribeReactor::OnDone does.
    { absl::MutexLock lock(&mu_); }
    // Leaving redelivers what this member held; after Leave() the group no
    // longer calls OnReady(), and after Unregister() nothing else does.
    if (membership_.has_value()) {
      membership_->group->Leave(membership_->member);
    }
    service_->Unregister(this);
    delete this;
  }

 private:
  // Runs on the reactor's read callback: at most one at a time, so
  // membership_ is written here before any other reader looks at it.
  absl::Status Join(const v1::ConsumeRequest& request) {
    absl::StatusOr<groups::JoinRequest> join =
        groups::JoinRequestFromProto(request);
    if (!join.ok()) return join.status();
    absl::StatusOr<groups::GroupAuthorizer> access =
        service_->GroupAccess(*context_);
    if (!access.ok()) return access.status();
    if (!request.ack_sequences().empty() || !request.nacks().empty()) {
      return absl::InvalidArgumentError(
          "the first ConsumeRequest cannot ack or nack: nothing was delivered "
          "on this stream yet");
    }
    absl::StatusOr<groups::Membership> membership =
        service_->groups_->Join(*join, *access, this);
    if (!membership.ok()) return membership.status();
    membership_ = *std::move(membership);
    max_in_flight_ = join->max_in_flight;
    RememberGrant();
    absl::MutexLock lock(&mu_);
    joined_ = true;
    if (finish_called_ || pending_finish_) return absl::OkStatus();
    // Sent once a member: a client that waits for it knows it shares the
    // group's events from now on.
    StartSendInitialMetadata();
    WriteNextLocked();
    return absl::OkStatus();
  }

  absl::Status Settle(const v1::ConsumeRequest& request) {
    if (absl::Status later = CheckLaterRequest(request); !later.ok()) {
      return later;
    }
    std::vector<groups::NackRequest> nacks;
    nacks.reserve(request.nacks_size());
    for (const v1::Nack& nack : request.nacks()) {
      nacks.push_back(groups::NackRequest{nack.sequence(), nack.error()});
    }
    return service_->groups_->Settle(
        *membership_,
        {request.ack_sequences().data(),
         static_cast<std::size_t>(request.ack_sequences_size())},
        nacks);
  }

  void RememberGrant() {
    if (tokens_ == nullptr) return;
    absl::StatusOr<const auth::SubscriberGrant*> grant =
        CallerGrant(*context_, *tokens_);
    if (!grant.ok()) return;
    absl::MutexLock lock(&mu_);
    grant_ = Grant{(*grant)->name, (*grant)->digest, (*grant)->certificate};
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!joined_ || finish_called_ || write_in_flight_ || pending_finish_) {
      return;
    }
    groups::MemberBatch batch;
    // Whatever the member may hold goes in one response (up to about 1 MiB):
    // a member that asked for more in flight gets fewer, larger messages.
    if (!membership_->group->Take(membership_->member, max_in_flight_,
                                  kResponseBytes, &batch)) {
      return;  // OnReady() follows
    }
    if (!batch.end.ok()) {
      FinishLocked(ToGrpcStatus(batch.end));
      return;
    }
    buffer_ = ConsumeResponseBuffer(batch);
    StartWriteLocked(grpc::WriteOptions());
  }

  void StartWriteLocked(grpc::WriteOptions options)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    write_in_flight_ = true;
    idle_ticks_ = 0;
    StartWrite(&buffer_, options);
  }

  void FinishWhenIdleLocked(grpc::Status status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_called_ || pending_finish_) return;
    if (write_in_flight_) {
      pending_finish_ = std::move(status);
    } else {
      FinishLocked(std::move(status));
    }
  }

  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_called_) return;
    finish_called_ = true;
    Finish(std::move(status));
  }

  EventStreamServiceImpl* const service_;
  grpc::CallbackServerContext* const context_;
  std::shared_ptr<const auth::SubscriberTokens> tokens_;
  // Read and written only on the read callback (one at a time) until
  // joined_ is set under mu_; read-only afterwards, until OnDone.
  std::optional<groups::Membership> membership_;
  std::size_t max_in_flight_ = 0;
  grpc::ByteBuffer request_;

  absl::Mutex mu_;
  bool joined_ ABSL_GUARDED_BY(mu_) = false;
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> pending_finish_ ABSL_GUARDED_BY(mu_);
  int idle_ticks_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::ByteBuffer buffer_ ABSL_GUARDED_BY(mu_);
  struct Grant {
    std::string name;
    auth::TokenDigest digest;
    std::string certificate;
  };
  std::optional<Grant> grant_ ABSL_GUARDED_BY(mu_);
};

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>*
EventStreamServiceImpl::Consume(grpc::CallbackServerContext* context) {
  return new ConsumeReactor(this, context);
}

absl::StatusOr<groups::GroupAuthorizer> EventStreamServiceImpl::GroupAccess(
    const grpc::CallbackServerContext& context) const {
  if (groups_ == nullptr) {
    return absl::FailedPreconditionError(
        "consumer groups are not served by this gateway's store (see the "
        "README: they need --store=disk or --store=memory)");
  }
  std::shared_ptr<const auth::SubscriberTokens> tokens = this->tokens();
  if (tokens == nullptr) {
    return groups::GroupAuthorizer(
        [](v1::SubscribeRequest*, bool) { return absl::OkStatus(); });
  }
  absl::StatusOr<const auth::SubscriberGrant*> grant =
      CallerGrant(context, *tokens);
  if (!grant.ok()) return grant.status();
  // The grant lives as long as `tokens`, which the authorizer holds.
  return groups::GroupAuthorizer(
      [tokens, grant = *grant](v1::SubscribeRequest* filter, bool creating) {
        if (creating) return auth::Authorize(*grant, filter);
        std::vector<v1::EventType> types;
        for (int type : filter->event_types()) {
          types.push_back(static_cast<v1::EventType>(type));
        }
        return auth::StillAllowed(
            *grant, types,
            {filter->workspaces().begin(), filter->workspaces().end()});
      });
}

namespace {

// Runs `body` with the caller's group rights and finishes the call with its
// status.
template <typename Body>
grpc::ServerUnaryReactor* GroupCall(
    grpc::CallbackServerContext* context,
    const absl::StatusOr<groups::GroupAuthorizer>& access, Body body) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(access.ok() ? body(*access) : access.status()));
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* EventStreamServiceImpl::CreateConsumerGroup(
    grpc::CallbackServerContext* context,
    const v1::CreateConsumerGroupRequest* request,
    v1::CreateConsumerGroupResponse* response) {
  return GroupCall(context, GroupAccess(*context),
                   [&](const groups::GroupAuthorizer& access) {
                     absl::StatusOr<v1::ConsumerGroup> group =
                         groups_->CreateGroup(*request, access);
                     if (!group.ok()) return group.status();
                     *response->mutable_consumer_group() = *std::move(group);
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* EventStreamServiceImpl::GetConsumerGroup(
    grpc::CallbackServerContext* context,
    const v1::GetConsumerGroupRequest* request,
    v1::GetConsumerGroupResponse* response) {
  return GroupCall(context, GroupAccess(*context),
                   [&](const groups::GroupAuthorizer& access) {
                     absl::StatusOr<v1::ConsumerGroup> group =
                         groups_->GetGroup(request->consumer_group(), access);
                     if (!group.ok()) return group.status();
                     *response->mutable_consumer_group() = *std::move(group);
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* EventStreamServiceImpl::ListConsumerGroups(
    grpc::CallbackServerContext* context,
    const v1::ListConsumerGroupsRequest* /*request*/,
    v1::ListConsumerGroupsResponse* response) {
  return GroupCall(context, GroupAccess(*context),
                   [&](const groups::GroupAuthorizer& access) {
                     absl::StatusOr<std::vector<v1::ConsumerGroup>> list =
                         groups_->ListGroups(access);
                     if (!list.ok()) return list.status();
                     for (v1::ConsumerGroup& group : *list) {
                       *response->add_consumer_groups() = std::move(group);
                     }
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* EventStreamServiceImpl::DeleteConsumerGroup(
    grpc::CallbackServerContext* context,
    const v1::DeleteConsumerGroupRequest* request,
    v1::DeleteConsumerGroupResponse* /*response*/) {
  return GroupCall(context, GroupAccess(*context),
                   [&](const groups::GroupAuthorizer& access) {
                     return groups_->DeleteGroup(request->consumer_group(),
                                                 access);
                   });
}

grpc::ServerUnaryReactor* EventStreamServiceImpl::SeekConsumerGroup(
    grpc::CallbackServerContext* context,
    const v1::SeekConsumerGroupRequest* request,
    v1::SeekConsumerGroupResponse* response) {
  return GroupCall(context, GroupAccess(*context),
                   [&](const groups::GroupAuthorizer& access) {
                     absl::StatusOr<v1::ConsumerGroup> group =
                         groups_->SeekGroup(*request, access);
                     if (!group.ok()) return group.status();
                     *response->mutable_consumer_group() = *std::move(group);
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* EventStreamServiceImpl::ListDeadLetters(
    grpc::CallbackServerContext* context,
    const v1::ListDeadLettersRequest* request,
    v1::ListDeadLettersResponse* response) {
  return GroupCall(context, GroupAccess(*context),
                   [&](const groups::GroupAuthorizer& access) {
                     absl::StatusOr<v1::ListDeadLettersResponse> list =
                         groups_->ListDeadLetters(*request, access);
                     if (!list.ok()) return list.status();
                     *response = *std::move(list);
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* EventStreamServiceImpl::ReplayDeadLetters(
    grpc::CallbackServerContext* context,
    const v1::ReplayDeadLettersRequest* request,
    v1::ReplayDeadLettersResponse* response) {
  return GroupCall(context, GroupAccess(*context),
                   [&](const groups::GroupAuthorizer& access) {
                     absl::StatusOr<v1::ReplayDeadLettersResponse> replayed =
                         groups_->ReplayDeadLetters(*request, access);
                     if (!replayed.ok()) return replayed.status();
                     *response = *std::move(replayed);
                     return absl::OkStatus();
                   });
}

grpc::ServerUnaryReactor* EventStreamServiceImpl::DropDeadLetters(
    grpc::CallbackServerContext* context,
    const v1::DropDeadLettersRequest* request,
    v1::DropDeadLettersResponse* response) {
  return GroupCall(context, GroupAccess(*context),
                   [&](const groups::GroupAuthorizer& access) {
                     absl::StatusOr<v1::DropDeadLettersResponse> dropped =
                         groups_->DropDeadLetters(*request, access);
                     if (!dropped.ok()) return dropped.status();
                     *response = *std::move(dropped);
                     return absl::OkStatus();
                   });
}

}  // namespace convocore::grpc_service
