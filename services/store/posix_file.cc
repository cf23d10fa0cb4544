#include "services/store/posix_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace convocore::store::posix {

absl::Status ErrnoError(int error, absl::string_view action,
                        absl::string_view path) {
  std::string message =
      absl::StrCat("cannot ", action, " ", path, ": ", std::strerror(error));
  switch (error) {
    case ENOENT:
      return absl::NotFoundError(std::move(message));
    default:
      return absl::UnavailableError(std::move(message));
  }
}

// Each function reads errno right after the call that set it: building a
// message allocates, and an allocation may change errno.

absl::StatusOr<ScopedFd> Open(const std::string& path, int flags,
                              mode_t mode) {
  const int fd = open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoError(errno, "open", path);
  return ScopedFd(fd);
}

absl::StatusOr<ScopedFd> Duplicate(int fd, absl::string_view path) {
  const int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return ErrnoError(errno, "duplicate the descriptor of", path);
  return ScopedFd(copy);
}

absl::Status LockExclusive(int fd, absl::string_view path) {
  if (flock(fd, LOCK_EX | LOCK_NB) == 0) return absl::OkStatus();
  const int error = errno;
  if (error == EWOULDBLOCK) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is in use by another process"));
  }
  return ErrnoError(error, "lock", path);
}

absl::Status WriteAll(int fd, absl::string_view bytes, std::uint64_t offset,
                      absl::string_view path) {
  while (!bytes.empty()) {
    const ssize_t written =
        pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (written < 0) {
      const int error = errno;
      if (error == EINTR) continue;
      return ErrnoError(error, "write", path);
    }
    bytes.remove_prefix(static_cast<std::size_t>(written));
    offset += static_cast<std::uint64_t>(written);
  }
  return absl::OkStatus();
}

absl::Status ReadAll(int fd, char* out, std::size_t size, std::uint64_t offset,
                     absl::string_view path) {
  while (size > 0) {
    const ssize_t got = pread(fd, out, size, static_cast<off_t>(offset));
    if (got < 0) {
      const int error = errno;
      if (error == EINTR) continue;
      return ErrnoError(error, "read", path);
    }
    if (got == 0) {
      return absl::DataLossError(
          absl::StrCat(path, " ends at ", offset, ", before its records do"));
    }
    out += got;
    size -= static_cast<std::size_t>(got);
    offset += static_cast<std::uint64_t>(got);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadWhole(int fd, absl::string_view path) {
  absl::StatusOr<struct stat> info = StatFd(fd, path);
  if (!info.ok()) return info.status();
  std::string content(static_cast<std::size_t>(info->st_size), '\0');
  if (absl::Status read = ReadAll(fd, content.data(), content.size(), 0, path);
      !read.ok()) {
    return read;
  }
  return content;
}

absl::Status SyncData(int fd, absl::string_view path) {
  if (fdatasync(fd) == 0) return absl::OkStatus();
  return ErrnoError(errno, "fsync", path);
}

absl::Status SyncDirectory(int fd, absl::string_view path) {
  if (fsync(fd) == 0) return absl::OkStatus();
  return ErrnoError(errno, "fsync the directory", path);
}

absl::Status WriteBackRange(int fd, std::uint64_t offset, std::uint64_t size,
                            absl::string_view path) {
  if (sync_file_range(fd, static_cast<off_t>(offset), static_cast<off_t>(size),
                      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                          SYNC_FILE_RANGE_WAIT_AFTER) == 0) {
    return absl::OkStatus();
  }
  return ErrnoError(errno, "write back a range of", path);
}

absl::Status Truncate(int fd, std::uint64_t size, absl::string_view path) {
  if (ftruncate(fd, static_cast<off_t>(size)) == 0) return absl::OkStatus();
  return ErrnoError(errno, "truncate", path);
}

absl::Status Unlink(const std::string& path) {
  if (unlink(path.c_str()) == 0) return absl::OkStatus();
  return ErrnoError(errno, "remove", path);
}

absl::Status Rename(const std::string& from, const std::string& to) {
  if (rename(from.c_str(), to.c_str()) == 0) return absl::OkStatus();
  const int error = errno;
  return ErrnoError(error, "rename", absl::StrCat(from, " to ", to));
}

absl::StatusOr<struct stat> StatFd(int fd, absl::string_view path) {
  struct stat info;
  if (fstat(fd, &info) != 0) return ErrnoError(errno, "stat", path);
  return info;
}

absl::StatusOr<struct stat> StatPath(const std::string& path) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) return ErrnoError(errno, "stat", path);
  return info;
}

}  // namespace convocore::store::posix
