#include "services/groups/consumer_group.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/hub/resume_info.h"

namespace convocore::groups {

namespace v1 = convocore::webhooks::v1;

// A member's state is guarded by its group's mu_ (which the analysis cannot
// name from here), its sink by sink_mu.
struct ConsumerGroup::Member {
  Member(std::uint64_t id, std::uint32_t max_in_flight, MemberSink* sink)
      : id(id), max_in_flight(max_in_flight), sink(sink) {}

  const std::uint64_t id;
  const std::uint32_t max_in_flight;
  std::deque<Assignment> ready;  // assigned, not yet taken
  std::uint32_t held = 0;        // assigned and not yet settled or failed
  std::vector<std::uint64_t> unconfirmed;  // acked, not yet snapshotted
  std::vector<std::uint64_t> confirmed;    // acked and saved, not yet taken
  Clock::time_point confirmed_since;       // of the oldest in `confirmed`
  // Held when a Seek() forgot them: their acks and nacks are no-ops.
  absl::flat_hash_set<std::uint64_t> forgotten;
  bool waiting = false;  // Take() found nothing
  absl::Status end;

  absl::Mutex sink_mu;
  MemberSink* sink ABSL_GUARDED_BY(sink_mu);
};

struct ConsumerGroup::Feed final : hub::SubscriptionSink {
  explicit Feed(ConsumerGroup* group) : group(group) {}
  void OnReady() override { group->OnFeedReady(); }

  ConsumerGroup* const group;
  std::unique_ptr<hub::Subscription> subscription;
};

namespace {

// The longest a confirmation waits for events to ride with.
constexpr Clock::duration kConfirmationDelay = std::chrono::milliseconds(5);

std::string Truncated(std::string text) {
  if (text.size() > kMaxErrorBytes) text.resize(kMaxErrorBytes);
  return text;
}

bool Holds(absl::Span<const std::uint64_t> holders, std::uint64_t member) {
  return std::find(holders.begin(), holders.end(), member) != holders.end();
}

void SetTimestamp(absl::Time t, google::protobuf::Timestamp* out) {
  const std::int64_t nanos = absl::ToUnixNanos(t);
  out->set_seconds(nanos / 1'000'000'000);
  out->set_nanos(static_cast<std::int32_t>(nanos % 1'000'000'000));
}

}  // namespace

ConsumerGroup::ConsumerGroup(hub::EventHub* hub, GroupSettings settings,
                             GroupState state, std::size_t max_members,
                             std::size_t max_dead_letters)
    : hub_(hub),
      settings_(std::move(settings)),
      max_members_(max_members),
      max_dead_letters_(max_dead_letters) {
  floor_ = state.ack_floor_sequence();
  read_cursor_ = floor_;
  for (const SequenceRange& range : state.settled()) {
    settled_.InsertRange(range.first(), range.last());
  }
  for (v1::DeadLetter& letter : *state.mutable_dead_letters()) {
    const std::uint64_t sequence = letter.sequence();
    dead_letters_.emplace(sequence, std::move(letter));
  }
}

ConsumerGroup::~ConsumerGroup() {
  Close(absl::UnavailableError("the consumer group was closed"));
}

absl::StatusOr<std::unique_ptr<ConsumerGroup::Feed>> ConsumerGroup::Subscribe(
    const hub::StartPosition& start) {
  absl::StatusOr<hub::SubscribeOptions> options = FeedOptions(settings_, start);
  if (!options.ok()) return options.status();
  auto feed = std::make_unique<Feed>(this);
  absl::StatusOr<std::unique_ptr<hub::Subscription>> subscription =
      hub_->Subscribe(*options, feed.get());
  if (!subscription.ok()) return subscription.status();
  feed->subscription = *std::move(subscription);
  return feed;
}

absl::Status ConsumerGroup::Start(const hub::StartPosition& start,
                                  bool keep_floor) {
  absl::StatusOr<std::unique_ptr<Feed>> feed = Subscribe(start);
  absl::MutexLock lock(&mu_);
  if (!feed.ok()) {
    if (keep_floor && absl::IsOutOfRange(feed.status())) {
      out_of_range_ = OutOfRangeStatusLocked();
      return absl::OkStatus();
    }
    return feed.status();
  }
  if (!keep_floor) {
    floor_ = (*feed)->subscription->start_after();
    read_cursor_ = floor_;
  }
  feed_ = *std::move(feed);
  return absl::OkStatus();
}

absl::Status ConsumerGroup::OutOfRangeStatusLocked() const {
  const hub::ResumePoint point = hub_->ResumePointAfter(floor_);
  return hub::WithResumeInfo(
      absl::OutOfRangeError(absl::StrCat(
          "consumer group \"", settings_.name, "\" is at sequence ", floor_,
          ", below the gateway's retention: the oldest event still "
          "retained is ",
          point.oldest_available_sequence,
          ", so matching events it had not consumed are gone; move it with "
          "SeekConsumerGroup to go on")),
      point);
}

absl::StatusOr<std::uint64_t> ConsumerGroup::Join(std::uint32_t max_in_flight,
                                                  MemberSink* sink) {
  absl::MutexLock lock(&mu_);
  if (!closed_.ok()) return closed_;
  if (!out_of_range_.ok()) return out_of_range_;
  if (members_.size() >= max_members_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("consumer group \"", settings_.name, "\" already has ",
                     max_members_, " members"));
  }
  const std::uint64_t id = next_member_id_++;
  auto member = std::make_shared<Member>(id, max_in_flight, sink);
  // Take() finds nothing yet: the first assignment notifies.
  member->waiting = true;
  members_.push_back(std::move(member));
  // Nobody is notified here: the caller calls Take() when it is ready.
  Notify notify;
  DispatchLocked(&notify);
  return id;
}

void ConsumerGroup::Leave(std::uint64_t member_id) {
  std::shared_ptr<Member> member;
  Notify notify;
  {
    absl::MutexLock lock(&mu_);
    auto it = std::find_if(
        members_.begin(), members_.end(),
        [&](const std::shared_ptr<Member>& m) { return m->id == member_id; });
    if (it == members_.end()) return;
    member = *it;
    members_.erase(it);
    std::vector<std::uint64_t> held;
    for (auto& [sequence, entry] : in_flight_) {
      if (entry.member == member_id) held.push_back(sequence);
    }
    // What was assigned but never written was not delivered: it goes back
    // without using up an attempt.
    absl::flat_hash_set<std::uint64_t> unsent;
    for (const Assignment& assignment : member->ready) {
      unsent.insert(assignment.id);
    }
    for (std::uint64_t sequence : held) {
      InFlight& entry = in_flight_[sequence];
      entry.member = 0;
      if (unsent.contains(entry.delivery_id)) {
        --entry.attempts;
        redeliver_.push_back(sequence);
      } else {
        FailLocked(sequence, entry, "the member holding it disconnected");
      }
    }
    DispatchLocked(&notify);
  }
  {
    absl::MutexLock lock(&member->sink_mu);
    member->sink = nullptr;
  }
  NotifyAll(notify);
}

bool ConsumerGroup::Take(std::uint64_t member_id, std::size_t max_events,
                         std::size_t max_bytes, MemberBatch* out) {
  absl::MutexLock lock(&mu_);
  Member* member = FindLocked(member_id);
  if (member == nullptr) {
    out->end = absl::CancelledError("the member left its group");
    return true;
  }
  if (!member->end.ok()) {
    out->end = member->end;
    return true;
  }
  std::size_t bytes = 0;
  while (!member->ready.empty() && out->events.size() < max_events &&
         bytes < max_bytes) {
    Assignment assignment = std::move(member->ready.front());
    member->ready.pop_front();
    auto it = in_flight_.find(assignment.delivery->sequence);
    // Settled, expired or forgotten before it was sent: nothing to send.
    if (it == in_flight_.end() || it->second.member != member_id ||
        it->second.delivery_id != assignment.id) {
      continue;
    }
    bytes += assignment.delivery->event_bytes->size();
    out->events.push_back(std::move(assignment));
  }
  out->acknowledged = std::move(member->confirmed);
  member->confirmed.clear();
  member->confirmed_since = Clock::time_point();
  if (out->events.empty() && out->acknowledged.empty()) {
    member->waiting = true;
    return false;
  }
  member->waiting = false;
  return true;
}

absl::Status ConsumerGroup::Settle(std::uint64_t member_id,
                                   absl::Span<const std::uint64_t> acks,
                                   absl::Span<const NackRequest> nacks) {
  Notify notify;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    Member* member = FindLocked(member_id);
    if (member == nullptr) return absl::OkStatus();
    for (std::uint64_t sequence : acks) {
      if (member->forgotten.contains(sequence)) continue;
      if (sequence <= floor_ || settled_.Contains(sequence)) {
        member->unconfirmed.push_back(sequence);
        dirty_ = true;
        continue;
      }
      auto it = in_flight_.find(sequence);
      if (it == in_flight_.end() || !Holds(it->second.holders, member_id)) {
        status = absl::InvalidArgumentError(
            absl::StrCat("ack_sequences: event ", sequence,
                         " was not delivered to this member"));
        break;
      }
      if (it->second.member != 0) {
        if (Member* holder = FindLocked(it->second.member)) --holder->held;
      }
      SettleLocked(sequence);
      member->unconfirmed.push_back(sequence);
    }
    for (std::size_t k = 0; status.ok() && k < nacks.size(); ++k) {
      const std::uint64_t sequence = nacks[k].sequence;
      if (member->forgotten.contains(sequence) || sequence <= floor_ ||
          settled_.Contains(sequence)) {
        continue;
      }
      auto it = in_flight_.find(sequence);
      if (it == in_flight_.end() || !Holds(it->second.holders, member_id)) {
        status = absl::InvalidArgumentError(absl::StrCat(
            "nacks: event ", sequence, " was not delivered to this member"));
        break;
      }
      // Already redelivered after its deadline: that delivery decides.
      if (it->second.member != member_id) continue;
      --member->held;
      it->second.member = 0;
      FailLocked(
          sequence, it->second,
          nacks[k].error.empty() ? "nacked without an error" : nacks[k].error);
    }
    DispatchLocked(&notify);
  }
  NotifyAll(notify);
  return status;
}

void ConsumerGroup::Tick(Clock::time_point now) {
  Notify notify;
  bool resubscribe = false;
  std::uint64_t cursor = 0;
  {
    absl::MutexLock lock(&mu_);
    if (!closed_.ok()) return;
    // In flight is bounded by the members' max_in_flight (and what their
    // leaving left waiting), so a scan is cheap next to a deadline queue
    // that would keep every acked delivery until its deadline.
    std::vector<std::uint64_t> expired;
    for (const auto& [sequence, entry] : in_flight_) {
      if (entry.member != 0 && entry.deadline <= now) {
        expired.push_back(sequence);
      }
    }
    for (std::uint64_t sequence : expired) {
      InFlight& entry = in_flight_[sequence];
      if (Member* holder = FindLocked(entry.member)) --holder->held;
      entry.member = 0;
      FailLocked(sequence, entry,
                 absl::StrCat("the ack deadline (",
                              absl::FormatDuration(settings_.ack_deadline),
                              ") passed"));
    }
    if (feed_ != nullptr && !resubscribe_) {
      PassLocked(feed_->subscription->ConsideredThrough());
    }
    for (const std::shared_ptr<Member>& member : members_) {
      if (member->waiting && !member->confirmed.empty() &&
          now - member->confirmed_since >= kConfirmationDelay) {
        member->waiting = false;
        notify.push_back(member);
      }
    }
    if (resubscribe_ && now >= resubscribe_at_ && out_of_range_.ok()) {
      resubscribe = true;
      cursor = read_cursor_;
    }
    DispatchLocked(&notify);
  }
  NotifyAll(notify);
  if (!resubscribe) return;

  absl::StatusOr<std::unique_ptr<Feed>> feed =
      Subscribe(hub::StartPosition::AfterSequence(cursor));
  std::unique_ptr<Feed> unused;  // cancelled after the lock is released
  notify.clear();
  {
    absl::MutexLock lock(&mu_);
    if (!feed.ok()) {
      if (absl::IsOutOfRange(feed.status())) {
        out_of_range_ = OutOfRangeStatusLocked();
        EndMembersLocked(out_of_range_, &notify);
      } else {
        resubscribe_at_ = Clock::now() + std::chrono::seconds(1);
      }
    } else if (closed_.ok() && resubscribe_ && read_cursor_ == cursor) {
      unused = std::move(feed_);
      feed_ = *std::move(feed);
      resubscribe_ = false;
      DispatchLocked(&notify);
    } else {
      unused = *std::move(feed);  // a Seek() or Close() came first
    }
  }
  NotifyAll(notify);
}

bool ConsumerGroup::Snapshot(GroupState* state, Confirmations* confirm) {
  absl::MutexLock lock(&mu_);
  if (!dirty_) return false;
  dirty_ = false;
  SettingsToProto(settings_, state->mutable_settings());
  state->set_ack_floor_sequence(floor_);
  for (const auto& [first, last] : settled_.ranges()) {
    SequenceRange* range = state->add_settled();
    range->set_first(first);
    range->set_last(last);
  }
  for (const auto& [sequence, letter] : dead_letters_) {
    *state->add_dead_letters() = letter;
  }
  for (const std::shared_ptr<Member>& member : members_) {
    if (member->unconfirmed.empty()) continue;
    confirm->emplace_back(member->id, std::move(member->unconfirmed));
    member->unconfirmed.clear();
  }
  return true;
}

void ConsumerGroup::Confirm(Confirmations confirm, bool saved) {
  Notify notify;
  {
    absl::MutexLock lock(&mu_);
    if (!saved) dirty_ = true;
    for (auto& entry : confirm) {
      const std::uint64_t id = entry.first;
      const std::vector<std::uint64_t>& sequences = entry.second;
      auto it = std::find_if(
          members_.begin(), members_.end(),
          [id](const std::shared_ptr<Member>& m) { return m->id == id; });
      if (it == members_.end()) continue;
      Member& member = **it;
      std::vector<std::uint64_t>& into =
          saved ? member.confirmed : member.unconfirmed;
      into.insert(into.end(), sequences.begin(), sequences.end());
      // A member that holds events gets its confirmations with the next
      // events it is sent (Tick() sends them if that takes long); one that
      // holds none gets them now.
      if (saved && member.waiting && member.held == 0) {
        member.waiting = false;
        notify.push_back(*it);
      } else if (saved && member.confirmed_since == Clock::time_point()) {
        member.confirmed_since = Clock::now();
      }
    }
  }
  NotifyAll(notify);
}

v1::ConsumerGroup ConsumerGroup::Info() const {
  v1::ConsumerGroup info;
  SettingsToProto(settings_, &info);
  absl::MutexLock lock(&mu_);
  info.set_ack_floor_sequence(floor_);
  info.set_settled_above_floor(settled_.size());
  info.set_in_flight_events(in_flight_.size());
  info.set_dead_letter_count(dead_letters_.size());
  info.set_connected_members(static_cast<std::uint32_t>(members_.size()));
  info.set_last_sequence(hub_->last_sequence());
  return info;
}

std::size_t ConsumerGroup::DeadLettersWaiting() const {
  absl::MutexLock lock(&mu_);
  return dead_letter_waiting_.size();
}

absl::Status ConsumerGroup::Seek(const hub::StartPosition& start) {
  absl::StatusOr<std::unique_ptr<Feed>> feed = Subscribe(start);
  if (!feed.ok()) return feed.status();
  std::unique_ptr<Feed> unused;
  Notify notify;
  {
    absl::MutexLock lock(&mu_);
    if (!closed_.ok()) return closed_;
    unused = std::move(feed_);
    feed_ = *std::move(feed);
    floor_ = feed_->subscription->start_after();
    read_cursor_ = floor_;
    settled_ = SequenceSet();
    for (const std::shared_ptr<Member>& member : members_) {
      member->ready.clear();
      member->held = 0;
    }
    for (const auto& [sequence, entry] : in_flight_) {
      for (std::uint64_t holder : entry.holders) {
        if (Member* member = FindLocked(holder)) {
          member->forgotten.insert(sequence);
        }
      }
    }
    in_flight_.clear();
    redeliver_.clear();
    dead_letter_waiting_.clear();
    resubscribe_ = false;
    out_of_range_ = absl::OkStatus();
    dirty_ = true;
    DispatchLocked(&notify);
  }
  NotifyAll(notify);
  return absl::OkStatus();
}

std::vector<v1::DeadLetter> ConsumerGroup::DeadLetters(
    std::uint64_t after, std::size_t limit) const {
  std::vector<v1::DeadLetter> letters;
  absl::MutexLock lock(&mu_);
  for (auto it = dead_letters_.upper_bound(after);
       it != dead_letters_.end() && letters.size() < limit; ++it) {
    letters.push_back(it->second);
  }
  return letters;
}

std::vector<std::uint64_t> ConsumerGroup::DeadLetterSequences(
    absl::Span<const std::uint64_t> sequences) const {
  std::vector<std::uint64_t> found;
  absl::MutexLock lock(&mu_);
  if (sequences.empty()) {
    for (const auto& [sequence, letter] : dead_letters_) {
      found.push_back(sequence);
    }
    return found;
  }
  for (std::uint64_t sequence : sequences) {
    if (dead_letters_.contains(sequence)) found.push_back(sequence);
  }
  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end()), found.end());
  return found;
}

std::vector<std::uint64_t> ConsumerGroup::Replay(
    std::vector<std::shared_ptr<const hub::Delivery>> events) {
  std::vector<std::uint64_t> replayed;
  Notify notify;
  {
    absl::MutexLock lock(&mu_);
    for (std::shared_ptr<const hub::Delivery>& event : events) {
      const std::uint64_t sequence = event->sequence;
      if (dead_letters_.erase(sequence) == 0) continue;
      // Unsettle it: below the floor, the floor moves back under it and
      // what it passed stays settled.
      if (sequence <= floor_) {
        settled_.InsertRange(sequence + 1, floor_);
        floor_ = sequence - 1;
      } else {
        settled_.Erase(sequence);
      }
      InFlight& entry = in_flight_[sequence];
      entry.delivery = std::move(event);
      redeliver_.push_back(sequence);
      replayed.push_back(sequence);
    }
    if (!replayed.empty()) dirty_ = true;
    DrainWaitingLocked();
    DispatchLocked(&notify);
  }
  NotifyAll(notify);
  return replayed;
}

std::vector<std::uint64_t> ConsumerGroup::Drop(
    absl::Span<const std::uint64_t> sequences) {
  std::vector<std::uint64_t> dropped;
  absl::MutexLock lock(&mu_);
  for (std::uint64_t sequence : sequences) {
    if (dead_letters_.erase(sequence) > 0) dropped.push_back(sequence);
  }
  if (!dropped.empty()) dirty_ = true;
  DrainWaitingLocked();
  return dropped;
}

void ConsumerGroup::Close(absl::Status status) {
  std::unique_ptr<Feed> feed;
  Notify notify;
  {
    absl::MutexLock lock(&mu_);
    if (!closed_.ok()) return;
    closed_ = std::move(status);
    feed = std::move(feed_);
    EndMembersLocked(closed_, &notify);
  }
  NotifyAll(notify);
  // `feed` is cancelled here, with no group lock held: the hub may be
  // calling OnFeedReady(), which takes mu_.
}

void ConsumerGroup::OnFeedReady() {
  Notify notify;
  {
    absl::MutexLock lock(&mu_);
    DispatchLocked(&notify);
  }
  NotifyAll(notify);
}

std::shared_ptr<ConsumerGroup::Member>* ConsumerGroup::MemberWithRoomLocked(
    std::uint64_t avoid) {
  std::shared_ptr<Member>* fallback = nullptr;
  for (std::size_t k = 0; k < members_.size(); ++k) {
    const std::size_t i = (next_member_index_ + k) % members_.size();
    Member& m = *members_[i];
    if (!m.end.ok() || m.held >= m.max_in_flight) continue;
    if (m.id != avoid) return &members_[i];
    if (fallback == nullptr) fallback = &members_[i];
  }
  return fallback;
}

void ConsumerGroup::DispatchLocked(Notify* notify) {
  const Clock::time_point deadline =
      Clock::now() + absl::ToChronoNanoseconds(settings_.ack_deadline);
  while (closed_.ok() && out_of_range_.ok() && !members_.empty()) {
    if (MemberWithRoomLocked(0) == nullptr) return;
    std::uint64_t sequence = 0;
    InFlight* entry = nullptr;
    if (!redeliver_.empty()) {
      sequence = redeliver_.front();
      redeliver_.pop_front();
      auto it = in_flight_.find(sequence);
      if (it == in_flight_.end() || it->second.member != 0) continue;
      entry = &it->second;
    } else {
      if (feed_ == nullptr || resubscribe_) return;
      absl::StatusOr<std::shared_ptr<const hub::Delivery>> next =
          feed_->subscription->Next();
      if (!next.ok()) {
        HandleFeedEndLocked(next.status(), notify);
        return;
      }
      if (*next == nullptr) {
        PassLocked(feed_->subscription->ConsideredThrough());
        return;
      }
      sequence = (*next)->sequence;
      if (sequence <= read_cursor_) continue;  // read again after a resubscribe
      PassLocked(sequence - 1);
      read_cursor_ = sequence;
      // Acked before a restart: the settled set outlived the feed.
      if (sequence <= floor_ || settled_.Contains(sequence)) continue;
      entry = &in_flight_[sequence];
      entry->delivery = *std::move(next);
    }
    // A redelivery goes to another member than the last when one has room.
    std::shared_ptr<Member>* member = MemberWithRoomLocked(
        entry->holders.empty() ? 0 : entry->holders.back());
    next_member_index_ = static_cast<std::size_t>(member - members_.data()) + 1;
    AssignLocked(*member, sequence, *entry, deadline, notify);
  }
}

void ConsumerGroup::AssignLocked(const std::shared_ptr<Member>& member,
                                 std::uint64_t sequence, InFlight& entry,
                                 Clock::time_point deadline, Notify* notify) {
  ++entry.attempts;
  entry.member = member->id;
  if (!Holds(entry.holders, member->id)) entry.holders.push_back(member->id);
  ++member->held;
  entry.delivery_id = next_delivery_id_++;
  entry.deadline = deadline;
  // Delivered again after a seek: this delivery's ack counts.
  member->forgotten.erase(sequence);
  member->ready.push_back(
      Assignment{entry.delivery, entry.attempts, entry.delivery_id});
  if (member->waiting) {
    member->waiting = false;
    notify->push_back(member);
  }
}

void ConsumerGroup::FailLocked(std::uint64_t sequence, InFlight& entry,
                               std::string reason) {
  entry.last_error = Truncated(std::move(reason));
  if (entry.attempts < settings_.max_delivery_attempts) {
    redeliver_.push_back(sequence);
    return;
  }
  if (dead_letters_.size() >= max_dead_letters_) {
    dead_letter_waiting_.push_back(sequence);
    return;
  }
  DeadLetterLocked(sequence, entry);
}

void ConsumerGroup::DeadLetterLocked(std::uint64_t sequence,
                                     const InFlight& entry) {
  v1::DeadLetter letter;
  letter.set_sequence(sequence);
  letter.set_delivery_attempts(entry.attempts);
  letter.set_last_error(entry.last_error);
  SetTimestamp(absl::Now(), letter.mutable_dead_letter_time());
  dead_letters_[sequence] = std::move(letter);
  SettleLocked(sequence);
}

void ConsumerGroup::DrainWaitingLocked() {
  while (!dead_letter_waiting_.empty() &&
         dead_letters_.size() < max_dead_letters_) {
    const std::uint64_t sequence = dead_letter_waiting_.front();
    dead_letter_waiting_.pop_front();
    auto it = in_flight_.find(sequence);
    if (it != in_flight_.end()) DeadLetterLocked(sequence, it->second);
  }
}

void ConsumerGroup::SettleLocked(std::uint64_t sequence) {
  in_flight_.erase(sequence);
  // Most acks come in order: the floor moves without touching the set.
  if (sequence == floor_ + 1) {
    floor_ = settled_.AdvanceFloor(sequence);
  } else {
    settled_.Insert(sequence);
    floor_ = settled_.AdvanceFloor(floor_);
  }
  dirty_ = true;
}

void ConsumerGroup::PassLocked(std::uint64_t through) {
  if (through <= read_cursor_) return;
  // After a restart the floor may be above the read cursor (the settled set
  // outlived the feed): what lies below the floor is settled already.
  const std::uint64_t from = std::max(read_cursor_, floor_) + 1;
  if (from == floor_ + 1) {
    floor_ = settled_.AdvanceFloor(std::max(through, floor_));
  } else {
    settled_.InsertRange(from, through);
    floor_ = settled_.AdvanceFloor(floor_);
  }
  read_cursor_ = through;
  dirty_ = true;
}

void ConsumerGroup::HandleFeedEndLocked(const absl::Status& status,
                                        Notify* notify) {
  switch (status.code()) {
    case absl::StatusCode::kCancelled:
      return;
    case absl::StatusCode::kOutOfRange:
      out_of_range_ = OutOfRangeStatusLocked();
      EndMembersLocked(out_of_range_, notify);
      return;
    case absl::StatusCode::kResourceExhausted:
      // Its members were slower than the live stream: read the store from
      // where the group got to, at once.
      resubscribe_ = true;
      resubscribe_at_ = Clock::now();
      return;
    default:  // the store could not be read: try again shortly
      resubscribe_ = true;
      resubscribe_at_ = Clock::now() + std::chrono::seconds(1);
      return;
  }
}

void ConsumerGroup::EndMembersLocked(const absl::Status& status,
                                     Notify* notify) {
  for (const std::shared_ptr<Member>& member : members_) {
    if (!member->end.ok()) continue;
    member->end = status;
    member->ready.clear();
    notify->push_back(member);
  }
}

ConsumerGroup::Member* ConsumerGroup::FindLocked(std::uint64_t id) {
  for (const std::shared_ptr<Member>& member : members_) {
    if (member->id == id) return member.get();
  }
  return nullptr;
}

void ConsumerGroup::NotifyAll(const Notify& notify) {
  for (const std::shared_ptr<Member>& member : notify) {
    absl::MutexLock lock(&member->sink_mu);
    if (member->sink != nullptr) member->sink->OnReady();
  }
}

}  // namespace convocore::groups
