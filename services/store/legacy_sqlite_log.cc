#include "services/store/legacy_sqlite_log.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "services/store/sqlite.h"

namespace convocore::store {
namespace {

// The last schema the SQLite store wrote.
constexpr std::int64_t kLegacySchemaVersion = 1;

absl::StatusOr<std::int64_t> ReadInt(sqlite::Connection& db, const char* sql) {
  absl::StatusOr<sqlite::Statement> stmt = db.Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  absl::StatusOr<bool> row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row || stmt->ColumnIsNull(0)) return 0;
  return stmt->ColumnInt64(0);
}

}  // namespace

absl::StatusOr<LegacyLogSummary> ReadLegacySqliteLog(
    const std::string& db_path, std::size_t batch_size,
    absl::FunctionRef<absl::Status(std::vector<hub::StoredEvent>)> on_batch) {
  absl::StatusOr<sqlite::Connection> db =
      sqlite::Connection::Open(db_path, SQLITE_OPEN_READWRITE);
  if (!db.ok()) return db.status();

  absl::StatusOr<std::int64_t> tables =
      ReadInt(*db,
              "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND "
              "name IN ('events', 'meta')");
  if (!tables.ok()) return tables.status();
  if (*tables == 0) return LegacyLogSummary{};  // created, never written
  if (*tables != 2) {
    return absl::DataLossError(
        absl::StrCat(db_path, " is not an event log: tables are missing"));
  }
  absl::StatusOr<std::int64_t> version =
      ReadInt(*db, "SELECT value FROM meta WHERE key = 'schema_version'");
  if (!version.ok()) return version.status();
  if (*version > kLegacySchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        db_path, " has schema version ", *version,
        ", newer than this binary reads (", kLegacySchemaVersion, ")"));
  }
  absl::StatusOr<std::int64_t> high_water =
      ReadInt(*db, "SELECT value FROM meta WHERE key = 'last_sequence'");
  if (!high_water.ok()) return high_water.status();
  absl::StatusOr<std::int64_t> trimmed =
      ReadInt(*db, "SELECT value FROM meta WHERE key = 'trimmed_events_total'");
  if (!trimmed.ok()) return trimmed.status();

  absl::StatusOr<sqlite::Statement> select = db->Prepare(
      "SELECT sequence, receive_time_ns, id, event FROM events "
      "WHERE sequence > ?1 ORDER BY sequence LIMIT ?2");
  if (!select.ok()) return select.status();
  LegacyLogSummary summary{
      .last_sequence = static_cast<std::uint64_t>(*high_water),
      .trimmed_events_total = static_cast<std::uint64_t>(*trimmed),
  };
  std::int64_t after = 0;
  for (;;) {
    select->Reset();
    select->BindInt64(1, after);
    select->BindInt64(2, static_cast<std::int64_t>(batch_size));
    std::vector<hub::StoredEvent> batch;
    for (;;) {
      absl::StatusOr<bool> row = select->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      after = select->ColumnInt64(0);
      batch.push_back(hub::StoredEvent{
          .sequence = static_cast<std::uint64_t>(after),
          .receive_time = absl::FromUnixNanos(select->ColumnInt64(1)),
          .id = std::string(select->ColumnBytes(2)),
          .event_bytes =
              std::make_shared<const std::string>(select->ColumnBytes(3)),
      });
    }
    select->Reset();
    if (batch.empty()) break;
    summary.last_sequence =
        std::max(summary.last_sequence, batch.back().sequence);
    const bool last = batch.size() < batch_size;
    if (absl::Status status = on_batch(std::move(batch)); !status.ok()) {
      return status;
    }
    if (last) break;
  }
  return summary;
}

}  // namespace convocore::store
