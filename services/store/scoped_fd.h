// An owned file descriptor: closed exactly once, when its owner goes or
// says so. The store's files, directory and locks are held by these, never by
// a bare int.
#ifndef SERVICES_STORE_SCOPED_FD_H_
#define SERVICES_STORE_SCOPED_FD_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace convocore::store {

class ScopedFd {
 public:
  ScopedFd() = default;
  // Takes `fd` over; -1 is "none".
  explicit ScopedFd(int fd) noexcept : fd_(fd) {}
  ScopedFd(ScopedFd&& other) noexcept : fd_(other.Release()) {}
  ScopedFd& operator=(ScopedFd&& other) noexcept;
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  // Closes the descriptor; a failure is logged, since nothing can act on it
  // here. Whatever must be durable was fdatasynced before (close() reports
  // no durability), so only the log line is lost.
  ~ScopedFd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives the descriptor up without closing it.
  int Release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  // Closes now; the error, with `what` (the file's path) in it, if close()
  // fails. The descriptor is gone either way (Linux frees it even then).
  absl::Status Close(absl::string_view what);

 private:
  int fd_ = -1;
};

}  // namespace convocore::store

#endif  // SERVICES_STORE_SCOPED_FD_H_
