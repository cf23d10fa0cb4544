// The EventSink of `--store=jetstream`: publishes each event to the shared
// JetStream stream, on the subject of its type, with its id as Nats-Msg-Id,
// and acknowledges it with JetStream's PubAck. The event reaches this
// gateway's subscribers (and every other replica's) when the stream's reader
// reads it back, not from here.
#ifndef GATEWAY_INGEST_JETSTREAM_SINK_H_
#define GATEWAY_INGEST_JETSTREAM_SINK_H_

#include <array>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "gateway/ingest/pipeline.h"
#include "services/jetstream/jetstream_event_store.h"
#include "services/jetstream/stream_settings.h"

namespace convocore::ingest {

class JetStreamSink final : public EventSink {
 public:
  // `store` must outlive the sink.
  JetStreamSink(jetstream::JetStreamEventStore* store,
                absl::string_view subject_prefix)
      : store_(store) {
    for (int value = 0; value < kSubjects; ++value) {
      const auto type = static_cast<convocore::webhooks::v1::EventType>(value);
      const std::string_view label = IngestMetrics::TypeLabel(
          value == kSubjects - 1 ? convocore::webhooks::v1::EVENT_TYPE_OTHER
                                 : type);
      subjects_[value] = jetstream::SubjectFor(
          subject_prefix, absl::string_view(label.data(), label.size()));
    }
  }

  void Publish(convocore::webhooks::v1::Event event,
               SinkCallback done) override {
    // The stream assigns the sequence; a reader prefixes it (hub's
    // WithSequence).
    event.clear_sequence();
    std::string payload;
    if (!event.SerializeToString(&payload)) {
      std::move(done)(
          absl::InvalidArgumentError("the event cannot be serialized"));
      return;
    }
    store_->Publish(
        subjects_[Slot(event.event_type())], event.id(), payload,
        [done = std::move(done)](
            absl::StatusOr<jetstream::PublishAck> ack) mutable {
          if (!ack.ok()) {
            std::move(done)(ack.status());
            return;
          }
          std::move(done)(
              SinkAck{.sequence = ack->sequence, .duplicate = ack->duplicate});
        });
  }

 private:
  // One subject per known type (1..15), then "other" for every type the
  // contract does not know.
  static constexpr int kSubjects = 17;
  static int Slot(convocore::webhooks::v1::EventType type) {
    return type >= 1 && type <= 15 ? type : kSubjects - 1;
  }

  jetstream::JetStreamEventStore* const store_;
  std::array<std::string, kSubjects> subjects_;
};

}  // namespace convocore::ingest

#endif  // GATEWAY_INGEST_JETSTREAM_SINK_H_
