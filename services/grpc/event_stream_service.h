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
#include "services/hub/event_hub.h"

namespace convocore::grpc_service {

class EventStreamServiceImpl final
    : public convocore::webhooks::v1::EventStreamService::
          WithRawCallbackMethod_Subscribe<
              convocore::webhooks::v1::EventStreamService::Service> {
 public:
  // `hub` must outlive the service.
  explicit EventStreamServiceImpl(hub::EventHub* hub);
  // Ends every stream and waits for all reactors (StartShutdown(), then
  // WaitForReactors()).
  ~EventStreamServiceImpl() override;

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Subscribe(
      grpc::CallbackServerContext* context,
      const grpc::ByteBuffer* request) override;

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
  class SubscribeReactor;

  // Adds `reactor`; says whether the service is shutting down and which
  // tokens apply to it.
  void Register(SubscribeReactor* reactor, bool* shutting_down,
                std::shared_ptr<const auth::SubscriberTokens>* tokens);
  std::shared_ptr<const auth::SubscriberTokens> tokens() const;
  void Unregister(SubscribeReactor* reactor);

  hub::EventHub* const hub_;

  // Lock order: mu_, then a reactor's mutex.
  mutable absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<const auth::SubscriberTokens> tokens_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<SubscribeReactor*> reactors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace convocore::grpc_service

#endif  // SERVICES_GRPC_EVENT_STREAM_SERVICE_H_
