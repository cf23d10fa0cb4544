// The POSIX calls the event log makes, each checked: a failure comes back as
// an absl::Status whose message names the call's purpose, the file's path
// and errno's text. kNotFound for ENOENT (callers may expect a file to be
// absent), kFailedPrecondition for a lock held elsewhere, kDataLoss for a
// file shorter than what the log wrote to it, kUnavailable otherwise: the
// disk or the directory cannot be used now.
#ifndef SERVICES_STORE_POSIX_FILE_H_
#define SERVICES_STORE_POSIX_FILE_H_

#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/store/scoped_fd.h"

namespace convocore::store::posix {

// The status for errno value `error` from trying to `action` `path`
// ("cannot <action> <path>: <strerror>").
absl::Status ErrnoError(int error, absl::string_view action,
                        absl::string_view path);

// open(2) with O_CLOEXEC added.
absl::StatusOr<ScopedFd> Open(const std::string& path, int flags,
                              mode_t mode = 0);
// fcntl(F_DUPFD_CLOEXEC): a second descriptor of the same open file.
absl::StatusOr<ScopedFd> Duplicate(int fd, absl::string_view path);
// flock(LOCK_EX | LOCK_NB); kFailedPrecondition when another holds it.
absl::Status LockExclusive(int fd, absl::string_view path);

// pwrite(2) until all of `bytes` is at `offset`.
absl::Status WriteAll(int fd, absl::string_view bytes, std::uint64_t offset,
                      absl::string_view path);
// pread(2) until `size` bytes from `offset` are in `out`; kDataLoss when the
// file ends first.
absl::Status ReadAll(int fd, char* out, std::size_t size, std::uint64_t offset,
                     absl::string_view path);
// The whole file (as long as fstat says it is).
absl::StatusOr<std::string> ReadWhole(int fd, absl::string_view path);

// fdatasync(2): the file's data, and the metadata needed to read it back.
absl::Status SyncData(int fd, absl::string_view path);
// fsync(2) of a directory: the entries created, renamed or removed in it.
absl::Status SyncDirectory(int fd, absl::string_view path);
// sync_file_range(2) with WAIT_BEFORE | WRITE | WAIT_AFTER: starts and waits
// for the write-back of one range, without the metadata an fdatasync writes.
absl::Status WriteBackRange(int fd, std::uint64_t offset, std::uint64_t size,
                            absl::string_view path);
// ftruncate(2).
absl::Status Truncate(int fd, std::uint64_t size, absl::string_view path);

// unlink(2); kNotFound when it is already gone.
absl::Status Unlink(const std::string& path);
// rename(2).
absl::Status Rename(const std::string& from, const std::string& to);
// fstat(2) / stat(2).
absl::StatusOr<struct stat> StatFd(int fd, absl::string_view path);
absl::StatusOr<struct stat> StatPath(const std::string& path);

}  // namespace convocore::store::posix

#endif  // SERVICES_STORE_POSIX_FILE_H_
