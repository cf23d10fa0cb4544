#include "services/hub/event_hub.h"

#include <pthread.h>

#include <algorithm>
#include <future>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/io/coded_stream.h"

namespace convocore::hub {
namespace {

namespace v1 = convocore::webhooks::v1;

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// True when some event after `sequence` was trimmed from the store.
bool MissingAfter(const StoreStats& stats, std::uint64_t sequence) {
  if (stats.first_sequence == 0) return stats.last_sequence > sequence;
  // Not `first_sequence > sequence + 1`, which overflows for the largest
  // sequence and would report it as trimmed.
  return stats.first_sequence - 1 > sequence;
}

std::uint64_t OldestAvailable(const StoreStats& stats) {
  return stats.first_sequence != 0 ? stats.first_sequence
                                   : stats.last_sequence + 1;
}

std::string NotRetainedMessage(std::uint64_t after, const StoreStats& stats) {
  const std::uint64_t oldest = OldestAvailable(stats);
  return absl::StrCat(
      "events after sequence ", after,
      " are no longer retained; the oldest sequence available "
      "is ",
      oldest, " (resume with from_oldest or after_sequence=", oldest - 1, ")");
}

}  // namespace

struct Subscription::State {
  enum class Phase { kCatchUp, kLive, kEnded };

  State(const EventFilter& f, std::size_t queue_limit, SubscriptionSink* s)
      : filter(f), limit(queue_limit), sink(s) {}

  const EventFilter filter;
  const std::size_t limit;

  absl::Mutex sink_mu;
  SubscriptionSink* sink ABSL_GUARDED_BY(sink_mu);

  absl::Mutex mu ABSL_ACQUIRED_AFTER(sink_mu);
  Phase phase ABSL_GUARDED_BY(mu) = Phase::kCatchUp;
  std::deque<std::shared_ptr<const Delivery>> queue ABSL_GUARDED_BY(mu);
  // Next() found the queue empty: the next arrival calls OnReady().
  bool waiting ABSL_GUARDED_BY(mu) = false;
  // Catch-up stopped for want of room; Next() resumes it.
  bool parked ABSL_GUARDED_BY(mu) = false;
  // Every sequence up to this one was considered for this subscriber
  // (queued or filtered out); fan-out skips them, which is what makes the
  // switch from catch-up to live free of duplicates.
  std::uint64_t scanned ABSL_GUARDED_BY(mu) = 0;
  // A missing event right after `scanned` is an error (a gap), not a start
  // position that trimming moved on.
  bool strict ABSL_GUARDED_BY(mu) = false;
  // The last sequence Next() returned; the start position before that.
  std::uint64_t last_taken ABSL_GUARDED_BY(mu) = 0;
  absl::Status end ABSL_GUARDED_BY(mu);
};

namespace {

using State = Subscription::State;

bool CatchUpMatches(const EventFilter& filter, const StoredEvent& event) {
  if (filter.matches_everything()) return true;
  v1::Event parsed;
  // An event the hub cannot parse is delivered rather than silently skipped:
  // the subscriber then sees the problem instead of a gap.
  if (!parsed.ParseFromString(*event.event_bytes)) return true;
  return filter.Matches(KeyOf(parsed));
}

// Ends `s` with `code`, naming where to resume (`now` is the hub's
// ResumePointAfter(), whose last sent sequence is replaced by `s`'s); frees
// its queue. Returns the number of queued events dropped, or nothing when it
// had already ended.
std::optional<std::size_t> EndLocked(State& s, absl::StatusCode code,
                                     absl::string_view reason, ResumePoint now)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
  if (s.phase == State::Phase::kEnded) return std::nullopt;
  s.phase = State::Phase::kEnded;
  now.last_sent_sequence = s.last_taken;
  s.end = SubscriptionEndStatus(code, reason, now);
  const std::size_t dropped = s.queue.size();
  std::deque<std::shared_ptr<const Delivery>>().swap(s.queue);
  return dropped;
}

std::shared_ptr<const Delivery> MakeDelivery(const StoredEvent& event) {
  return std::make_shared<const Delivery>(event.sequence, event.event_bytes);
}

void Notify(State& s) ABSL_LOCKS_EXCLUDED(s.sink_mu, s.mu) {
  absl::MutexLock lock(&s.sink_mu);
  if (s.sink != nullptr) s.sink->OnReady();
}

}  // namespace

std::shared_ptr<const std::string> WithSequence(std::uint64_t sequence,
                                                absl::string_view body) {
  constexpr std::uint8_t kSequenceTag = (1 << 3) | 0;  // field 1, varint
  std::uint8_t prefix[1 + 10];
  prefix[0] = kSequenceTag;
  std::uint8_t* end =
      google::protobuf::io::CodedOutputStream::WriteVarint64ToArray(sequence,
                                                                    prefix + 1);
  auto bytes = std::make_shared<std::string>();
  bytes->reserve((end - prefix) + body.size());
  bytes->append(reinterpret_cast<const char*>(prefix), end - prefix);
  bytes->append(body.data(), body.size());
  return bytes;
}

absl::Status SubscriptionEndStatus(absl::StatusCode code,
                                   absl::string_view reason,
                                   const ResumePoint& at) {
  return WithResumeInfo(
      absl::Status(code, absl::StrCat(reason, "; the last sequence sent was ",
                                      at.last_sent_sequence,
                                      " (resume with after_sequence=",
                                      at.last_sent_sequence, ")")),
      at);
}

ResumePoint EventHub::ResumePointAfter(std::uint64_t last_sent) const {
  const StoreStats stats = store_->Stats();
  return ResumePoint{last_sent, OldestAvailable(stats), last_sequence()};
}

Subscription::Subscription(EventHub* hub, std::shared_ptr<State> state,
                           std::uint64_t start_after)
    : hub_(hub), state_(std::move(state)), start_after_(start_after) {}

Subscription::~Subscription() { Cancel(); }

absl::StatusOr<std::shared_ptr<const Delivery>> Subscription::Next(bool* more) {
  State& s = *state_;
  std::shared_ptr<const Delivery> delivery;
  bool resume_catch_up = false;
  {
    absl::MutexLock lock(&s.mu);
    if (s.queue.empty()) {
      if (more != nullptr) *more = false;
      if (s.phase == State::Phase::kEnded) return s.end;
      s.waiting = true;
      return nullptr;
    }
    delivery = std::move(s.queue.front());
    s.queue.pop_front();
    s.last_taken = delivery->sequence;
    if (more != nullptr) *more = !s.queue.empty();
    if (s.parked && s.queue.size() <= s.limit / 2) {
      s.parked = false;
      resume_catch_up = true;
    }
  }
  if (resume_catch_up) hub_->ScheduleCatchUp(state_);
  return delivery;
}

std::uint64_t Subscription::ConsideredThrough() const {
  absl::MutexLock lock(&state_->mu);
  // An end drops what was queued (and a cut-off scanned the event it could
  // not queue): only what Next() returned was passed.
  if (state_->phase == State::Phase::kEnded) {
    return std::max(state_->last_taken, start_after_);
  }
  if (state_->queue.empty()) return std::max(state_->scanned, start_after_);
  return state_->queue.front()->sequence - 1;
}

void Subscription::Cancel() { hub_->Unsubscribe(state_.get()); }

absl::StatusOr<std::shared_ptr<const Delivery>> EventHub::ReadEvent(
    std::uint64_t sequence) const {
  if (sequence == 0 || sequence > last_sequence()) {
    return absl::NotFoundError(
        absl::StrCat("no event has sequence ", sequence));
  }
  absl::StatusOr<std::vector<StoredEvent>> read =
      store_->ReadAfter(sequence - 1, 1);
  if (!read.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "the event store cannot be read: ", read.status().message()));
  }
  if (read->empty() || read->front().sequence != sequence) {
    return absl::OutOfRangeError(absl::StrCat(
        "event ", sequence, " is no longer retained (the oldest is ",
        OldestAvailable(store_->Stats()), ")"));
  }
  return MakeDelivery(read->front());
}

absl::StatusOr<std::unique_ptr<EventHub>> EventHub::Create(
    std::unique_ptr<EventStore> store, HubOptions options) {
  if (store == nullptr) return absl::InvalidArgumentError("no event store");
  if (options.subscriber_queue_limit == 0 || options.catch_up_chunk == 0 ||
      options.max_batch_events == 0) {
    return absl::InvalidArgumentError(
        "hub queue limit, catch-up chunk and batch size must be positive");
  }
  const StoreStats stats = store->Stats();
  // Receive times handed to the store never decrease (see Publish), across
  // restarts too.
  absl::Time last_receive_time = absl::InfinitePast();
  if (stats.first_sequence != 0 && !options.external_sequences) {
    auto newest = store->ReadAfter(stats.last_sequence - 1, 1);
    if (newest.ok() && !newest->empty()) {
      last_receive_time = newest->back().receive_time;
    }
  }
  std::unique_ptr<EventHub> hub(
      new EventHub(std::move(store), options, stats.last_sequence));
  {
    absl::MutexLock lock(&hub->mu_);
    hub->last_receive_time_ = last_receive_time;
  }
  hub->catch_up_thread_ = std::thread([h = hub.get()] { h->CatchUpLoop(); });
  hub->commit_thread_ = std::thread([h = hub.get()] { h->CommitLoop(); });
  return hub;
}

EventHub::EventHub(std::unique_ptr<EventStore> store, HubOptions options,
                   std::uint64_t last_sequence)
    : store_(std::move(store)),
      options_(options),
      last_assigned_(last_sequence),
      last_fanned_out_(last_sequence),
      last_sequence_(last_sequence) {}

EventHub::~EventHub() { Shutdown(); }

absl::StatusOr<std::uint64_t> EventHub::Publish(v1::Event event) {
  std::promise<absl::StatusOr<std::uint64_t>> outcome;
  std::future<absl::StatusOr<std::uint64_t>> result = outcome.get_future();
  PublishAsync(std::move(event),
               [&outcome](absl::StatusOr<std::uint64_t> sequence) {
                 outcome.set_value(std::move(sequence));
               });
  return result.get();
}

void EventHub::PublishAsync(v1::Event event, PublishCallback done) {
  if (options_.external_sequences) {
    std::move(done)(absl::FailedPreconditionError(
        "the event store assigns sequences: publish through it"));
    return;
  }
  // Everything that does not need the sequence happens before the lock.
  EventKey key = KeyOf(event);
  if (!event.has_receive_time()) {
    const absl::Time now = absl::Now();
    event.mutable_receive_time()->set_seconds(absl::ToUnixSeconds(now));
    event.mutable_receive_time()->set_nanos(static_cast<std::int32_t>(
        (now - absl::FromUnixSeconds(absl::ToUnixSeconds(now))) /
        absl::Nanoseconds(1)));
  }
  const absl::Time receive_time = ToTime(event.receive_time());
  std::string id = event.id();
  event.clear_sequence();
  std::string body;
  if (!event.SerializeToString(&body)) {
    std::move(done)(
        absl::InvalidArgumentError("the event cannot be serialized"));
    return;
  }

  absl::ReleasableMutexLock lock(&mu_);
  if (shutting_down_) {
    ++publish_failures_total_;
    lock.Release();
    std::move(done)(absl::UnavailableError("the event hub is shutting down"));
    return;
  }
  // Concurrent publishers may carry receive times slightly out of sequence
  // order; the store's time index gets a non-decreasing one. The sequence
  // and the bytes that carry it come with the batch (CommitBatchLocked).
  last_receive_time_ = std::max(last_receive_time_, receive_time);
  pending_events_.push_back(
      StoredEvent{0, last_receive_time_, std::move(id),
                  std::make_shared<const std::string>(std::move(body))});
  pending_infos_.push_back(PendingInfo{std::move(key), std::move(done)});
  // Releasing mu_ wakes a committer waiting for CommitWanted(); a busy one
  // looks at the pending events when its batch is done.
}

void EventHub::CommitLoop() {
  // Named for top -H and perf, where an unnamed thread shows the process name.
  pthread_setname_np(pthread_self(), "hub-commit");
  absl::MutexLock lock(&mu_);
  while (true) {
    if (!pending_events_.empty()) {
      CommitBatchLocked();
      continue;
    }
    if (shutting_down_) return;
    mu_.Await(absl::Condition(this, &EventHub::CommitWanted));
  }
}

void EventHub::CommitBatchLocked() {
  std::vector<StoredEvent> events;
  std::vector<PendingInfo> infos;
  const std::size_t n =
      std::min(pending_events_.size(), options_.max_batch_events);
  if (n == pending_events_.size()) {
    events.swap(pending_events_);
    infos.swap(pending_infos_);
  } else {
    events.assign(std::make_move_iterator(pending_events_.begin()),
                  std::make_move_iterator(pending_events_.begin() + n));
    infos.assign(std::make_move_iterator(pending_infos_.begin()),
                 std::make_move_iterator(pending_infos_.begin() + n));
    pending_events_.erase(pending_events_.begin(), pending_events_.begin() + n);
    pending_infos_.erase(pending_infos_.begin(), pending_infos_.begin() + n);
  }
  committing_events_ = n;
  // Sequences are assigned to a batch as it is written, and only a batch the
  // store took uses them up: a failed write leaves no gap. (The store cuts a
  // failed batch off before it writes anything else, so its sequences cannot
  // come back beside the batch that reuses them.)
  const std::uint64_t first = last_assigned_ + 1;

  mu_.Unlock();
  for (std::size_t k = 0; k < n; ++k) {
    events[k].sequence = first + k;
    events[k].event_bytes = WithSequence(first + k, *events[k].event_bytes);
  }
  const absl::Time append_start = absl::Now();
  absl::Status status = store_->Append(events);
  if (options_.on_append) options_.on_append(absl::Now() - append_start, n);
  if (status.ok()) {
    FanOut(events,
           [&infos](std::size_t k) -> const EventKey& { return infos[k].key; });
  } else {
    status = absl::UnavailableError(absl::StrCat(
        "the event store cannot persist events: ", status.message()));
  }
  mu_.Lock();
  if (status.ok()) {
    last_assigned_ = first + n - 1;
    published_total_ += n;
    ++commit_batches_total_;
  } else {
    publish_failures_total_ += n;
  }
  mu_.Unlock();

  for (std::size_t k = 0; k < n; ++k) {
    if (status.ok()) {
      std::move(infos[k].done)(events[k].sequence);
    } else {
      std::move(infos[k].done)(status);
    }
  }
  // The callbacks may hold the last references to what they answer; drop
  // them before the next batch.
  infos.clear();
  events.clear();
  mu_.Lock();
  committing_events_ = 0;
}

absl::Status EventHub::Replicate(std::vector<StoredEvent> events,
                                 std::vector<EventKey> keys) {
  if (!options_.external_sequences) {
    return absl::FailedPreconditionError(
        "the hub assigns sequences: use PublishAsync");
  }
  if (events.size() != keys.size()) {
    return absl::InvalidArgumentError("one filter key per event is needed");
  }
  absl::MutexLock replicate_lock(&replicate_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) {
      return absl::UnavailableError("the event hub is shutting down");
    }
    // Only replicate_mu_'s holder moves last_assigned_ in this mode.
    std::size_t keep = 0;
    for (std::size_t k = 0; k < events.size(); ++k) {
      const std::uint64_t floor =
          keep > 0 ? events[keep - 1].sequence : last_assigned_;
      if (events[k].sequence <= floor) continue;
      if (keep != k) {
        events[keep] = std::move(events[k]);
        keys[keep] = std::move(keys[k]);
      }
      ++keep;
    }
    events.resize(keep);
    keys.resize(keep);
  }
  if (events.empty()) return absl::OkStatus();
  const absl::Time append_start = absl::Now();
  absl::Status status = store_->Append(events);
  if (options_.on_append) {
    options_.on_append(absl::Now() - append_start, events.size());
  }
  if (!status.ok()) {
    absl::MutexLock lock(&mu_);
    publish_failures_total_ += events.size();
    return absl::UnavailableError(
        absl::StrCat("the event store cannot keep events: ", status.message()));
  }
  FanOut(events, [&keys](std::size_t k) -> const EventKey& { return keys[k]; });
  absl::MutexLock lock(&mu_);
  last_assigned_ = events.back().sequence;
  published_total_ += events.size();
  ++commit_batches_total_;
  return absl::OkStatus();
}

void EventHub::FanOut(absl::Span<const StoredEvent> events,
                      absl::FunctionRef<const EventKey&(std::size_t)> key_of) {
  absl::MutexLock lock(&fan_mu_);
  // Before any subscriber is woken: one that got the batch's last event
  // and at once resumes after it, or reads a heartbeat, must find it
  // counted.
  last_fanned_out_ = events.back().sequence;
  last_sequence_.store(last_fanned_out_, std::memory_order_release);
  // One Delivery per event, made only when someone listens.
  std::vector<std::shared_ptr<const Delivery>> deliveries;
  if (!live_.empty()) {
    deliveries.reserve(events.size());
    for (const StoredEvent& event : events) {
      deliveries.push_back(MakeDelivery(event));
    }
  }
  std::size_t i = 0;
  while (i < live_.size()) {
    std::shared_ptr<State> s = live_[i];
    bool notify = false;
    bool cut_off = false;
    {
      absl::MutexLock state_lock(&s->mu);
      bool queued = false;
      for (std::size_t k = 0; k < events.size(); ++k) {
        const std::uint64_t sequence = events[k].sequence;
        if (sequence <= s->scanned) continue;
        s->scanned = sequence;
        if (!s->filter.Matches(key_of(k))) continue;
        if (s->queue.size() >= s->limit) {
          std::optional<std::size_t> dropped =
              EndLocked(*s, absl::StatusCode::kResourceExhausted,
                        absl::StrCat("the subscriber fell more than ", s->limit,
                                     " events behind"),
                        ResumePointAfter(0));
          if (dropped) dropped_total_ += *dropped;
          cut_off = true;
          break;
        }
        s->queue.push_back(deliveries[k]);
        queued = true;
      }
      if (cut_off || (queued && s->waiting)) {
        s->waiting = false;
        notify = true;
      }
    }
    if (cut_off) {
      live_[i] = std::move(live_.back());
      live_.pop_back();
      ++cut_off_total_;
    } else {
      ++i;
    }
    if (notify) Notify(*s);
  }
}

absl::StatusOr<std::unique_ptr<Subscription>> EventHub::Subscribe(
    const SubscribeOptions& options, SubscriptionSink* sink) {
  using Kind = StartPosition::Kind;
  const StartPosition& start = options.start;
  // Store reads happen before fan_mu_; trimming after them is caught by the
  // catch-up's gap check.
  const StoreStats stats = store_->Stats();
  // A store shared by several gateways may hold events this one has not read
  // yet: a subscriber that read them through another gateway resumes here
  // after them, and gets the rest as this gateway reads them.
  std::uint64_t newest_known = 0;
  if (options_.external_sequences && start.kind == Kind::kAfterSequence &&
      start.after_sequence > last_sequence()) {
    absl::StatusOr<std::uint64_t> newest = store_->NewestSequence();
    if (!newest.ok()) {
      return absl::UnavailableError(
          absl::StrCat("the event store cannot tell its newest sequence: ",
                       newest.status().message()));
    }
    newest_known = *newest;
  }
  std::uint64_t cursor = 0;
  switch (start.kind) {
    case Kind::kNow:
      break;
    case Kind::kAfterSequence:
      if (MissingAfter(stats, start.after_sequence)) {
        return WithResumeInfo(
            absl::OutOfRangeError(
                NotRetainedMessage(start.after_sequence, stats)),
            ResumePoint{start.after_sequence, OldestAvailable(stats),
                        last_sequence()});
      }
      cursor = start.after_sequence;
      break;
    case Kind::kOldest:
      // An empty store starts from the live head, below.
      if (stats.first_sequence != 0) cursor = stats.first_sequence - 1;
      break;
    case Kind::kFromTime: {
      absl::StatusOr<std::uint64_t> first =
          store_->FirstSequenceAtOrAfter(start.time);
      if (!first.ok()) {
        return absl::UnavailableError(absl::StrCat(
            "the event store cannot be read: ", first.status().message()));
      }
      cursor = *first > 0 ? *first - 1 : 0;
      break;
    }
  }

  auto state = std::make_shared<State>(options.filter,
                                       options_.subscriber_queue_limit, sink);
  absl::MutexLock lock(&fan_mu_);
  if (subscriptions_closed_) {
    return absl::UnavailableError("the event hub is shutting down");
  }
  const std::uint64_t head = last_fanned_out_;
  if (start.kind == Kind::kNow ||
      (start.kind == Kind::kOldest && stats.first_sequence == 0)) {
    cursor = head;
  }
  if (start.kind == Kind::kAfterSequence && cursor > head &&
      cursor > newest_known) {
    return absl::InvalidArgumentError(absl::StrCat(
        "after_sequence ", cursor, " is beyond the newest sequence, ",
        std::max(head, newest_known)));
  }
  {
    absl::MutexLock state_lock(&state->mu);
    state->scanned = cursor;
    state->last_taken = cursor;
    state->strict = start.kind == Kind::kAfterSequence;
    state->phase =
        cursor >= head ? State::Phase::kLive : State::Phase::kCatchUp;
  }
  subscriptions_.emplace(state.get(), state);
  if (cursor >= head) {
    live_.push_back(state);
  } else {
    ScheduleCatchUp(state);
  }
  return std::unique_ptr<Subscription>(new Subscription(this, state, cursor));
}

void EventHub::Unsubscribe(State* s) {
  std::shared_ptr<State> keep;
  {
    absl::MutexLock lock(&fan_mu_);
    auto it = subscriptions_.find(s);
    if (it != subscriptions_.end()) {
      keep = std::move(it->second);
      subscriptions_.erase(it);
      auto live = std::find(live_.begin(), live_.end(), keep);
      if (live != live_.end()) {
        *live = std::move(live_.back());
        live_.pop_back();
      }
    }
  }
  {
    // Waits for an OnReady() in progress; none follows.
    absl::MutexLock lock(&s->sink_mu);
    s->sink = nullptr;
  }
  // Nobody reads a cancelled subscription's status: no store access here.
  absl::MutexLock lock(&s->mu);
  EndLocked(*s, absl::StatusCode::kCancelled, "the subscription was cancelled",
            ResumePoint{});
}

void EventHub::ScheduleCatchUp(std::shared_ptr<State> state) {
  // Releasing catch_up_mu_ wakes the catch-up thread.
  absl::MutexLock lock(&catch_up_mu_);
  if (catch_up_stop_) return;
  catch_up_ready_.push_back(std::move(state));
}

void EventHub::CatchUpLoop() {
  pthread_setname_np(pthread_self(), "hub-catch-up");
  while (true) {
    std::shared_ptr<State> state;
    {
      absl::MutexLock lock(&catch_up_mu_,
                           absl::Condition(this, &EventHub::CatchUpWanted));
      if (catch_up_stop_) return;
      state = std::move(catch_up_ready_.front());
      catch_up_ready_.pop_front();
    }
    if (CatchUpStep(state)) ScheduleCatchUp(std::move(state));
  }
}

bool EventHub::CatchUpStep(const std::shared_ptr<State>& state) {
  State& s = *state;
  std::size_t max_events;
  {
    absl::MutexLock lock(&s.mu);
    if (s.phase != State::Phase::kCatchUp) return false;
    if (s.queue.size() > s.limit / 2) {
      s.parked = true;
      return false;
    }
    max_events = std::min(options_.catch_up_chunk, s.limit - s.queue.size());
  }
  bool at_end = false;
  if (!ReadIntoQueue(s, max_events, &at_end)) return false;
  if (!at_end) return true;
  return TrySwitchToLive(state);
}

bool EventHub::ReadIntoQueue(State& s, std::size_t max_events, bool* at_end) {
  std::uint64_t cursor;
  bool strict;
  {
    absl::MutexLock lock(&s.mu);
    if (s.phase != State::Phase::kCatchUp) return false;
    cursor = s.scanned;
    strict = s.strict;
  }
  absl::StatusOr<std::vector<StoredEvent>> events =
      store_->ReadAfter(cursor, max_events);
  std::optional<std::size_t> dropped;
  if (!events.ok()) {
    absl::MutexLock lock(&s.mu);
    dropped = EndLocked(s, absl::StatusCode::kUnavailable,
                        absl::StrCat("reading the event store failed: ",
                                     events.status().message()),
                        ResumePointAfter(0));
  } else if (strict &&
             (events->empty() || events->front().sequence > cursor + 1)) {
    const StoreStats stats = store_->Stats();
    if (MissingAfter(stats, cursor)) {
      absl::MutexLock lock(&s.mu);
      dropped = EndLocked(
          s, absl::StatusCode::kOutOfRange,
          absl::StrCat("the subscriber fell behind the retention window: ",
                       NotRetainedMessage(cursor, stats)),
          ResumePoint{0, OldestAvailable(stats), last_sequence()});
    }
  }
  if (dropped) {
    dropped_total_ += *dropped;
    Notify(s);
    return false;
  }
  if (!events.ok()) return false;

  *at_end = events->size() < max_events;
  bool notify = false;
  {
    absl::MutexLock lock(&s.mu);
    if (s.phase != State::Phase::kCatchUp) return false;
    bool queued = false;
    for (const StoredEvent& event : *events) {
      if (event.sequence <= s.scanned) continue;
      s.scanned = event.sequence;
      if (!CatchUpMatches(s.filter, event)) continue;
      s.queue.push_back(MakeDelivery(event));
      queued = true;
    }
    if (!events->empty()) s.strict = true;
    if (queued && s.waiting) {
      s.waiting = false;
      notify = true;
    }
  }
  if (notify) Notify(s);
  return true;
}

bool EventHub::TrySwitchToLive(const std::shared_ptr<State>& state) {
  State& s = *state;
  absl::MutexLock lock(&fan_mu_);
  if (subscriptions_closed_) return false;
  const std::uint64_t head = last_fanned_out_;
  std::uint64_t scanned;
  std::size_t room;
  {
    absl::MutexLock state_lock(&s.mu);
    if (s.phase != State::Phase::kCatchUp) return false;
    scanned = s.scanned;
    room = s.limit - s.queue.size();
  }
  if (scanned < head) {
    // Events were fanned out since the last read. Reading the rest while
    // holding fan_mu_ (no fan-out can run) guarantees that catch-up ends;
    // only done when it is small and fits, otherwise catch up some more.
    const std::uint64_t missing = head - scanned;
    if (missing > room || missing > options_.catch_up_chunk) return true;
    bool at_end = false;
    if (!ReadIntoQueue(s, missing, &at_end)) return false;
  }
  absl::MutexLock state_lock(&s.mu);
  if (s.phase != State::Phase::kCatchUp) return false;
  if (s.scanned < head) return true;
  s.phase = State::Phase::kLive;
  live_.push_back(state);
  return false;
}

HubStats EventHub::Stats() const {
  HubStats stats;
  const StoreStats store = store_->Stats();
  stats.first_sequence = store.first_sequence;
  stats.retained_events = store.retained_events;
  stats.retained_bytes = store.retained_bytes;
  stats.trimmed_total = store.trimmed_events_total;
  {
    absl::MutexLock lock(&mu_);
    stats.published_total = published_total_;
    stats.publish_failures_total = publish_failures_total_;
    stats.commit_batches_total = commit_batches_total_;
    stats.pending_publishes = pending_events_.size() + committing_events_;
  }
  {
    absl::MutexLock lock(&fan_mu_);
    for (const auto& [raw, s] : subscriptions_) {
      absl::MutexLock state_lock(&s->mu);
      // An ended subscription (cut off, fallen behind retention) stays
      // registered until its consumer cancels it, which a client that
      // stopped reading may never let happen: it is not streaming.
      if (s->phase == State::Phase::kEnded) continue;
      ++stats.subscribers_open;
      if (s->phase == State::Phase::kCatchUp) ++stats.subscribers_catching_up;
      stats.subscriber_queue_max =
          std::max<std::uint64_t>(stats.subscriber_queue_max, s->queue.size());
    }
    stats.subscribers_cut_off_total = cut_off_total_;
  }
  stats.events_dropped_total = dropped_total_.load();
  stats.last_sequence = last_sequence();
  return stats;
}

absl::Status EventHub::Health() const { return store_->Health(); }

void EventHub::Shutdown() {
  absl::MutexLock shutdown_lock(&shutdown_mu_);
  // No Replicate() runs once the store's reader has stopped.
  store_->Close();
  std::vector<PendingInfo> refused;
  {
    // Releasing mu_ wakes the committer, which sees shutting_down_.
    absl::MutexLock lock(&mu_);
    if (!shutting_down_) {
      shutting_down_ = true;
      refused.swap(pending_infos_);
      publish_failures_total_ += refused.size();
      pending_events_.clear();
    }
  }
  for (PendingInfo& info : refused) {
    std::move(info.done)(
        absl::UnavailableError("the event hub is shutting down"));
  }
  // The batch being written is acknowledged and fanned out normally.
  if (commit_thread_.joinable()) commit_thread_.join();
  {
    absl::MutexLock lock(&fan_mu_);
    subscriptions_closed_ = true;
    live_.clear();
    for (const auto& [raw, s] : subscriptions_) {
      std::optional<std::size_t> dropped;
      {
        absl::MutexLock state_lock(&s->mu);
        dropped =
            EndLocked(*s, absl::StatusCode::kUnavailable,
                      "the event stream is shutting down", ResumePointAfter(0));
      }
      if (dropped) {
        dropped_total_ += *dropped;
        Notify(*s);
      }
    }
  }
  {
    // Releasing catch_up_mu_ wakes the catch-up thread, which sees the stop.
    absl::MutexLock lock(&catch_up_mu_);
    catch_up_stop_ = true;
    catch_up_ready_.clear();
  }
  if (catch_up_thread_.joinable()) catch_up_thread_.join();
}

}  // namespace convocore::hub
