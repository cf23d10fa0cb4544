#include "services/grpc/event_stream_service.h"

#include <grpc/slice.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/io/coded_stream.h"
#include "services/grpc/caller_grant.h"
#include "services/grpc/event_framing.h"
#include "services/grpc/grpc_status.h"
#include "services/hub/subscribe_request.h"

namespace convocore::grpc_service {
namespace {

namespace v1 = convocore::webhooks::v1;

// SubscribeRequest.max_events_per_response, as the contract documents it.
constexpr std::uint32_t kDefaultEventsPerResponse = 100;
constexpr std::uint32_t kMaxEventsPerResponse = 1000;
// A response stops growing past this many bytes: well below the 4 MiB that
// gRPC clients accept by default in one message.
constexpr std::size_t kResponseBytes = 1 << 20;

absl::StatusOr<std::size_t> EventsPerResponse(
    const v1::SubscribeRequest& request) {
  const std::uint32_t max = request.max_events_per_response();
  if (max > kMaxEventsPerResponse) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_events_per_response must be at most ",
                     kMaxEventsPerResponse, ", got ", max));
  }
  return max == 0 ? kDefaultEventsPerResponse : max;
}

template <typename Response>
grpc::ByteBuffer HeartbeatResponse(std::uint64_t last_sequence) {
  Response response;
  v1::Heartbeat* heartbeat = response.mutable_heartbeat();
  const absl::Time now = absl::Now();
  const std::int64_t seconds = absl::ToUnixSeconds(now);
  heartbeat->mutable_send_time()->set_seconds(seconds);
  heartbeat->mutable_send_time()->set_nanos(static_cast<std::int32_t>(
      (now - absl::FromUnixSeconds(seconds)) / absl::Nanoseconds(1)));
  heartbeat->set_last_sequence(last_sequence);
  grpc::Slice slice(response.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

absl::StatusOr<v1::SubscribeRequest> ParseRequest(
    const grpc::ByteBuffer& buffer) {
  grpc::Slice slice;
  v1::SubscribeRequest request;
  if (!buffer.DumpToSingleSlice(&slice).ok() ||
      !request.ParseFromArray(slice.begin(), static_cast<int>(slice.size()))) {
    return absl::InvalidArgumentError("the SubscribeRequest cannot be parsed");
  }
  return request;
}

}  // namespace

// One Subscribe stream. Lives from the handler until OnDone.
class EventStreamServiceImpl::SubscribeReactor final
    : public grpc::ServerWriteReactor<grpc::ByteBuffer>,
      public hub::SubscriptionSink,
      public EventStreamServiceImpl::StreamReactor {
 public:
  SubscribeReactor(EventStreamServiceImpl* service,
                   grpc::CallbackServerContext* context,
                   const grpc::ByteBuffer* request)
      : service_(service) {
    bool shutting_down = false;
    std::shared_ptr<const auth::SubscriberTokens> tokens;
    service_->Register(this, &shutting_down, &tokens);
    absl::StatusOr<std::unique_ptr<hub::Subscription>> subscription =
        shutting_down ? absl::UnavailableError(
                            "the event stream is shutting down; subscribe "
                            "again later")
                      : Subscribe(*context, tokens.get(), *request);
    // Declared before the lock so that, if unused, it is cancelled after the
    // lock is released (Cancel() takes hub locks that come first).
    std::unique_ptr<hub::Subscription> unused;
    {
      absl::MutexLock lock(&mu_);
      if (!subscription.ok()) {
        FinishLocked(ToGrpcStatus(subscription.status()));
        return;
      }
      if (finish_called_ || pending_finish_) {  // Stop() or a reload first
        unused = *std::move(subscription);
        if (!finish_called_) FinishLocked(*pending_finish_);
        return;
      }
      // Until now OnReady() ignored this reactor: the hub calls it before
      // the first Next() only to report an end, which this Next() returns.
      subscription_ = *std::move(subscription);
      last_sent_ = subscription_->start_after();
      StartSendInitialMetadata();
      WriteNextLocked();
    }
    // Tokens changed while this stream was being authorized: that reload
    // may have passed it by.
    if (std::shared_ptr<const auth::SubscriberTokens> now = service_->tokens();
        now != tokens && now != nullptr) {
      Reauthorize(*now);
    }
  }

  // Ends the stream, with where to resume, if `tokens` no longer allow what
  // it was authorized to read.
  void Reauthorize(const auth::SubscriberTokens& tokens) override {
    absl::MutexLock lock(&mu_);
    if (!grant_.has_value() || finish_called_) return;
    const auth::SubscriberGrant* grant =
        grant_->certificate.empty()
            ? tokens.FindByDigest(grant_->digest)
            : tokens.FindByCertificate({grant_->certificate});
    const absl::Status allowed =
        grant == nullptr
            ? absl::UnauthenticatedError(absl::StrCat(
                  "the token of subscriber \"", grant_->name, "\" was revoked"))
            : auth::StillAllowed(*grant, grant_->types, grant_->workspaces);
    if (allowed.ok()) return;
    FinishWhenIdleLocked(ToGrpcStatus(hub::SubscriptionEndStatus(
        allowed.code(), allowed.message(),
        service_->hub_->ResumePointAfter(last_sent_))));
  }

  // hub::SubscriptionSink. Runs on a publisher's or the hub's thread.
  void OnReady() override {
    absl::MutexLock lock(&mu_);
    if (subscription_ != nullptr) WriteNextLocked();
  }

  void Heartbeat(const grpc::ByteBuffer& heartbeat,
                 const grpc::ByteBuffer& /*consume*/, int idle_ticks) override {
    absl::MutexLock lock(&mu_);
    if (finish_called_ || write_in_flight_ || subscription_ == nullptr) return;
    if (++idle_ticks_ < idle_ticks) return;
    buffer_ = heartbeat;
    StartWriteLocked(grpc::WriteOptions());
  }

  void Stop() override {
    constexpr char kReason[] = "the event stream is shutting down";
    absl::MutexLock lock(&mu_);
    FinishWhenIdleLocked(
        ToGrpcStatus(subscription_ != nullptr
                         ? hub::SubscriptionEndStatus(
                               absl::StatusCode::kUnavailable, kReason,
                               service_->hub_->ResumePointAfter(last_sent_))
                         : absl::UnavailableError(absl::StrCat(
                               kReason, "; subscribe again later"))));
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    write_in_flight_ = false;
    buffer_.Clear();
    if (!ok) {
      // The client went away (or the call was cancelled): nothing more can
      // be sent, but the RPC must still be finished.
      FinishLocked(
          grpc::Status(grpc::StatusCode::CANCELLED, "the subscriber is gone"));
      return;
    }
    if (pending_finish_) {
      FinishLocked(*pending_finish_);
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      FinishWhenIdleLocked(
          grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
    }
    // Frees the queue and the filter at once, not at OnDone. Not under mu_:
    // Cancel() waits for an OnReady() in progress, which takes mu_.
    if (hub::Subscription* s = LockedSubscription(); s != nullptr) {
      s->Cancel();
    }
  }

  void OnDone() override {
    // The subscription goes before Unregister(): once the service has seen
    // every reactor unregistered, the hub may be destroyed. After the
    // subscription is gone the hub makes no further OnReady() call, and
    // after Unregister() the heartbeat tick no longer sees this reactor.
    std::unique_ptr<hub::Subscription> subscription;
    {
      absl::MutexLock lock(&mu_);
      subscription = std::move(subscription_);
    }
    subscription.reset();
    service_->Unregister(this);
    delete this;
  }

 private:
  absl::StatusOr<std::unique_ptr<hub::Subscription>> Subscribe(
      const grpc::CallbackServerContext& context,
      const auth::SubscriberTokens* tokens, const grpc::ByteBuffer& request) {
    absl::StatusOr<v1::SubscribeRequest> parsed = ParseRequest(request);
    if (!parsed.ok()) return parsed.status();
    // Checked before authorization, so that a malformed filter is
    // INVALID_ARGUMENT whoever asks.
    absl::StatusOr<hub::SubscribeOptions> options =
        hub::SubscribeOptionsFromRequest(*parsed);
    if (!options.ok()) return options.status();
    if (tokens != nullptr) {
      absl::Status authorized = Authorize(context, *tokens, &*parsed);
      if (!authorized.ok()) return authorized;
      options = hub::SubscribeOptionsFromRequest(*parsed);
      if (!options.ok()) return options.status();
    }
    absl::StatusOr<std::size_t> events_per_response =
        EventsPerResponse(*parsed);
    if (!events_per_response.ok()) return events_per_response.status();
    events_per_response_ = *events_per_response;
    return service_->hub_->Subscribe(*options, this);
  }

  // Narrows `request` to what the caller's token may read, and remembers
  // the grant for later reloads.
  absl::Status Authorize(const grpc::CallbackServerContext& context,
                         const auth::SubscriberTokens& tokens,
                         v1::SubscribeRequest* request) {
    absl::StatusOr<const auth::SubscriberGrant*> found =
        CallerGrant(context, tokens);
    if (!found.ok()) return found.status();
    const auth::SubscriberGrant* grant = *found;
    if (absl::Status allowed = auth::Authorize(*grant, request);
        !allowed.ok()) {
      return allowed;
    }
    Grant held{grant->name, grant->digest, grant->certificate, {}, {}};
    for (int type : request->event_types()) {
      held.types.push_back(static_cast<v1::EventType>(type));
    }
    held.workspaces.assign(request->workspaces().begin(),
                           request->workspaces().end());
    absl::MutexLock lock(&mu_);
    grant_ = std::move(held);
    return absl::OkStatus();
  }

  // The subscription, once the constructor set it; it lives until OnDone.
  hub::Subscription* LockedSubscription() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return subscription_.get();
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_called_ || write_in_flight_ || pending_finish_) return;
    slices_.clear();
    std::size_t taken = 0;
    std::size_t bytes = 0;
    bool more = false;
    do {
      absl::StatusOr<std::shared_ptr<const hub::Delivery>> next =
          subscription_->Next(&more);
      if (!next.ok()) {
        if (taken == 0) {
          FinishLocked(ToGrpcStatus(next.status()));
          return;
        }
        // The end comes after the events already taken.
        pending_finish_ = ToGrpcStatus(next.status());
        break;
      }
      if (*next == nullptr) break;  // OnReady() follows the next event
      const hub::Delivery& delivery = **next;
      last_sent_ = delivery.sequence;
      slices_.push_back(EventSlice(delivery));
      bytes += slices_.back().size();
      ++taken;
    } while (more && taken < events_per_response_ && bytes < kResponseBytes);
    if (taken == 0) return;
    buffer_ = grpc::ByteBuffer(slices_.data(), slices_.size());
    slices_.clear();
    grpc::WriteOptions options;
    // More is queued: let the transport coalesce this write with the next.
    if (more) options.set_buffer_hint();
    StartWriteLocked(options);
  }

  void StartWriteLocked(grpc::WriteOptions options)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    write_in_flight_ = true;
    idle_ticks_ = 0;
    StartWrite(&buffer_, options);
  }

  // Finish() must not race a write in flight: park the status until
  // OnWriteDone.
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
  absl::Mutex mu_;
  // Set once in the constructor, destroyed with the reactor.
  std::unique_ptr<hub::Subscription> subscription_ ABSL_GUARDED_BY(mu_);
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> pending_finish_ ABSL_GUARDED_BY(mu_);
  int idle_ticks_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t last_sent_ ABSL_GUARDED_BY(mu_) = 0;
  // The message being written.
  grpc::ByteBuffer buffer_ ABSL_GUARDED_BY(mu_);
  // Where WriteNextLocked() gathers a message's slices; kept for its
  // capacity.
  std::vector<grpc::Slice> slices_ ABSL_GUARDED_BY(mu_);
  // SubscribeRequest.max_events_per_response, resolved (1 to 1000). Set
  // before the subscription exists; read only after.
  std::size_t events_per_response_ = 1;
  // What the stream's token was authorized for (the types as narrowed;
  // empty for every type); unset without subscriber tokens.
  struct Grant {
    std::string name;
    auth::TokenDigest digest;
    std::string certificate;  // set for a certificate's grant
    std::vector<v1::EventType> types;
    std::vector<std::string> workspaces;  // as narrowed; empty for all
  };
  std::optional<Grant> grant_ ABSL_GUARDED_BY(mu_);
};

EventStreamServiceImpl::EventStreamServiceImpl(hub::EventHub* hub,
                                               groups::GroupService* groups)
    : hub_(hub), groups_(groups) {}

EventStreamServiceImpl::~EventStreamServiceImpl() {
  StartShutdown();
  WaitForReactors();
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* EventStreamServiceImpl::Subscribe(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  return new SubscribeReactor(this, context, request);
}

void EventStreamServiceImpl::Tick(int idle_ticks) {
  const std::uint64_t last_sequence = hub_->last_sequence();
  const grpc::ByteBuffer subscribe =
      HeartbeatResponse<v1::SubscribeResponse>(last_sequence);
  const grpc::ByteBuffer consume =
      HeartbeatResponse<v1::ConsumeResponse>(last_sequence);
  absl::MutexLock lock(&mu_);
  for (StreamReactor* reactor : reactors_) {
    reactor->Heartbeat(subscribe, consume, idle_ticks);
  }
}

void EventStreamServiceImpl::StartShutdown() {
  absl::MutexLock lock(&mu_);
  shutting_down_ = true;
  for (StreamReactor* reactor : reactors_) reactor->Stop();
}

void EventStreamServiceImpl::WaitForReactors() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](absl::flat_hash_set<StreamReactor*>* reactors) {
        return reactors->empty();
      },
      &reactors_));
}

std::size_t EventStreamServiceImpl::open_streams() const {
  absl::MutexLock lock(&mu_);
  return reactors_.size();
}

void EventStreamServiceImpl::Register(
    StreamReactor* reactor, bool* shutting_down,
    std::shared_ptr<const auth::SubscriberTokens>* tokens) {
  absl::MutexLock lock(&mu_);
  reactors_.insert(reactor);
  *shutting_down = shutting_down_;
  *tokens = tokens_;
}

std::shared_ptr<const auth::SubscriberTokens> EventStreamServiceImpl::tokens()
    const {
  absl::MutexLock lock(&mu_);
  return tokens_;
}

void EventStreamServiceImpl::SetSubscriberTokens(
    std::shared_ptr<const auth::SubscriberTokens> tokens) {
  absl::MutexLock lock(&mu_);
  tokens_ = std::move(tokens);
  if (tokens_ == nullptr) return;
  for (StreamReactor* reactor : reactors_) reactor->Reauthorize(*tokens_);
}

void EventStreamServiceImpl::Unregister(StreamReactor* reactor) {
  absl::MutexLock lock(&mu_);
  reactors_.erase(reactor);
}

}  // namespace convocore::grpc_service
