#include "services/store/sqlite.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace convocore::store::sqlite {

absl::Status ToStatus(int rc, absl::string_view context, sqlite3* db) {
  if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) {
    return absl::OkStatus();
  }
  // sqlite3_errmsg() describes the most recent failure on `db`, which is the
  // one being converted; without a connection only the code is known.
  const std::string message =
      absl::StrCat(context, ": ", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc),
                   " (sqlite code ", rc, ")");
  switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_NOMEM:
    case SQLITE_AUTH:
      return absl::UnavailableError(message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(message);
    case SQLITE_CONSTRAINT:
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

void Statement::BindInt64(int index, std::int64_t value) {
  sqlite3_bind_int64(stmt_.get(), index, value);
}

void Statement::BindText(int index, absl::string_view text) {
  sqlite3_bind_text64(stmt_.get(), index, text.data(), text.size(),
                      SQLITE_STATIC, SQLITE_UTF8);
}

void Statement::BindBlob(int index, absl::string_view bytes) {
  // A zero-length blob must not bind as NULL (a null data pointer does).
  sqlite3_bind_blob64(stmt_.get(), index, bytes.empty() ? "" : bytes.data(),
                      bytes.size(), SQLITE_STATIC);
}

absl::StatusOr<bool> Statement::Step() {
  const int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return ToStatus(rc, sqlite3_sql(stmt_.get()), db_);
}

absl::Status Statement::Run() {
  for (;;) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

void Statement::Reset() {
  sqlite3_reset(stmt_.get());
  sqlite3_clear_bindings(stmt_.get());
}

std::int64_t Statement::ColumnInt64(int column) const {
  return sqlite3_column_int64(stmt_.get(), column);
}

bool Statement::ColumnIsNull(int column) const {
  return sqlite3_column_type(stmt_.get(), column) == SQLITE_NULL;
}

absl::string_view Statement::ColumnBytes(int column) const {
  const void* data = sqlite3_column_blob(stmt_.get(), column);
  const int size = sqlite3_column_bytes(stmt_.get(), column);
  if (data == nullptr || size <= 0) return {};
  return absl::string_view(static_cast<const char*>(data),
                           static_cast<std::size_t>(size));
}

absl::StatusOr<Connection> Connection::Open(const std::string& path,
                                            int flags) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &raw,
      flags | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE | SQLITE_OPEN_URI,
      nullptr);
  Connection connection(raw);  // closes `raw` on every path below
  if (rc != SQLITE_OK) {
    return ToStatus(rc, absl::StrCat("open ", path), raw);
  }
  sqlite3_extended_result_codes(raw, 1);
  return connection;
}

absl::Status Connection::Exec(const char* sql) {
  const int rc = sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr);
  return ToStatus(rc, sql, db_.get());
}

absl::StatusOr<Statement> Connection::Prepare(absl::string_view sql) {
  sqlite3_stmt* raw = nullptr;
  const int rc =
      sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                         SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(raw);
    return ToStatus(rc, sql, db_.get());
  }
  return Statement(raw, db_.get());
}

}  // namespace convocore::store::sqlite
