// convocore.webhooks.v1.EventStreamService over the callback API: one
// ServerWriteReactor per Subscribe stream, fed by the hub, never a thread per
// stream. The pattern is gRPC's own health Watch
// (src/cpp/server/health/default_health_check_service.cc): reactors live in a
// registry, at most one write is in flight per stream, the next one starts
// from OnWriteDone or from the hub's notification, and the service waits for
// every reactor's OnDone before it goes.
//
// The method is registered raw (WithRawCallbackMethod_Subscribe), so each
// write is a grpc::ByteBuffer over one slice holding the whole
// SubscribeResponse, made once per event by the first stream to write it and
// shared by every other.
//
// A stream sends its initial metadata once its subscription is registered
// with the hub: a client that waits for it knows that every event published
// afterwards reaches it.
//
// With subscriber tokens set, a stream needs "authorization: Bearer <token>"
// metadata naming one of them (else UNAUTHENTICATED) and reads only the
// types its token allows (else PERMISSION_DENIED); when the tokens change,
// every open stream is checked again and one whose token was removed or
// narrowed ends, with where to resume.
//
// Consumer groups (Consume and the group RPCs) are served by a
// groups::GroupService: one ServerBidiReactor per Consume stream, a member
// of its group, writing what the group hands it (one write in flight) and
// reading acks as they come. Without a manager every group RPC is
// FAILED_PRECONDITION. A group's token check is the filter's: creating a
// group narrows its filter as Subscribe does; using one needs a token that
// may read all of its filter.
#ifndef SERVICES_GRPC_EVENT_STREAM_SERVICE_H_
#define SERVICES_GRPC_EVENT_STREAM_SERVICE_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/server_callback.h>

#include <cstddef>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "convocore/webhooks/v1/event_stream_service.grpc.pb.h"
#include "services/auth/subscriber_tokens.h"
#include "services/groups/group_service.h"
#include "services/hub/event_hub.h"

namespace convocore::grpc_service {

namespace internal {
using Service = convocore::webhooks::v1::EventStreamService;
// Every method on the callback API; the two streams raw.
using EventStreamCallbackBase = Service::WithRawCallbackMethod_Subscribe<
    Service::WithRawCallbackMethod_Consume<
        Service::WithCallbackMethod_CreateConsumerGroup<
            Service::WithCallbackMethod_GetConsumerGroup<
                Service::WithCallbackMethod_ListConsumerGroups<
                    Service::WithCallbackMethod_DeleteConsumerGroup<
                        Service::WithCallbackMethod_SeekConsumerGroup<
                            Service::WithCallbackMethod_ListDeadLetters<
                                Service::WithCallbackMethod_ReplayDeadLetters<
                                    Service::WithCallbackMethod_DropDeadLetters<
                                        Service::Service>>>>>>>>>>;
}  // namespace internal

class EventStreamServiceImpl final : public internal::EventStreamCallbackBase {
 public:
  // `hub` and `groups` (null: no consumer groups) must outlive the service.
  explicit EventStreamServiceImpl(hub::EventHub* hub,
                                  groups::GroupService* groups = nullptr);
  // Ends every stream and waits for all reactors (StartShutdown(), then
  // WaitForReactors()).
  ~EventStreamServiceImpl() override;

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Subscribe(
      grpc::CallbackServerContext* context,
      const grpc::ByteBuffer* request) override;

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Consume(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* CreateConsumerGroup(
      grpc::CallbackServerContext* context,
      const convocore::webhooks::v1::CreateConsumerGroupRequest* request,
      convocore::webhooks::v1::CreateConsumerGroupResponse* response) override;
  grpc::ServerUnaryReactor* GetConsumerGroup(
      grpc::CallbackServerContext* context,
      const convocore::webhooks::v1::GetConsumerGroupRequest* request,
      convocore::webhooks::v1::GetConsumerGroupResponse* response) override;
  grpc::ServerUnaryReactor* ListConsumerGroups(
      grpc::CallbackServerContext* context,
      const convocore::webhooks::v1::ListConsumerGroupsRequest* request,
      convocore::webhooks::v1::ListConsumerGroupsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteConsumerGroup(
      grpc::CallbackServerContext* context,
      const convocore::webhooks::v1::DeleteConsumerGroupRequest* request,
      convocore::webhooks::v1::DeleteConsumerGroupResponse* response) override;
  grpc::ServerUnaryReactor* SeekConsumerGroup(
      grpc::CallbackServerContext* context,
      const convocore::webhooks::v1::SeekConsumerGroupRequest* request,
      convocore::webhooks::v1::SeekConsumerGroupResponse* response) override;
  grpc::ServerUnaryReactor* ListDeadLetters(
      grpc::CallbackServerContext* context,
      const convocore::webhooks::v1::ListDeadLettersRequest* request,
      convocore::webhooks::v1::ListDeadLettersResponse* response) override;
  grpc::ServerUnaryReactor* ReplayDeadLetters(
      grpc::CallbackServerContext* context,
      const convocore::webhooks::v1::ReplayDeadLettersRequest* request,
      convocore::webhooks::v1::ReplayDeadLettersResponse* response) override;
  grpc::ServerUnaryReactor* DropDeadLetters(
      grpc::CallbackServerContext* context,
      const convocore::webhooks::v1::DropDeadLettersRequest* request,
      convocore::webhooks::v1::DropDeadLettersResponse* response) override;

  // One heartbeat tick: every stream that has written nothing for
  // `idle_ticks` ticks and has no write in flight is sent a Heartbeat. One
  // serialized message is shared by all of them. Called by the server's
  // timer thread.
  void Tick(int idle_ticks);

  // Every open stream ends with UNAVAILABLE (after its write in flight, if
  // any) and new ones are refused the same way.
  void StartShutdown();
  // Blocks until every reactor has seen OnDone.
  void WaitForReactors();

  std::size_t open_streams() const;

  // Who may subscribe from now on; nullptr (the default) lets anyone. Open
  // streams are checked against `tokens` before this returns, and those it
  // no longer allows are ending.
  void SetSubscriberTokens(
      std::shared_ptr<const auth::SubscriberTokens> tokens);

 private:
  // What the registry asks of every stream's reactor.
  class StreamReactor {
   public:
    virtual ~StreamReactor() = default;
    // Ends the stream with UNAVAILABLE (after its write in flight).
    virtual void Stop() = 0;
    // Ends the stream if `tokens` no longer allow it.
    virtual void Reauthorize(const auth::SubscriberTokens& tokens) = 0;
    // `subscribe` or `consume` is the serialized heartbeat of its kind.
    virtual void Heartbeat(const grpc::ByteBuffer& subscribe,
                           const grpc::ByteBuffer& consume, int idle_ticks) = 0;
  };
  class SubscribeReactor;
  class ConsumeReactor;

  // Adds `reactor`; says whether the service is shutting down and which
  // tokens apply to it.
  void Register(StreamReactor* reactor, bool* shutting_down,
                std::shared_ptr<const auth::SubscriberTokens>* tokens);
  std::shared_ptr<const auth::SubscriberTokens> tokens() const;
  void Unregister(StreamReactor* reactor);
  // The caller's rights over groups (see the class comment), or why it has
  // none; FAILED_PRECONDITION without a group manager.
  absl::StatusOr<groups::GroupAuthorizer> GroupAccess(
      const grpc::CallbackServerContext& context) const;

  hub::EventHub* const hub_;
  groups::GroupService* const groups_;

  // Lock order: mu_, then a reactor's mutex.
  mutable absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<const auth::SubscriberTokens> tokens_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<StreamReactor*> reactors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace convocore::grpc_service

#endif  // SERVICES_GRPC_EVENT_STREAM_SERVICE_H_
