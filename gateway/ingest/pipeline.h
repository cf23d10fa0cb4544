// The ingest pipeline: one webhook body, received at a time, becomes a
// stored event or a precise error. Pure logic over the core (translator,
// de-duplicator) and an EventSink (the hub in the binary); no HTTP here.
//
//   body -> Translate -> Deduplicator::Claim -> EventSink::Publish
//        -> ticket Complete / Fail -> {sequence, id, duplicate} or a status
//
// Asynchronous: the caller's thread translates and claims, and the outcome
// arrives through a callback once the event is durable, so that an HTTP
// thread never waits for the store's fsync and a group commit can hold every
// webhook that arrived meanwhile. Nor does it wait for a duplicate whose
// first delivery is still being stored: the duplicate is answered when the
// first one's outcome is known, from the thread that learns it - 200 with
// the first's sequence and "duplicate" once stored; if the first fails (or
// is dropped unstored), the duplicate gets the same 503, its copy not stored
// either (the de-duplicator forgets the id, so a later delivery is new).
//
// Errors keep the translator's codes (kInvalidArgument 400, kUnauthenticated
// 401, kResourceExhausted 413); every failure to store, or of the first
// delivery of a duplicate, is kUnavailable (503), so that the sender never
// gets a 200 for an event that was not stored.
//
// It also keeps the ingest metrics (see IngestMetrics below).
#ifndef GATEWAY_INGEST_PIPELINE_H_
#define GATEWAY_INGEST_PIPELINE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "convocore/webhooks/v1/events.pb.h"
#include "gateway/core/deduplicator.h"
#include "gateway/core/translator.h"
#include "gateway/metrics/registry.h"
#include "services/hub/event_hub.h"

namespace convocore::ingest {

// A sink's acknowledgement of one event.
struct SinkAck {
  std::uint64_t sequence = 0;
  // The sink already held this event (a replicated log's de-duplication:
  // another replica stored it first) under `sequence`.
  bool duplicate = false;
};
using SinkCallback = absl::AnyInvocable<void(absl::StatusOr<SinkAck>) &&>;

// Where accepted events go.
class EventSink {
 public:
  virtual ~EventSink() = default;
  // Calls `done` with the event's sequence once it is stored (durable per
  // the store's mode), or with an error when it is not, and then it is never
  // streamed. `done` may run before Publish() returns, or on another thread;
  // it must not block.
  virtual void Publish(convocore::webhooks::v1::Event event,
                       SinkCallback done) = 0;
};

struct IngestResult {
  std::uint64_t sequence = 0;
  std::string id;
  // The same webhook was already stored under `sequence`; not streamed
  // again.
  bool duplicate = false;
};

// Why a webhook was refused, for gateway_webhooks_rejected_total{reason}.
enum class Rejection {
  kInvalid,               // 400
  kUnauthenticated,       // 401
  kTooLarge,              // 413
  kUnsupportedMediaType,  // 415
  kNotReady,              // 503 before the gateway is ready
  kShuttingDown,          // 503 while draining
  kInternal,              // 500
};
std::string_view RejectionLabel(Rejection rejection);

// The webhook counters of the gateway, registered in a Registry:
//   gateway_webhooks_total{type,outcome}    outcome: accepted, duplicate,
//                                           failed (could not be stored)
//   gateway_webhooks_rejected_total{reason} see Rejection
//   gateway_unknown_fields_total{field}     keys the contract lacks
//   gateway_unknown_event_types_total{type} types the contract lacks
//   gateway_unknown_enum_values_total{field}
//   gateway_secret_redactions_total         the secret seen outside its field
//   gateway_ingest_latency_seconds          receipt to acknowledgement (200)
// Field and type names are the sender's: their series are bounded (extra
// names share the "_overflow" series) and cut to 128 bytes.
class IngestMetrics {
 public:
  enum class Outcome { kAccepted = 0, kDuplicate = 1, kFailed = 2 };

  explicit IngestMetrics(metrics::Registry& registry);

  void Count(convocore::webhooks::v1::EventType type, Outcome outcome);
  void Reject(Rejection rejection);
  void Observe(const gateway::Observations& observations,
               std::string_view raw_type);
  void ObserveLatency(absl::Duration latency);

  // The `type` label: the webhook's type string for a known type, "other"
  // for any type the contract does not know.
  static std::string_view TypeLabel(convocore::webhooks::v1::EventType type);

 private:
  // One slot per known EventType (1..15), then EVENT_TYPE_OTHER.
  static constexpr int kTypeSlots = 17;
  static int Slot(convocore::webhooks::v1::EventType type);

  std::array<std::array<metrics::Counter*, 3>, kTypeSlots> webhooks_{};
  std::array<metrics::Counter*, 7> rejected_{};
  metrics::CounterFamily& unknown_fields_;
  metrics::CounterFamily& unknown_types_;
  metrics::CounterFamily& unknown_enum_values_;
  metrics::Counter& secret_redactions_;
  metrics::Histogram& latency_;
};

class IngestPipeline {
 public:
  using Clock = std::function<absl::Time()>;
  using Callback = absl::AnyInvocable<void(absl::StatusOr<IngestResult>) &&>;

  // Every pointer must outlive the pipeline.
  IngestPipeline(const gateway::Translator* translator,
                 gateway::Deduplicator* deduplicator, EventSink* sink,
                 IngestMetrics* metrics, Clock clock = &absl::Now);

  // Thread-safe; called concurrently by every HTTP worker. `body` is read
  // before Ingest() returns. Calls `done` exactly once with the result: on
  // the calling thread for a webhook refused or a duplicate of a stored one,
  // otherwise on the sink's thread once the event (or, for a duplicate, its
  // first delivery) is stored or has failed. Never waits.
  void Ingest(std::string_view body, absl::Time receive_time, Callback done);

 private:
  // Answers a duplicate with its first delivery's outcome.
  void AnswerDuplicate(convocore::webhooks::v1::EventType type,
                       absl::Time receive_time, std::string_view type_string,
                       IngestResult result,
                       absl::StatusOr<std::uint64_t> sequence, Callback done);
  // Logs when storing starts failing and when it works again, rather than
  // once per webhook.
  void NoteStoreOutcome(const absl::Status& status);

  const gateway::Translator* const translator_;
  gateway::Deduplicator* const deduplicator_;
  EventSink* const sink_;
  IngestMetrics* const metrics_;
  const Clock clock_;
  std::atomic<bool> store_failing_{false};
};

}  // namespace convocore::ingest

#endif  // GATEWAY_INGEST_PIPELINE_H_
