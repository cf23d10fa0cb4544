#include "gateway/ingest/pipeline.h"

#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gateway/log/logger.h"

namespace convocore::ingest {
namespace {

using ::convocore::webhooks::v1::EventType;

constexpr std::string_view kOutcomeLabels[] = {"accepted", "duplicate",
                                               "failed"};
constexpr Rejection kRejections[] = {
    Rejection::kInvalid,  Rejection::kUnauthenticated,
    Rejection::kTooLarge, Rejection::kUnsupportedMediaType,
    Rejection::kNotReady, Rejection::kShuttingDown,
    Rejection::kInternal,
};

// Sender-controlled names: a few hundred distinct ones at most.
constexpr metrics::FamilyOptions kSenderNames{.max_series = 200,
                                              .max_label_value_bytes = 128};

Rejection RejectionFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return Rejection::kInvalid;
    case absl::StatusCode::kUnauthenticated:
      return Rejection::kUnauthenticated;
    case absl::StatusCode::kResourceExhausted:
      return Rejection::kTooLarge;
    default:
      return Rejection::kInternal;
  }
}

// "message_received" for EVENT_TYPE_MESSAGE_RECEIVED.
std::string TypeString(EventType type) {
  constexpr absl::string_view kPrefix = "EVENT_TYPE_";
  std::string name = convocore::webhooks::v1::EventType_Name(type);
  if (absl::StartsWith(name, kPrefix)) name.erase(0, kPrefix.size());
  return absl::AsciiStrToLower(name);
}

}  // namespace

std::string_view RejectionLabel(Rejection rejection) {
  switch (rejection) {
    case Rejection::kInvalid:
      return "invalid";
    case Rejection::kUnauthenticated:
      return "unauthenticated";
    case Rejection::kTooLarge:
      return "too_large";
    case Rejection::kUnsupportedMediaType:
      return "unsupported_media_type";
    case Rejection::kNotReady:
      return "not_ready";
    case Rejection::kShuttingDown:
      return "shutting_down";
    case Rejection::kInternal:
      return "internal";
  }
  return "internal";
}

int IngestMetrics::Slot(EventType type) {
  const int value = static_cast<int>(type);
  if (value >= 1 && value <= 15) return value;
  return kTypeSlots - 1;  // EVENT_TYPE_OTHER, and anything unexpected
}

std::string_view IngestMetrics::TypeLabel(EventType type) {
  static const auto* const kLabels = [] {
    auto* labels = new std::array<std::string, kTypeSlots>();
    for (int value = 1; value <= 15; ++value) {
      (*labels)[value] = TypeString(static_cast<EventType>(value));
    }
    (*labels)[kTypeSlots - 1] = "other";
    return labels;
  }();
  return (*kLabels)[Slot(type)];
}

IngestMetrics::IngestMetrics(metrics::Registry& registry)
    : unknown_fields_(registry.AddCounter(
          "gateway_unknown_fields_total",
          "Webhook keys the contract does not know (kept in the event's "
          "extras), by JSON path.",
          {"field"}, kSenderNames)),
      unknown_types_(registry.AddCounter(
          "gateway_unknown_event_types_total",
          "Webhooks whose type the contract does not know (streamed as "
          "EVENT_TYPE_OTHER), by type as sent.",
          {"type"}, kSenderNames)),
      unknown_enum_values_(registry.AddCounter(
          "gateway_unknown_enum_values_total",
          "Enum values the spec does not list (kept verbatim), by JSON path.",
          {"field"}, kSenderNames)),
      secret_redactions_(
          registry
              .AddCounter("gateway_secret_redactions_total",
                          "Webhooks that carried the workspace secret "
                          "outside its field (redacted there).")
              .Get()),
      latency_(registry
                   .AddHistogram("gateway_ingest_latency_seconds",
                                 "From the first byte of a webhook to its "
                                 "acknowledgement (accepted or duplicate).",
                                 metrics::LatencyBuckets())
                   .Get()) {
  metrics::CounterFamily& webhooks = registry.AddCounter(
      "gateway_webhooks_total",
      "Webhooks translated, by type (\"other\" for types the contract does "
      "not know) and outcome: accepted (stored and streamed), duplicate "
      "(acknowledged, not streamed again), failed (could not be stored; "
      "503).",
      {"type", "outcome"});
  for (int slot = 1; slot < kTypeSlots; ++slot) {
    const EventType type = slot == kTypeSlots - 1
                               ? convocore::webhooks::v1::EVENT_TYPE_OTHER
                               : static_cast<EventType>(slot);
    for (int outcome = 0; outcome < 3; ++outcome) {
      webhooks_[slot][outcome] =
          &webhooks.WithLabels({TypeLabel(type), kOutcomeLabels[outcome]});
    }
  }
  metrics::CounterFamily& rejected = registry.AddCounter(
      "gateway_webhooks_rejected_total",
      "Webhooks refused before they could be stored, by reason.", {"reason"});
  for (Rejection rejection : kRejections) {
    rejected_[static_cast<int>(rejection)] =
        &rejected.WithLabels({RejectionLabel(rejection)});
  }
}

void IngestMetrics::Count(EventType type, Outcome outcome) {
  webhooks_[Slot(type)][static_cast<int>(outcome)]->Increment();
}

void IngestMetrics::Reject(Rejection rejection) {
  rejected_[static_cast<int>(rejection)]->Increment();
}

void IngestMetrics::Observe(const gateway::Observations& observations,
                            std::string_view raw_type) {
  if (observations.unknown_type) {
    unknown_types_.WithLabels({raw_type}).Increment();
  }
  for (const std::string& field : observations.unknown_fields) {
    unknown_fields_.WithLabels({field}).Increment();
  }
  for (const std::string& field : observations.unknown_enum_values) {
    unknown_enum_values_.WithLabels({field}).Increment();
  }
  if (observations.secret_redacted) secret_redactions_.Increment();
}

void IngestMetrics::ObserveLatency(absl::Duration latency) {
  latency_.Observe(absl::ToDoubleSeconds(latency));
}

IngestPipeline::IngestPipeline(const gateway::Translator* translator,
                               gateway::Deduplicator* deduplicator,
                               EventSink* sink, IngestMetrics* metrics,
                               Clock clock)
    : translator_(translator),
      deduplicator_(deduplicator),
      sink_(sink),
      metrics_(metrics),
      clock_(std::move(clock)) {}

void IngestPipeline::Ingest(std::string_view body, absl::Time receive_time,
                            Callback done) {
  absl::StatusOr<gateway::Translation> translation =
      translator_->Translate(body, receive_time);
  if (!translation.ok()) {
    metrics_->Reject(RejectionFor(translation.status()));
    // The message may quote a value of the payload: debug only.
    log::Debug("webhook rejected", {{"status", translation.status()}});
    std::move(done)(translation.status());
    return;
  }
  convocore::webhooks::v1::Event& event = translation->event;
  const EventType type = event.event_type();
  metrics_->Observe(translation->observations, event.type_raw());

  IngestResult result;
  result.id = event.id();
  gateway::ClaimTicket ticket = deduplicator_->Claim(result.id, receive_time);
  if (!ticket.is_new()) {
    // A duplicate: answered with the first delivery's sequence once that is
    // stored (at once if it already is), with 503 if it fails. Nothing
    // waits meanwhile.
    std::string type_string =
        log::Enabled(log::Level::kDebug) ? event.type_raw() : std::string();
    std::move(ticket).WhenFirstSettled(
        [this, type, receive_time, type_string = std::move(type_string),
         result = std::move(result), done = std::move(done)](
            absl::StatusOr<std::uint64_t> sequence) mutable {
          AnswerDuplicate(type, receive_time, type_string, std::move(result),
                          std::move(sequence), std::move(done));
        });
    return;
  }
  // The fields of a debug log cost allocations per webhook: only made when
  // they are written.
  const bool debug = log::Enabled(log::Level::kDebug);
  std::string type_string = debug ? event.type_raw() : std::string();
  sink_->Publish(
      std::move(event),
      [this, type, receive_time, debug, type_string = std::move(type_string),
       result = std::move(result), ticket = std::move(ticket),
       done = std::move(done)](absl::StatusOr<SinkAck> ack) mutable {
        NoteStoreOutcome(ack.status());
        if (!ack.ok()) {
          absl::Status error = absl::UnavailableError(absl::StrCat(
              "the event could not be stored: ", ack.status().message()));
          ticket.Fail(error);
          metrics_->Count(type, IngestMetrics::Outcome::kFailed);
          std::move(done)(std::move(error));
          return;
        }
        ticket.Complete(ack->sequence);
        result.sequence = ack->sequence;
        result.duplicate = ack->duplicate;
        metrics_->Count(type, ack->duplicate
                                  ? IngestMetrics::Outcome::kDuplicate
                                  : IngestMetrics::Outcome::kAccepted);
        metrics_->ObserveLatency(clock_() - receive_time);
        if (debug) {
          log::Debug(ack->duplicate ? "duplicate webhook" : "webhook accepted",
                     {{"sequence", result.sequence},
                      {"id", result.id},
                      {"type", type_string}});
        }
        std::move(done)(std::move(result));
      });
}

void IngestPipeline::AnswerDuplicate(EventType type, absl::Time receive_time,
                                     std::string_view type_string,
                                     IngestResult result,
                                     absl::StatusOr<std::uint64_t> sequence,
                                     Callback done) {
  if (!sequence.ok()) {
    // The first delivery failed to be stored or was dropped: this copy is
    // not stored either.
    metrics_->Count(type, IngestMetrics::Outcome::kFailed);
    std::move(done)(absl::UnavailableError(absl::StrCat(
        "the first delivery of this webhook could not be stored: ",
        sequence.status().message())));
    return;
  }
  result.sequence = *sequence;
  result.duplicate = true;
  metrics_->Count(type, IngestMetrics::Outcome::kDuplicate);
  metrics_->ObserveLatency(clock_() - receive_time);
  if (log::Enabled(log::Level::kDebug)) {
    log::Debug("duplicate webhook", {{"id", result.id},
                                     {"sequence", result.sequence},
                                     {"type", type_string}});
  }
  std::move(done)(std::move(result));
}

void IngestPipeline::NoteStoreOutcome(const absl::Status& status) {
  const bool failing = !status.ok();
  if (store_failing_.exchange(failing) == failing) return;
  if (failing) {
    log::Error("events cannot be stored; webhooks get 503",
               {{"status", status}});
  } else {
    log::Info("events are stored again");
  }
}

}  // namespace convocore::ingest
