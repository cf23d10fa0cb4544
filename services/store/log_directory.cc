#include "services/store/log_directory.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "services/store/posix_file.h"

namespace convocore::store {
namespace {

constexpr char kSegmentPrefix[] = "events-";
constexpr char kSegmentSuffix[] = ".log";
constexpr char kMetaFile[] = "log.meta";
constexpr char kMetaTempFile[] = "log.meta.tmp";

}  // namespace

std::string SegmentFileName(std::uint32_t ordinal) {
  return absl::StrFormat("%s%010u%s", kSegmentPrefix, ordinal, kSegmentSuffix);
}

std::optional<std::uint32_t> ParseSegmentFileName(absl::string_view name) {
  if (!absl::ConsumePrefix(&name, kSegmentPrefix) ||
      !absl::ConsumeSuffix(&name, kSegmentSuffix) || name.size() != 10) {
    return std::nullopt;
  }
  std::uint32_t ordinal = 0;
  if (!absl::SimpleAtoi(name, &ordinal) || ordinal == 0) return std::nullopt;
  return ordinal;
}

absl::StatusOr<LogDirectory> LogDirectory::Open(std::string path) {
  if (path.empty()) {
    return absl::InvalidArgumentError("the data directory is empty");
  }
  std::error_code error;
  std::filesystem::create_directories(path, error);
  if (error) {
    return absl::UnavailableError(absl::StrCat(
        "cannot create the data directory ", path, ": ", error.message()));
  }
  absl::StatusOr<ScopedFd> fd = posix::Open(path, O_RDONLY | O_DIRECTORY);
  if (!fd.ok()) return fd.status();
  if (absl::Status locked = posix::LockExclusive(
          fd->get(), absl::StrCat("the data directory ", path));
      !locked.ok()) {
    return locked;
  }
  absl::StatusOr<struct stat> info = posix::StatFd(fd->get(), path);
  if (!info.ok()) return info.status();
  return LogDirectory(std::move(path), *std::move(fd), info->st_dev,
                      info->st_ino);
}

std::string LogDirectory::SegmentPath(std::uint32_t ordinal) const {
  return (std::filesystem::path(path_) / SegmentFileName(ordinal)).string();
}

std::string LogDirectory::MetaPath() const {
  return (std::filesystem::path(path_) / kMetaFile).string();
}

absl::StatusOr<std::vector<std::uint32_t>> LogDirectory::ListSegments() const {
  std::vector<std::uint32_t> ordinals;
  std::error_code error;
  for (std::filesystem::directory_iterator it(path_, error), end;
       !error && it != end; it.increment(error)) {
    if (auto ordinal = ParseSegmentFileName(it->path().filename().string())) {
      ordinals.push_back(*ordinal);
    }
  }
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("cannot list ", path_, ": ", error.message()));
  }
  std::sort(ordinals.begin(), ordinals.end());
  return ordinals;
}

absl::StatusOr<std::optional<std::string>> LogDirectory::ReadMeta() const {
  const std::string path = MetaPath();
  absl::StatusOr<ScopedFd> fd = posix::Open(path, O_RDONLY);
  if (absl::IsNotFound(fd.status())) return std::nullopt;
  if (!fd.ok()) return fd.status();
  absl::StatusOr<std::string> bytes = posix::ReadWhole(fd->get(), path);
  if (!bytes.ok()) return bytes.status();
  return *std::move(bytes);
}

absl::Status LogDirectory::WriteMeta(const log_format::Meta& meta,
                                     bool durable) const {
  const std::string temp =
      (std::filesystem::path(path_) / kMetaTempFile).string();
  absl::StatusOr<ScopedFd> fd =
      posix::Open(temp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (!fd.ok()) return fd.status();
  absl::Status status =
      posix::WriteAll(fd->get(), log_format::EncodeMeta(meta), 0, temp);
  if (status.ok()) status = posix::SyncData(fd->get(), temp);
  if (absl::Status closed = fd->Close(temp); status.ok()) status = closed;
  if (status.ok()) status = posix::Rename(temp, MetaPath());
  if (status.ok() && durable) status = Sync();
  return status;
}

absl::Status LogDirectory::Sync() const {
  return posix::SyncDirectory(fd_.get(), path_);
}

absl::Status LogDirectory::CheckStillInPlace() const {
  struct stat now;
  if (stat(path_.c_str(), &now) != 0) {
    const int error = errno;
    if (error == ENOENT || error == ENOTDIR) {
      return absl::NotFoundError(
          absl::StrCat("the data directory ", path_, " was removed"));
    }
    return posix::ErrnoError(error, "stat the data directory", path_);
  }
  if (now.st_dev != device_ || now.st_ino != inode_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the data directory ", path_,
        " was replaced by another directory since the log opened it"));
  }
  return absl::OkStatus();
}

}  // namespace convocore::store
