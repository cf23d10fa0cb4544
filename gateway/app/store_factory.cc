#include "gateway/app/store_factory.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "gateway/log/logger.h"
#include "services/hub/in_memory_event_store.h"
#include "services/store/disk_event_store.h"

namespace convocore::app {

absl::StatusOr<OpenedStore> OpenEventStore(const GatewayOptions& options,
                                           gateway::Deduplicator* deduplicator,
                                           absl::Time now) {
  switch (options.store) {
    case StoreKind::kMemory:
      // Nothing survives a restart, so there is nothing to restore.
      return OpenedStore{
          std::make_unique<hub::InMemoryEventStore>(options.retention)};
    case StoreKind::kJetStream: {
      absl::StatusOr<std::unique_ptr<jetstream::JetStreamEventStore>> js =
          jetstream::JetStreamEventStore::Open(options.jetstream);
      if (!js.ok()) {
        return absl::Status(js.status().code(),
                            absl::StrCat("cannot use the JetStream stream ",
                                         options.jetstream.stream.stream, ": ",
                                         js.status().message()));
      }
      const hub::StoreStats stats = (*js)->Stats();
      log::Info("JetStream stream ready",
                {{"stream", options.jetstream.stream.stream},
                 {"subjects",
                  absl::StrCat(options.jetstream.stream.subject_prefix, ".>")},
                 {"replicas", options.jetstream.stream.replicas},
                 {"last_sequence", stats.last_sequence},
                 {"retained_events", stats.retained_events}});
      OpenedStore opened;
      opened.jetstream = js->get();
      opened.store = *std::move(js);
      return opened;
    }
    case StoreKind::kDisk: {
      absl::StatusOr<std::unique_ptr<store::DiskEventStore>> disk =
          store::DiskEventStore::Open({.data_dir = options.data_dir,
                                       .retention = options.retention,
                                       .durability = options.durability});
      if (!disk.ok()) {
        return absl::Status(
            disk.status().code(),
            absl::StrCat("cannot open the event log in --data_dir ",
                         options.data_dir, ": ", disk.status().message()));
      }
      std::size_t restored = 0;
      absl::Status walked = store::ForEachRecentId(
          **disk, options.dedup_window_events, now - options.dedup_window_age,
          [&](const store::StoredEventId& record) {
            deduplicator->Restore(record.id, record.sequence,
                                  record.receive_time);
            ++restored;
          });
      if (!walked.ok()) {
        return absl::Status(
            walked.code(),
            absl::StrCat("cannot read the de-duplication window from ",
                         options.data_dir, ": ", walked.message()));
      }
      log::Info("event log opened",
                {{"data_dir", options.data_dir},
                 {"durability",
                  std::string(store::DurabilityName(options.durability))},
                 {"last_sequence", (*disk)->Stats().last_sequence},
                 {"dedup_ids_restored", restored},
                 {"torn_tail_bytes_discarded", (*disk)->DiscardedTailBytes()}});
      if ((*disk)->DiscardedDamagedMeta()) {
        log::Warning(
            "the event log's trim record (log.meta) was damaged and is "
            "rebuilt: retention trimmed again from its bounds",
            {{"data_dir", options.data_dir}});
      }
      return OpenedStore{std::move(*disk)};
    }
  }
  return absl::InvalidArgumentError("unknown store");
}

}  // namespace convocore::app
