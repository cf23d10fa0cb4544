// Reads the event log that earlier versions of the gateway kept in SQLite
// (events.db in WAL mode), so that the segment log can import it on its
// first open: an upgrade keeps every retained event and the high-water mark
// that resuming subscribers rely on.
#ifndef SERVICES_STORE_LEGACY_SQLITE_LOG_H_
#define SERVICES_STORE_LEGACY_SQLITE_LOG_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/hub/event_store.h"

namespace convocore::store {

// The legacy database's file name, and the suffixes of SQLite's companions.
inline constexpr char kLegacyDbFile[] = "events.db";
inline constexpr const char* kLegacyDbSuffixes[] = {"", "-wal", "-shm",
                                                    "-journal"};

struct LegacyLogSummary {
  std::uint64_t last_sequence = 0;  // the high-water mark, trimmed or not
  std::uint64_t trimmed_events_total = 0;
};

// Hands every event of the SQLite log at `db_path` to `on_batch`, oldest
// first, at most `batch_size` at a time, stopping at the first error
// `on_batch` returns. Opens the database for writing, because a log left by
// a crash needs SQLite's recovery. kDataLoss when it is not a readable
// event log; kFailedPrecondition when its schema is newer than this reader.
absl::StatusOr<LegacyLogSummary> ReadLegacySqliteLog(
    const std::string& db_path, std::size_t batch_size,
    absl::FunctionRef<absl::Status(std::vector<hub::StoredEvent>)> on_batch);

}  // namespace convocore::store

#endif  // SERVICES_STORE_LEGACY_SQLITE_LOG_H_
