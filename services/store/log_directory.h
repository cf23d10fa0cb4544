// The event log's data directory and the names of the files in it:
// events-NNNNNNNNNN.log (the segments, oldest first; ordinals from 1) and
// log.meta (how far retention trimmed, log_format::Meta). Held open and
// locked (flock) for as long as this object lives, so that two processes
// never share one log.
#ifndef SERVICES_STORE_LOG_DIRECTORY_H_
#define SERVICES_STORE_LOG_DIRECTORY_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/store/log_format.h"
#include "services/store/scoped_fd.h"

namespace convocore::store {

// "events-0000000042.log" for 42.
std::string SegmentFileName(std::uint32_t ordinal);
// The ordinal a SegmentFileName() names; nullopt for any other name.
std::optional<std::uint32_t> ParseSegmentFileName(absl::string_view name);

class LogDirectory {
 public:
  // Creates `path` if it is missing, opens and locks it. kFailedPrecondition
  // when another process holds it.
  static absl::StatusOr<LogDirectory> Open(std::string path);

  LogDirectory(LogDirectory&&) = default;
  LogDirectory& operator=(LogDirectory&&) = default;

  const std::string& path() const { return path_; }
  std::string SegmentPath(std::uint32_t ordinal) const;
  std::string MetaPath() const;

  // The ordinals of the segment files present, ascending.
  absl::StatusOr<std::vector<std::uint32_t>> ListSegments() const;

  // log.meta's bytes; nullopt when there is none.
  absl::StatusOr<std::optional<std::string>> ReadMeta() const;
  // Replaces log.meta with `meta`, its content durable before the rename
  // (some file systems, XFS or ext4 with noauto_da_alloc, may otherwise leave
  // an empty file after a power loss). `durable`: the rename too.
  absl::Status WriteMeta(const log_format::Meta& meta, bool durable) const;

  // Makes the entries created or removed in the directory durable.
  absl::Status Sync() const;

  // OK while `path` still names the directory that Open() opened. kNotFound
  // once it is gone (removed, or renamed away) and kFailedPrecondition when
  // another directory took its place: the log this object writes is then
  // not where the next start will look for it. kUnavailable when it cannot
  // be checked.
  absl::Status CheckStillInPlace() const;

 private:
  LogDirectory(std::string path, ScopedFd fd, dev_t device, ino_t inode)
      : path_(std::move(path)),
        fd_(std::move(fd)),
        device_(device),
        inode_(inode) {}

  std::string path_;
  ScopedFd fd_;  // holds the lock
  dev_t device_;
  ino_t inode_;
};

}  // namespace convocore::store

#endif  // SERVICES_STORE_LOG_DIRECTORY_H_
