// The EventSink of the binary: the event hub, which sequences, stores (with
// group commit) and fans out.
#ifndef GATEWAY_INGEST_HUB_SINK_H_
#define GATEWAY_INGEST_HUB_SINK_H_

#include <cstdint>
#include <utility>

#include "gateway/ingest/pipeline.h"
#include "services/hub/event_hub.h"

namespace convocore::ingest {

class HubSink final : public EventSink {
 public:
  // `hub` must outlive the sink.
  explicit HubSink(hub::EventHub* hub) : hub_(hub) {}

  void Publish(convocore::webhooks::v1::Event event,
               SinkCallback done) override {
    hub_->PublishAsync(std::move(event),
                       [done = std::move(done)](
                           absl::StatusOr<std::uint64_t> sequence) mutable {
                         if (!sequence.ok()) {
                           std::move(done)(sequence.status());
                           return;
                         }
                         std::move(done)(SinkAck{.sequence = *sequence});
                       });
  }

 private:
  hub::EventHub* const hub_;
};

}  // namespace convocore::ingest

#endif  // GATEWAY_INGEST_HUB_SINK_H_
