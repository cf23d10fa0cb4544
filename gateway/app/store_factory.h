// Opens the EventStore that --store names, and refills the de-duplication
// window from it, so that a webhook redelivered across a restart is still
// recognised. The one place that knows every kind of store.
#ifndef GATEWAY_APP_STORE_FACTORY_H_
#define GATEWAY_APP_STORE_FACTORY_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/app/options.h"
#include "gateway/core/deduplicator.h"
#include "services/hub/event_store.h"
#include "services/jetstream/jetstream_event_store.h"

namespace convocore::app {

struct OpenedStore {
  std::unique_ptr<hub::EventStore> store;
  // `store` itself when it is the JetStream store, which the gateway
  // publishes through and starts reading; null otherwise.
  jetstream::JetStreamEventStore* jetstream = nullptr;
};

// `options`' store, data_dir, durability, retention and jetstream select and
// configure it. For the disk store, the ids of the events received within
// the de-duplication window (dedup_window_events, dedup_window_age, before
// `now`) are restored into `deduplicator`; the JetStream store
// de-duplicates in the stream itself.
absl::StatusOr<OpenedStore> OpenEventStore(const GatewayOptions& options,
                                           gateway::Deduplicator* deduplicator,
                                           absl::Time now);

}  // namespace convocore::app

#endif  // GATEWAY_APP_STORE_FACTORY_H_
