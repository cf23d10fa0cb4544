// The durable event log on local disk behind the hub's EventStore seam
// (`--store=disk`, the default), so that an event the gateway acknowledged
// survives a crash, a restart or a deploy.
//
// An append-only log of segment files (format in log_format.h) with its
// index in memory: an Append() is one write and one fdatasync, a read is
// one pread per run of contiguous records, and retention deletes whole
// segments.
//
// Files in the data directory (log_directory.h): events-NNNNNNNNNN.log (the
// segments, oldest first; the newest may be one made ahead of need,
// zero-filled) and log.meta (how far retention trimmed). The directory itself
// is locked (flock) for the lifetime of the store: two processes never share
// one log.
#ifndef SERVICES_STORE_DISK_EVENT_STORE_H_
#define SERVICES_STORE_DISK_EVENT_STORE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/hub/event_store.h"

namespace convocore::store {

// When Append() returns OK, what the acknowledged batch survives.
enum class Durability {
  // Written and fsynced (fdatasync of the segment) before Append()
  // returns: survives a process crash, a kernel panic and a power loss,
  // provided the disk honours flushes. One fsync per batch, which the hub's
  // group commit shares among the events published together. The default,
  // and what a 200 means unless configured otherwise.
  kFsync,
  // Written to the OS page cache but not fsynced; the log is fsynced in the
  // background once per maintenance interval and whenever a segment fills.
  // Survives a process crash (SIGKILL, OOM kill, a bug) but NOT a kernel
  // panic or power loss, which can lose the batches acknowledged since the
  // last of those fsyncs (the log itself stays consistent: what is lost is a
  // suffix, never a hole). For disposable environments and for hosts whose
  // storage is already volatile.
  kOsCache,
};

// "fsync" / "os_cache".
absl::string_view DurabilityName(Durability durability);
// Parses a DurabilityName() into `durability`; false, with the reason in
// `error`, for any other text. For the gateway's --durability flag.
bool AbslParseFlag(absl::string_view text, Durability* durability,
                   std::string* error);

struct DiskStoreOptions {
  // Created if missing. Must not be shared with another process.
  std::string data_dir = "./data";
  hub::RetentionOptions retention;
  Durability durability = Durability::kFsync;

  // How often the background maintenance runs: age retention, deleting
  // trimmed segments, the os_cache fsync, the check that the data directory
  // and the active segment are still in place, and, while the store cannot
  // write, the probe that detects that it can again.
  absl::Duration maintenance_interval = absl::Seconds(1);
  // A segment takes no more batches once it holds this many bytes. Retention
  // deletes whole segments, so the disk holds up to one segment more than
  // the retention bounds.
  std::size_t segment_bytes = 8 << 20;
};

// An event's de-duplication record, without the event bytes.
struct StoredEventId {
  std::uint64_t sequence = 0;
  absl::Time receive_time;
  std::string id;
};

// A failed Append() leaves the log as it was: whatever it wrote is cut off,
// durably, before anything else is written, and Append() keeps failing while
// that cut cannot be made. Stats().last_sequence advances only when Append()
// succeeds, so the failed batch's sequences may be appended again. Two
// exceptions, in which no later batch was appended after the failed one: a
// crash before that cut succeeded can leave the failed batch whole on disk,
// and a batch refused because its storage was found gone right after its
// write stays in that storage; a start that reads either (the data
// directory renamed away and moved back, say) recovers the batch as if it
// had been acknowledged.
class DiskEventStore : public hub::EventStore {
 public:
  // Opens (creating if needed) the log in `options.data_dir`, recovering it
  // if a crash left it mid-write: every batch whose Append() returned OK is
  // kept; a batch being written at the crash is entirely absent.
  //
  // A directory that can be read but not written (read-only mount, full
  // disk, permissions) still opens: Stats() knows where the sequences
  // continue, while Health() and Append() report kUnavailable until the
  // background probe finds the directory writable again. A directory that
  // cannot be read, whose log is corrupt, or that another process holds, is
  // an error: the store cannot know which sequences were already used.
  //
  // Storage that goes away while the store runs (the data directory
  // removed, renamed away or replaced by another, or the active segment
  // deleted) is noticed by the next Append(), and within one maintenance
  // interval otherwise: Health() and Append() then report kUnavailable with
  // the reason, and an error is logged once. An Append() that wrote its
  // batch into storage removed meanwhile reports that too, instead of
  // acknowledging a batch no start will find. The store does not recover
  // from that by itself: it stays unavailable until the process restarts,
  // and reads keep serving the retained events (the open segments stay
  // readable) until then. The restart opens what the directory then holds:
  // whatever the removed storage held is lost, which the log line says, and
  // an empty (or recreated) directory starts a new log whose sequences begin
  // at 1 again.
  static absl::StatusOr<std::unique_ptr<DiskEventStore>> Open(
      DiskStoreOptions options);

  // Reads up to `max_events` de-duplication records with sequence >
  // `after_sequence`, in order; cheaper than ReadAfter() since the event
  // bytes are not copied. What a restart reads to refill the de-duplication
  // window.
  virtual absl::StatusOr<std::vector<StoredEventId>> ReadIdsAfter(
      std::uint64_t after_sequence, std::size_t max_events) const = 0;

  // How many bytes Open() cut off the newest segment: a batch whose write a
  // crash interrupted (never acknowledged with fsync durability), or damage
  // at the end of the log. For the operator's log line; 0 normally.
  virtual std::uint64_t DiscardedTailBytes() const = 0;

  // The trim record (log.meta) that Open() found damaged and did without:
  // the newest segment with records holds the high-water mark, and
  // retention trimmed again from the bounds. For the operator's log line.
  virtual bool DiscardedDamagedMeta() const = 0;
};

// Visits, oldest first, the ids of the events a restart must remember for
// de-duplication: the newest `max_entries` (0: no count bound) of those
// received at or after `since`. Reads ids only, in chunks.
absl::Status ForEachRecentId(
    const DiskEventStore& store, std::size_t max_entries, absl::Time since,
    absl::FunctionRef<void(const StoredEventId&)> visit);

}  // namespace convocore::store

#endif  // SERVICES_STORE_DISK_EVENT_STORE_H_
