#include "services/store/disk_event_store.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gateway/log/logger.h"
#include "services/store/log_directory.h"
#include "services/store/log_format.h"
#include "services/store/maintenance_thread.h"
#include "services/store/posix_file.h"
#include "services/store/recovery.h"
#include "services/store/segment_file.h"
#include "services/store/segment_index.h"
#include "services/store/segment_reader.h"
#include "services/store/segment_writer.h"

namespace convocore::store {
namespace {

using hub::StoredEvent;
using hub::StoreStats;

// As large as a big batch: a probe that fits into the last free blocks of a
// full disk would report health that Append() lacks.
constexpr std::size_t kProbeBytes = 64 << 10;

// Logs a failure of background work once, not on every maintenance tick
// while it lasts, and its end. Used by the maintenance thread alone.
class FailureNote {
 public:
  explicit FailureNote(absl::string_view what) : what_(what) {}

  void Update(const absl::Status& status, const std::string& data_dir) {
    if (status.ok() == !failing_) return;
    failing_ = !status.ok();
    if (failing_) {
      log::Warning(absl::StrCat("the event log cannot ", what_,
                                "; retrying every maintenance interval"),
                   {{"data_dir", data_dir}, {"error", status}});
    } else {
      log::Info(absl::StrCat("the event log can ", what_, " again"),
                {{"data_dir", data_dir}});
    }
  }

 private:
  const std::string what_;
  bool failing_ = false;
};

// The segment log: SegmentIndex in memory, SegmentWriter on the active
// segment, a segment made ahead by maintenance, which also trims, deletes
// trimmed segments, fsyncs in os_cache mode and probes while unhealthy.
class SegmentLogStore final : public DiskEventStore {
 public:
  SegmentLogStore(DiskStoreOptions options, LogDirectory dir,
                  RecoveredLog recovered)
      : options_(std::move(options)),
        dir_(std::move(dir)),
        discarded_tail_bytes_(recovered.plan.discarded_tail_bytes),
        discarded_damaged_meta_(recovered.plan.discarded_damaged_meta),
        resume_(recovered.plan.active),
        pending_cut_(recovered.plan.cut),
        index_(options_.retention, recovered.plan.meta),
        segments_(std::move(recovered.segments)),
        active_ordinal_(recovered.plan.active.ordinal),
        persisted_meta_(recovered.plan.meta) {
    index_.Add(recovered.plan.entries);
    // Bounds lowered since the last run, and time, apply from the start.
    index_.Trim(options_.retention.max_age > absl::ZeroDuration()
                    ? absl::Now() - options_.retention.max_age
                    : absl::InfinitePast(),
                active_ordinal_);
  }

  ~SegmentLogStore() override {
    closing_.store(true, std::memory_order_relaxed);  // a paced fill stops
    maintenance_.reset();
    bool writable = false;
    {
      absl::MutexLock lock(&writer_mu_);
      writable = writer_.has_value();
    }
    {
      absl::MutexLock lock(&state_mu_);
      writable = writable && !storage_lost_;
    }
    // So that a restart finds the trim point where it was, not a tick ago.
    if (writable) DeleteTrimmedSegments();
    absl::MutexLock lock(&writer_mu_);
    if (writer_.has_value()) {
      // Its batches were fdatasynced (or, os_cache, are in the page cache
      // either way): a failed close() loses nothing more.
      if (absl::Status closed = writer_->Close(); !closed.ok()) {
        log::Warning("cannot close the active segment",
                     {{"data_dir", options_.data_dir}, {"error", closed}});
      }
    }
    // A segment made ahead is kept: the next start appends to it.
  }

  // Opens the writer (or, when that fails, starts unhealthy with what could
  // be read), then starts maintenance.
  void Start() {
    absl::Status opened;
    {
      absl::MutexLock lock(&writer_mu_);
      opened = OpenWriter();
    }
    if (!opened.ok()) SetHealth(UnavailableBecause(opened));
    maintenance_.emplace("store-maint", options_.maintenance_interval,
                         [this] { Maintain(); });
  }

  absl::Status Append(absl::Span<const StoredEvent> batch) override {
    if (batch.empty()) return absl::OkStatus();
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (absl::Status storable = log_format::CheckStorable(batch[i]);
          !storable.ok()) {
        return storable;
      }
      if (i > 0 && batch[i].sequence <= batch[i - 1].sequence) {
        return absl::InvalidArgumentError(
            "sequences in a batch must be strictly increasing");
      }
    }

    absl::MutexLock writer_lock(&writer_mu_);
    {
      absl::MutexLock state_lock(&state_mu_);
      const std::uint64_t last = index_.Stats().last_sequence;
      if (batch.front().sequence <= last) {
        return absl::InvalidArgumentError(
            absl::StrCat("sequence ", batch.front().sequence,
                         " is not after the last stored one, ", last));
      }
      if (!writer_.has_value() || sync_failed_ || storage_lost_) {
        return health_.ok()
                   ? absl::UnavailableError("the event log cannot be written")
                   : health_;
      }
    }

    const absl::StatusOr<std::uint64_t> offset = WriteBatch(batch);
    if (!offset.ok()) {
      SetHealth(UnavailableBecause(offset.status()));
      return Health();
    }
    // Durable, but only where a start looks: not in a file or directory
    // deleted meanwhile (a stat and an fstat, a few µs beside the fsync).
    // The batch is then not acknowledged, nor indexed. When the check
    // itself fails, the batch (written where it belongs, as far as can be
    // told) stands, and maintenance decides about the store.
    if (absl::Status in_place = CheckInPlace(); StorageIsLost(in_place)) {
      OnStorageProblem(in_place);
      return Health();
    }
    std::vector<IndexEntry> entries;
    entries.reserve(batch.size());
    std::uint64_t at = *offset;
    for (const StoredEvent& event : batch) {
      entries.push_back(IndexEntry{
          .sequence = event.sequence,
          .receive_time_ns = absl::ToUnixNanos(event.receive_time),
          .offset = at,
          .ordinal = writer_->ordinal(),
          .id_size = static_cast<std::uint32_t>(event.id.size()),
          .event_size = static_cast<std::uint32_t>(event.event_bytes->size()),
      });
      at += entries.back().RecordSize();
    }
    bool wake = false;
    {
      absl::MutexLock state_lock(&state_mu_);
      // A background fsync that failed meanwhile (os_cache), or storage
      // found gone, keeps the store unavailable: only a probe clears the
      // first (RecoverIfUnhealthy()), nothing the second.
      if (!sync_failed_ && !storage_lost_) SetHealthLocked(absl::OkStatus());
      index_.Add(entries);
      wake = index_.Trim(absl::InfinitePast(), active_ordinal_);
    }
    if (wake) WakeMaintenance();
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<StoredEvent>> ReadAfter(
      std::uint64_t after_sequence, std::size_t max_events) const override {
    std::vector<StoredEvent> events;
    const absl::Status status = Read(
        after_sequence, max_events, [&](const log_format::Record& record) {
          events.push_back(StoredEvent{
              .sequence = record.header.sequence,
              .receive_time =
                  absl::FromUnixNanos(record.header.receive_time_ns),
              .id = std::string(record.id),
              .event_bytes = std::make_shared<const std::string>(record.event),
          });
        });
    if (!status.ok()) return status;
    return events;
  }

  absl::StatusOr<std::vector<StoredEventId>> ReadIdsAfter(
      std::uint64_t after_sequence, std::size_t max_events) const override {
    std::vector<StoredEventId> ids;
    const absl::Status status = Read(
        after_sequence, max_events, [&](const log_format::Record& record) {
          ids.push_back(StoredEventId{
              .sequence = record.header.sequence,
              .receive_time =
                  absl::FromUnixNanos(record.header.receive_time_ns),
              .id = std::string(record.id),
          });
        });
    if (!status.ok()) return status;
    return ids;
  }

  absl::StatusOr<std::uint64_t> FirstSequenceAtOrAfter(
      absl::Time time) const override {
    absl::MutexLock lock(&state_mu_);
    return index_.FirstSequenceAtOrAfter(time);
  }

  StoreStats Stats() const override {
    absl::MutexLock lock(&state_mu_);
    return index_.Stats();
  }

  bool DiscardedDamagedMeta() const override { return discarded_damaged_meta_; }

  std::uint64_t DiscardedTailBytes() const override {
    return discarded_tail_bytes_;
  }

  absl::Status Health() const override {
    absl::MutexLock lock(&state_mu_);
    return health_;
  }

 private:
  absl::Status UnavailableBecause(const absl::Status& cause) const {
    return absl::UnavailableError(
        absl::StrCat("the event log in ", options_.data_dir,
                     " cannot persist events: ", cause.message()));
  }

  void SetHealth(absl::Status health) ABSL_LOCKS_EXCLUDED(state_mu_) {
    absl::MutexLock lock(&state_mu_);
    SetHealthLocked(std::move(health));
  }

  // Logs the changes between healthy and not (not every failed Append).
  // Once storage is lost its reason stays.
  void SetHealthLocked(absl::Status health)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_mu_) {
    if (storage_lost_) return;
    if (health.ok() != health_.ok()) {
      if (health.ok()) {
        log::Info("the event log can persist events again",
                  {{"data_dir", options_.data_dir}});
      } else {
        log::Warning("the event log cannot persist events",
                     {{"data_dir", options_.data_dir}, {"error", health}});
      }
    }
    health_ = std::move(health);
  }

  // --- Writing -------------------------------------------------------------

  // Opens the active segment for appending: cuts the torn tail recovery
  // found before it, then resumes the newest segment or creates the first.
  // kUnavailable when the directory cannot be written; retried whole by
  // maintenance.
  absl::Status OpenWriter() ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_) {
    if (pending_cut_.ordinal != 0) {
      if (absl::Status cut =
              CutSegmentFile(dir_, pending_cut_.ordinal, pending_cut_.size);
          !cut.ok()) {
        return cut;
      }
      pending_cut_ = {};
    }
    if (resume_.ordinal == 0) return CreateFirstSegment();
    absl::StatusOr<SegmentWriter> writer =
        SegmentWriter::Resume(dir_, resume_.ordinal, resume_.end, resume_.salt,
                              resume_.zero_tail, resume_.half_made);
    if (!writer.ok()) return writer.status();
    if (resume_.half_made) {
      // Its reader must check records against the new salt.
      absl::StatusOr<ScopedFd> read_fd =
          posix::Duplicate(writer->fd(), writer->path());
      if (!read_fd.ok()) {
        CloseUnused(*writer);
        return read_fd.status();
      }
      absl::MutexLock state_lock(&state_mu_);
      segments_[writer->ordinal()] = std::make_shared<const ReadableSegment>(
          writer->ordinal(), writer->path(), *std::move(read_fd),
          writer->salt());
    }
    writer_ = *std::move(writer);
    RemoveEmptySegments();
    return absl::OkStatus();
  }

  void CloseUnused(SegmentWriter& writer) {
    if (absl::Status closed = writer.Close(); !closed.ok()) {
      log::Warning("cannot close a segment", {{"error", closed}});
    }
  }

  // The first segment of a new log, zero-filled like those made ahead when
  // the disk has room for that, else plain. Unpaced: nothing is written yet,
  // and the gateway is not ready before.
  absl::Status CreateFirstSegment() ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_) {
    absl::StatusOr<MadeSegment> made =
        MakeSegmentFile(dir_, 1, {.size = options_.segment_bytes});
    if (!made.ok()) made = MakeSegmentFile(dir_, 1, {});
    if (!made.ok()) return made.status();
    return SwitchTo(*std::move(made));
  }

  // Deletes the segments before the active one that hold no records: made
  // ahead by an earlier start that then took no appends, or cut to nothing
  // as a torn tail. Each start makes one ahead, so without this a sidecar
  // restarted without traffic would gain a segment's worth of disk per
  // start. A failed removal is logged and left for the next start.
  void RemoveEmptySegments() ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_) {
    absl::MutexLock lock(&state_mu_);
    for (auto it = segments_.begin(); it != segments_.end();) {
      if (it->first >= active_ordinal_ || index_.HasRecords(it->first)) {
        ++it;
        continue;
      }
      if (absl::Status removed = posix::Unlink(it->second->path);
          !removed.ok() && !absl::IsNotFound(removed)) {
        log::Warning("cannot remove an empty segment; the next start tries "
                     "again",
                     {{"error", removed}});
        ++it;
        continue;
      }
      it = segments_.erase(it);
    }
  }

  // Makes `made` the segment appended to, and readable.
  absl::Status SwitchTo(MadeSegment made)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_) {
    const std::string path = dir_.SegmentPath(made.ordinal);
    absl::StatusOr<ScopedFd> read_fd = posix::Duplicate(made.fd.get(), path);
    if (!read_fd.ok()) {
      Discard(std::move(made));
      return read_fd.status();
    }
    if (writer_.has_value()) {
      // Full, and durable: fdatasynced per batch (fsync) or before the
      // rollover (os_cache). A failed close() loses nothing.
      if (absl::Status closed = writer_->Close(); !closed.ok()) {
        log::Warning("cannot close a full segment", {{"error", closed}});
      }
    }
    writer_.emplace(made.ordinal, path, std::move(made.fd),
                    log_format::kSegmentHeaderSize, made.salt);
    absl::MutexLock state_lock(&state_mu_);
    active_ordinal_ = made.ordinal;
    segments_[made.ordinal] = std::make_shared<const ReadableSegment>(
        made.ordinal, path, *std::move(read_fd), made.salt);
    return absl::OkStatus();
  }

  // Removes a made segment that never became part of the log.
  void Discard(MadeSegment made) {
    const std::string path = dir_.SegmentPath(made.ordinal);
    if (absl::Status closed = made.fd.Close(path); !closed.ok()) {
      log::Warning("cannot close an unused segment", {{"error", closed}});
    }
    // Left behind, it holds no record: the next start removes it.
    if (absl::Status removed = posix::Unlink(path);
        !removed.ok() && !absl::IsNotFound(removed)) {
      log::Warning("cannot remove an unused segment", {{"error", removed}});
    }
  }

  // Starts the next segment: the one maintenance prepared if it is ready,
  // else a new one made here (which stalls this batch for its fsyncs).
  absl::Status RollOver() ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_) {
    // Maintenance makes the one after next meanwhile.
    WakeMaintenance();
    if (next_.has_value()) {
      MadeSegment next = *std::move(next_);
      next_.reset();
      return SwitchTo(std::move(next));
    }
    // Past the one being prepared, whose maker then finds it stale.
    absl::StatusOr<MadeSegment> made = MakeSegmentFile(
        dir_, std::max(writer_->ordinal(), preparing_ordinal_) + 1, {});
    if (!made.ok()) return made.status();
    return SwitchTo(*std::move(made));
  }

  // Writes `batch` at the end of the active segment (after starting a new
  // one if it is full), durable per the mode; the offset of its first
  // record. On failure the batch is absent and its sequences unused.
  absl::StatusOr<std::uint64_t> WriteBatch(absl::Span<const StoredEvent> batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_) {
    // What a failed write left goes before anything else is written, in
    // this segment or the next.
    if (absl::Status repaired = writer_->Repair(); !repaired.ok()) {
      return repaired;
    }
    if (writer_->end() >= options_.segment_bytes) {
      // In os_cache mode the full segment is made durable first, so that a
      // power loss loses a suffix of the log and never a hole.
      if (options_.durability == Durability::kOsCache) {
        if (absl::Status synced = writer_->Sync(); !synced.ok()) return synced;
      }
      if (absl::Status rolled = RollOver(); !rolled.ok()) return rolled;
    }
    // Each batch is written only once everything before it is durable (the
    // previous batch's fsync, a repair's, or the writer's opening).
    const bool fsync = options_.durability == Durability::kFsync;
    return writer_->Write(batch, fsync ? log_format::kWrittenAfterSync : 0,
                          fsync);
  }

  // --- Reading -------------------------------------------------------------

  // Hands each retained record after `after_sequence` to `visit`, checked
  // against its checksum, up to `max_events`.
  absl::Status Read(
      std::uint64_t after_sequence, std::size_t max_events,
      absl::FunctionRef<void(const log_format::Record&)> visit) const {
    std::vector<IndexEntry> entries;
    SegmentMap segments;
    {
      absl::MutexLock lock(&state_mu_);
      entries = index_.After(after_sequence, max_events);
      for (const IndexEntry& entry : entries) {
        if (segments.contains(entry.ordinal)) continue;
        if (const auto it = segments_.find(entry.ordinal);
            it != segments_.end()) {
          segments.emplace(entry.ordinal, it->second);
        }
      }
    }
    return ReadRecords(entries, segments, visit);
  }

  // --- Maintenance ---------------------------------------------------------

  void WakeMaintenance() {
    if (maintenance_.has_value()) maintenance_->Wake();
  }

  void Maintain() {
    CheckStorage();
    if (!RecoverIfUnhealthy()) return;
    if (options_.retention.max_age > absl::ZeroDuration()) {
      absl::MutexLock lock(&state_mu_);
      index_.Trim(absl::Now() - options_.retention.max_age, active_ordinal_);
    }
    DeleteTrimmedSegments();
    PrepareNextSegment();
    if (options_.durability == Durability::kOsCache) SyncActiveSegment();
  }

  // Finds out whether the data directory is still where it was opened, and
  // the active segment still in it. When not, every batch appended from
  // here on would go where no start finds it: the store becomes unavailable
  // for good (see DiskEventStore).
  void CheckStorage() {
    {
      absl::MutexLock lock(&state_mu_);
      if (storage_lost_) return;
    }
    absl::Status status;
    {
      absl::MutexLock lock(&writer_mu_);
      status = CheckInPlace();
    }
    if (!status.ok()) OnStorageProblem(status);
  }

  // The data directory and the active segment (once open) are where a start
  // finds them.
  absl::Status CheckInPlace() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_) {
    absl::Status status = dir_.CheckStillInPlace();
    if (status.ok() && writer_.has_value()) {
      status = writer_->CheckStillLinked();
    }
    return status;
  }

  // CheckInPlace() found the directory or the segment gone, rather than
  // failing to check.
  static bool StorageIsLost(const absl::Status& status) {
    return absl::IsNotFound(status) || absl::IsFailedPrecondition(status);
  }

  void OnStorageProblem(const absl::Status& status)
      ABSL_LOCKS_EXCLUDED(state_mu_) {
    absl::MutexLock lock(&state_mu_);
    if (storage_lost_) return;
    if (!StorageIsLost(status)) {
      // Cannot tell (stat failed otherwise): unavailable until a probe
      // proves the directory writable again.
      SetHealthLocked(UnavailableBecause(status));
      return;
    }
    storage_lost_ = true;
    log::Error(
        "the event log's storage is gone: appends are refused until the "
        "gateway restarts; the retained events stay readable until then, "
        "and what the removed files held is lost at the restart",
        {{"data_dir", options_.data_dir},
         {"error", status},
         {"last_sequence", index_.Stats().last_sequence},
         {"retained_events", index_.Stats().retained_events}});
    health_ = UnavailableBecause(status);
  }

  // While the store cannot write: opens the writer if it never opened, cuts
  // off what a failed write left, and probes with a durable 64 KiB write
  // that it then removes. True when the store is healthy.
  bool RecoverIfUnhealthy() {
    {
      absl::MutexLock lock(&state_mu_);
      if (health_.ok()) return true;
      if (storage_lost_) return false;
    }
    absl::MutexLock writer_lock(&writer_mu_);
    absl::Status status =
        writer_.has_value() ? absl::OkStatus() : OpenWriter();
    if (status.ok()) status = writer_->Probe(kProbeBytes);
    absl::MutexLock state_lock(&state_mu_);
    if (storage_lost_) return false;
    SetHealthLocked(status.ok() ? absl::OkStatus()
                                : UnavailableBecause(status));
    if (status.ok()) sync_failed_ = false;
    return status.ok();
  }

  // Records how far retention trimmed, then deletes the segments that hold
  // only trimmed events and are older than the newest segment with records:
  // the newest record stays on disk, so the high-water mark never depends on
  // log.meta, whose rename is therefore not fsynced (after a power loss a
  // stale one only makes retention trim again; its content is, so that the
  // rename cannot leave an empty file).
  void DeleteTrimmedSegments() {
    log_format::Meta meta;
    std::vector<std::shared_ptr<const ReadableSegment>> deletable;
    {
      absl::MutexLock lock(&state_mu_);
      meta = index_.TrimPoint();
      if (meta.trimmed_through == persisted_meta_.trimmed_through &&
          meta.trimmed_events_total == persisted_meta_.trimmed_events_total) {
        return;
      }
      std::vector<std::uint32_t> ordinals;
      ordinals.reserve(segments_.size());
      for (const auto& [ordinal, segment] : segments_) {
        ordinals.push_back(ordinal);
      }
      for (const std::uint32_t ordinal :
           index_.TrimmedSegments(ordinals, active_ordinal_)) {
        deletable.push_back(segments_.at(ordinal));
      }
    }
    const absl::Status written = dir_.WriteMeta(meta, /*durable=*/false);
    meta_note_.Update(written, options_.data_dir);
    if (!written.ok()) return;  // next tick
    {
      absl::MutexLock lock(&state_mu_);
      persisted_meta_ = meta;
    }
    absl::Status removed;
    for (const auto& segment : deletable) {
      removed = posix::Unlink(segment->path);
      if (!removed.ok() && !absl::IsNotFound(removed)) break;
      removed = absl::OkStatus();
      absl::MutexLock lock(&state_mu_);
      segments_.erase(segment->ordinal);
      index_.Forget(segment->ordinal);
    }
    delete_note_.Update(removed, options_.data_dir);
  }

  // Makes the next segment ahead of time, zero-filled to its full size, as
  // soon as the active one takes appends (RollOver() wakes maintenance for
  // it): the rollover then costs the committer no fsync, and an fdatasync
  // that overwrites allocated blocks need not also write the inode's new
  // size and block map (~110 instead of ~175 µs here). The paced fill takes
  // about 0.2 s; a segment lasts about 0.4 s at this machine's highest rate.
  void PrepareNextSegment() {
    std::uint32_t ordinal = 0;
    {
      absl::MutexLock lock(&writer_mu_);
      if (!writer_.has_value() || next_.has_value()) return;
      ordinal = writer_->ordinal() + 1;
      preparing_ordinal_ = ordinal;
    }
    absl::StatusOr<MadeSegment> made = MakeSegmentFile(
        dir_, ordinal,
        {.size = options_.segment_bytes, .paced = true, .cancel = &closing_});
    if (!absl::IsCancelled(made.status())) {
      prepare_note_.Update(made.status(), options_.data_dir);
    }
    absl::MutexLock lock(&writer_mu_);
    preparing_ordinal_ = 0;
    if (!made.ok()) return;  // RollOver() makes one itself
    if (writer_->ordinal() + 1 != ordinal) {
      Discard(*std::move(made));  // the committer rolled over past it
      return;
    }
    next_ = *std::move(made);
  }

  // os_cache: bounds what a power loss can take to one maintenance interval.
  void SyncActiveSegment() {
    std::shared_ptr<const ReadableSegment> active;
    {
      absl::MutexLock lock(&state_mu_);
      const auto it = segments_.find(active_ordinal_);
      if (it == segments_.end()) return;
      active = it->second;
    }
    // Appends do not fsync in this mode, so nothing else would see the
    // kernel's write-back error (for a segment made by this process this
    // descriptor even shares the writer's open file, whose error report this
    // call then takes).
    const absl::Status synced = posix::SyncData(active->fd.get(), active->path);
    if (synced.ok()) return;
    absl::MutexLock lock(&state_mu_);
    // Until a probe write proves the disk again (RecoverIfUnhealthy()),
    // appends are refused rather than answered on a failing disk.
    sync_failed_ = true;
    SetHealthLocked(UnavailableBecause(synced));
  }

  const DiskStoreOptions options_;
  const LogDirectory dir_;
  // From recovery.
  const std::uint64_t discarded_tail_bytes_;
  const bool discarded_damaged_meta_;
  // Set when the destructor starts: a paced fill stops.
  std::atomic<bool> closing_{false};
  // Failures of background work, logged once while they last; used by the
  // maintenance thread and, after it stopped, the destructor.
  FailureNote meta_note_{"record how far retention trimmed (log.meta)"};
  FailureNote delete_note_{"delete trimmed segments"};
  FailureNote prepare_note_{"make the next segment ahead"};

  // Held for a whole write (Append, a probe, opening the writer, a
  // rollover). Ordered before state_mu_.
  absl::Mutex writer_mu_;
  // The segment appended to; none until it could be opened.
  std::optional<SegmentWriter> writer_ ABSL_GUARDED_BY(writer_mu_);
  // What the writer opens, as recovery found it; and the torn tail it cuts
  // off a segment before that one first (ordinal 0: none).
  const RecoveryPlan::Active resume_;
  RecoveryPlan::Cut pending_cut_ ABSL_GUARDED_BY(writer_mu_);
  // The next segment, made ahead by maintenance.
  std::optional<MadeSegment> next_ ABSL_GUARDED_BY(writer_mu_);
  // The ordinal maintenance is making now; 0 when none.
  std::uint32_t preparing_ordinal_ ABSL_GUARDED_BY(writer_mu_) = 0;

  mutable absl::Mutex state_mu_ ABSL_ACQUIRED_AFTER(writer_mu_);
  SegmentIndex index_ ABSL_GUARDED_BY(state_mu_);
  // Every segment file, open for reading.
  SegmentMap segments_ ABSL_GUARDED_BY(state_mu_);
  // The segment appended to (as the writer's ordinal, once it is open).
  std::uint32_t active_ordinal_ ABSL_GUARDED_BY(state_mu_);
  log_format::Meta persisted_meta_ ABSL_GUARDED_BY(state_mu_);
  absl::Status health_ ABSL_GUARDED_BY(state_mu_);
  // os_cache: a background fsync failed; set until a probe succeeds.
  bool sync_failed_ ABSL_GUARDED_BY(state_mu_) = false;
  // The data directory or the active segment is gone; set for good.
  bool storage_lost_ ABSL_GUARDED_BY(state_mu_) = false;

  // Last: started after, and stopped before, everything above is used.
  std::optional<MaintenanceThread> maintenance_;
};

}  // namespace

absl::string_view DurabilityName(Durability durability) {
  switch (durability) {
    case Durability::kFsync:
      return "fsync";
    case Durability::kOsCache:
      return "os_cache";
  }
  return "unknown";
}

bool AbslParseFlag(absl::string_view text, Durability* durability,
                   std::string* error) {
  for (const Durability candidate :
       {Durability::kFsync, Durability::kOsCache}) {
    if (text == DurabilityName(candidate)) {
      *durability = candidate;
      return true;
    }
  }
  *error = "expected fsync or os_cache";
  return false;
}

absl::StatusOr<std::unique_ptr<DiskEventStore>> DiskEventStore::Open(
    DiskStoreOptions options) {
  absl::StatusOr<LogDirectory> dir = LogDirectory::Open(options.data_dir);
  if (!dir.ok()) return dir.status();
  absl::StatusOr<RecoveredLog> recovered = RecoverLog(*dir);
  if (!recovered.ok()) return recovered.status();
  auto store = std::make_unique<SegmentLogStore>(
      std::move(options), *std::move(dir), *std::move(recovered));
  store->Start();
  return store;
}

absl::Status ForEachRecentId(
    const DiskEventStore& store, std::size_t max_entries, absl::Time since,
    absl::FunctionRef<void(const StoredEventId&)> visit) {
  constexpr std::size_t kChunk = 4096;
  const StoreStats stats = store.Stats();
  if (stats.retained_events == 0) return absl::OkStatus();
  std::uint64_t after = 0;
  if (max_entries > 0 && stats.last_sequence > max_entries) {
    after = stats.last_sequence - max_entries;
  }
  absl::StatusOr<std::uint64_t> first = store.FirstSequenceAtOrAfter(since);
  if (!first.ok()) return first.status();
  after = std::max(after, *first - 1);
  for (;;) {
    absl::StatusOr<std::vector<StoredEventId>> ids =
        store.ReadIdsAfter(after, kChunk);
    if (!ids.ok()) return ids.status();
    for (const StoredEventId& id : *ids) visit(id);
    if (ids->size() < kChunk) return absl::OkStatus();
    after = ids->back().sequence;
  }
}

}  // namespace convocore::store
