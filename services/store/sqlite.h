// A thin RAII layer over SQLite's C API for the durable event store: owning
// handles for a connection and a prepared statement, and the translation of
// SQLite result codes into absl::Status. Nothing here knows about events.
#ifndef SERVICES_STORE_SQLITE_H_
#define SERVICES_STORE_SQLITE_H_

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace convocore::store::sqlite {

// The status for SQLite result code `rc` (an extended code), with `context`
// and SQLite's message. Codes meaning "cannot write or open now" (full disk,
// read-only, I/O error, permission, busy) map to kUnavailable, corruption to
// kDataLoss, the rest to kInternal.
absl::Status ToStatus(int rc, absl::string_view context, sqlite3* db = nullptr);

// A prepared statement, reset and unbound by Reset() so that it can be kept
// and reused. Bind indexes are 1-based as in SQLite; column indexes 0-based.
class Statement {
 public:
  Statement() = default;
  Statement(Statement&&) = default;
  Statement& operator=(Statement&&) = default;

  void BindInt64(int index, std::int64_t value);
  // The bytes must stay alive until the statement is Reset().
  void BindText(int index, absl::string_view text);
  void BindBlob(int index, absl::string_view bytes);

  // Steps once: true when a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Steps to completion, for statements that return no rows.
  absl::Status Run();
  void Reset();

  std::int64_t ColumnInt64(int column) const;
  bool ColumnIsNull(int column) const;
  // Valid until the next Step() or Reset().
  absl::string_view ColumnBytes(int column) const;

 private:
  friend class Connection;
  struct Finalizer {
    void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
  };
  Statement(sqlite3_stmt* stmt, sqlite3* db) : stmt_(stmt), db_(db) {}

  std::unique_ptr<sqlite3_stmt, Finalizer> stmt_;
  sqlite3* db_ = nullptr;
};

// One connection. Not thread-safe: the owner serialises its use (connections
// are opened in SQLite's multi-thread mode).
class Connection {
 public:
  // `flags` are SQLite's SQLITE_OPEN_* flags; `path` may be a file: URI.
  static absl::StatusOr<Connection> Open(const std::string& path, int flags);

  Connection(Connection&&) = default;
  Connection& operator=(Connection&&) = default;

  // Runs one or more statements that return no rows.
  absl::Status Exec(const char* sql);
  absl::StatusOr<Statement> Prepare(absl::string_view sql);

  sqlite3* get() const { return db_.get(); }

 private:
  struct Closer {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
  };
  explicit Connection(sqlite3* db) : db_(db) {}

  std::unique_ptr<sqlite3, Closer> db_;
};

}  // namespace convocore::store::sqlite

#endif  // SERVICES_STORE_SQLITE_H_
