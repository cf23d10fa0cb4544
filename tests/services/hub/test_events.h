// Builders of Events and a polling SubscriptionSink for the hub and gRPC
// service tests.
#ifndef TESTS_SERVICES_HUB_TEST_EVENTS_H_
#define TESTS_SERVICES_HUB_TEST_EVENTS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "convocore/webhooks/v1/events.pb.h"
#include "services/hub/event_hub.h"

namespace convocore::hub::testing {

namespace v1 = convocore::webhooks::v1;

// An event of `type` whose payload carries `agent_id` and `channel` where
// that payload kind has them; `padding` bytes of message content make it
// bigger.
inline v1::Event MakeEvent(v1::EventType type, const std::string& agent_id = "",
                           v1::Channel channel = v1::CHANNEL_UNSPECIFIED,
                           std::size_t padding = 0) {
  v1::Event event;
  event.set_event_type(type);
  event.set_id(absl::StrCat("id-", type, "-", agent_id, "-", channel));
  switch (type) {
    case v1::EVENT_TYPE_MESSAGE_RECEIVED: {
      auto* p = event.mutable_message_received();
      p->set_agent_id(agent_id);
      p->set_channel(channel);
      p->set_message_content(std::string(padding, 'x'));
      event.set_type_raw("message_received");
      break;
    }
    case v1::EVENT_TYPE_LEAD_CAPTURED: {
      auto* p = event.mutable_lead_captured();
      p->set_agent_id(agent_id);
      p->set_channel(channel);
      event.set_type_raw("lead_captured");
      break;
    }
    case v1::EVENT_TYPE_AGENT_CREATED:
      event.mutable_agent_created()->set_agent_id(agent_id);
      event.set_type_raw("agent_created");
      break;
    case v1::EVENT_TYPE_ORGANISATION_CREATED:
      event.mutable_organisation_created()->set_organisation_id("org_1");
      event.set_type_raw("organisation_created");
      break;
    case v1::EVENT_TYPE_OTHER: {
      event.set_other_json(
          agent_id.empty() ? "{}"
                           : absl::StrCat(R"({"agentId":")", agent_id, R"("})"));
      event.set_type_raw("something_new");
      break;
    }
    default:
      event.mutable_webhook_test()->set_message("test");
      event.set_type_raw("webhook_test");
      break;
  }
  return event;
}

// Parses delivered bytes; a test failure if they do not parse.
inline v1::Event Parse(const Delivery& delivery) {
  v1::Event event;
  event.ParseFromString(*delivery.event_bytes);
  return event;
}

// A sink that a test thread drains with Next(), waiting for OnReady() with a
// deadline.
class PollingSink : public SubscriptionSink {
 public:
  void OnReady() override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    ready_ = true;
  }

  // Waits until OnReady() was called since the last call; false on timeout.
  bool WaitReady(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    const bool ok = mu_.AwaitWithTimeout(absl::Condition(&ready_), timeout);
    ready_ = false;
    return ok;
  }

 private:
  absl::Mutex mu_;
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
};

struct Received {
  std::vector<std::shared_ptr<const Delivery>> deliveries;
  std::optional<absl::Status> end;  // set once the subscription ended

  std::vector<std::uint64_t> Sequences() const {
    std::vector<std::uint64_t> out;
    for (const auto& d : deliveries) out.push_back(d->sequence);
    return out;
  }
};

// Takes everything from `subscription` until `count` deliveries were
// received, the subscription ended, or `timeout` passed.
inline void Drain(Subscription& subscription, PollingSink& sink,
                  Received* received, std::size_t count,
                  absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (received->deliveries.size() < count && !received->end) {
    auto next = subscription.Next();
    if (!next.ok()) {
      received->end = next.status();
      return;
    }
    if (*next != nullptr) {
      received->deliveries.push_back(*std::move(next));
      continue;
    }
    if (!sink.WaitReady(deadline - absl::Now())) return;
  }
}

}  // namespace convocore::hub::testing

#endif  // TESTS_SERVICES_HUB_TEST_EVENTS_H_
