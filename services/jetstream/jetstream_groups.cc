#include "services/jetstream/jetstream_groups.h"

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <thread>
#include <utility>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "convocore/webhooks/v1/events.pb.h"
#include "services/hub/event_filter.h"
#include "services/hub/resume_info.h"
#include "services/jetstream/group_layout.h"
#include "services/jetstream/nats_calls.h"

namespace convocore::jetstream {
namespace {

namespace v1 = convocore::webhooks::v1;
using groups::Clock;

// cnats' JetStream error codes we act on.
constexpr int kConsumerNotFound = 10014;
constexpr int kStreamNotFound = 10059;

// The header of a replayed event: its sequence in the events stream.
constexpr char kSequenceHeader[] = "Convocore-Sequence";
constexpr int kMaxFetch = 256;
// A consumer that several looks in a row did not find was deleted, not
// re-made by a seek on another replica.
constexpr int kMissingChecks = 3;
constexpr absl::Duration kRetryPause = absl::Milliseconds(200);
constexpr absl::Duration kNoWaitReply = absl::Milliseconds(200);
constexpr absl::Duration kReplayCheck = absl::Milliseconds(500);

using internal::ApiOptions;
using internal::Millis;
using internal::Nanos;
using internal::NatsError;

absl::Status NotFound(absl::string_view name) {
  return absl::NotFoundError(
      absl::StrCat("consumer group \"", name, "\" does not exist"));
}

}  // namespace

// The groups' state as JetStream keeps it.
struct JetStreamGroups::Found {
  groups::GroupSettings settings;
  std::uint64_t ack_floor = 0;  // stream sequence
  std::uint64_t delivered = 0;  // stream sequence
  std::uint64_t ack_pending = 0;
  // When this consumer was made: a seek makes another under the same name.
  std::int64_t created = 0;
};

// This replica's side of one group: its members here, and the two threads
// that fetch for them and settle what they return. Lock order: a member's
// sink lock, then (the reactor's, then) mu_.
class JetStreamGroups::Group final : public groups::GroupHandle {
 public:
  Group(JetStreamGroups* owner, groups::GroupSettings settings,
        hub::EventFilter filter, std::int64_t created)
      : owner_(owner),
        settings_(std::move(settings)),
        names_(NamesFor(owner->stream_, settings_.name)),
        filter_(std::move(filter)),
        created_(created) {}
  ~Group() override { Close(absl::UnavailableError("the group was closed")); }

  absl::Status Start() {
    if (absl::Status bound = Bind(); !bound.ok()) return bound;
    fetcher_ = std::thread([this] { FetchLoop(); });
    settler_ = std::thread([this] { SettleLoop(); });
    return absl::OkStatus();
  }

  const groups::GroupSettings& settings() const override { return settings_; }

  absl::StatusOr<std::uint64_t> Join(std::uint32_t max_in_flight,
                                     groups::MemberSink* sink) {
    auto member = std::make_shared<Member>();
    member->max_in_flight = max_in_flight;
    member->self = member;
    {
      // Before the group's lock: a sink lock is never taken under it.
      absl::MutexLock sink_lock(&member->sink_mu);
      member->sink = sink;
    }
    absl::MutexLock lock(&mu_);
    if (!closed_.ok()) return closed_;
    if (!out_of_range_.ok()) return out_of_range_;
    if (members_.size() >= owner_->options_.max_members_per_group) {
      return absl::ResourceExhaustedError(
          absl::StrCat("consumer group \"", settings_.name, "\" already has ",
                       members_.size(), " members on this gateway"));
    }
    member->id = next_member_id_++;
    members_.push_back(member);
    return member->id;
  }

  bool Take(std::uint64_t member_id, std::size_t max_events,
            std::size_t max_bytes, groups::MemberBatch* out) override {
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
    while (!member->ready.empty() && out->events.size() < max_events) {
      groups::Assignment& next = member->ready.front();
      auto held = member->held.find(next.delivery->sequence);
      if (held == member->held.end() || held->second.id != next.id) {
        member->ready.pop_front();  // expired or settled before it was sent
        continue;
      }
      const std::size_t size = next.delivery->event_bytes->size();
      if (!out->events.empty() && bytes + size > max_bytes) break;
      bytes += size;
      out->events.push_back(std::move(next));
      member->ready.pop_front();
    }
    out->acknowledged.swap(member->confirmed);
    if (out->events.empty() && out->acknowledged.empty()) {
      member->waiting = true;
      return false;
    }
    return true;
  }

  absl::Status Settle(std::uint64_t member_id,
                      absl::Span<const std::uint64_t> acks,
                      absl::Span<const groups::NackRequest> nacks) override {
    absl::Status status;
    Notify notify;
    {
      absl::MutexLock lock(&mu_);
      Member* member = FindLocked(member_id);
      // Once stopped, what members hold is given back by Close().
      if (member == nullptr || stop_) return absl::OkStatus();
      for (std::uint64_t sequence : acks) {
        if (member->forgotten.contains(sequence) ||
            member->acking.contains(sequence)) {
          continue;
        }
        if (auto it = member->held.find(sequence); it != member->held.end()) {
          member->acking.insert(sequence);
          tasks_.push_back(
              Task{Task::kAck, member_id, sequence, std::move(it->second), ""});
          member->held.erase(it);
        } else if (auto late = member->expired.find(sequence);
                   late != member->expired.end()) {
          // Past its deadline, it may be another member's now: the ack
          // still settles it, as the contract allows.
          member->acking.insert(sequence);
          tasks_.push_back(Task{Task::kAck, member_id, sequence,
                                std::move(late->second), ""});
          member->expired.erase(late);
        } else if (member->acked.contains(sequence)) {
          member->confirmed.push_back(sequence);  // acked before: a no-op
          if (member->waiting) notify.push_back(member->self.lock());
        } else {
          status = absl::InvalidArgumentError(
              absl::StrCat("ack_sequences: event ", sequence,
                           " was not delivered to this member"));
          break;
        }
      }
      for (std::size_t k = 0; status.ok() && k < nacks.size(); ++k) {
        const std::uint64_t sequence = nacks[k].sequence;
        auto it = member->held.find(sequence);
        if (it == member->held.end()) {
          if (member->expired.contains(sequence) ||
              member->acked.contains(sequence) ||
              member->acking.contains(sequence) ||
              member->forgotten.contains(sequence)) {
            continue;  // its deadline or an ack decided already
          }
          status = absl::InvalidArgumentError(absl::StrCat(
              "nacks: event ", sequence, " was not delivered to this member"));
          break;
        }
        std::string error =
            nacks[k].error.empty()
                ? "nacked without an error"
                : nacks[k].error.substr(0, groups::kMaxErrorBytes);
        tasks_.push_back(Task{Task::kFail, member_id, sequence,
                              std::move(it->second), std::move(error)});
        member->held.erase(it);
      }
    }
    NotifyAll(notify);
    return status;
  }

  void Leave(std::uint64_t member_id) override {
    std::shared_ptr<Member> member;
    {
      absl::MutexLock lock(&mu_);
      auto it = std::find_if(
          members_.begin(), members_.end(),
          [&](const std::shared_ptr<Member>& m) { return m->id == member_id; });
      if (it == members_.end()) return;
      member = *it;
      members_.erase(it);
      for (auto& [sequence, held] : member->held) {
        if (stop_) {
          // The settler may be gone: give it back here.
          natsMsg_Nak(held.msg, nullptr);
          natsMsg_Destroy(held.msg);
          continue;
        }
        tasks_.push_back(Task{Task::kFail, member_id, sequence, std::move(held),
                              "the member holding it disconnected"});
      }
      member->held.clear();
      for (auto& [sequence, held] : member->expired) natsMsg_Destroy(held.msg);
      member->expired.clear();
      member->ready.clear();
    }
    absl::MutexLock sink_lock(&member->sink_mu);
    member->sink = nullptr;
  }

  // Ends every member with `status` and stops fetching; Close() finishes.
  // Idempotent.
  void Stop(absl::Status status) {
    Notify notify;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      stop_ = true;
      closed_ = std::move(status);
      for (const std::shared_ptr<Member>& member : members_) {
        member->end = closed_;
        notify.push_back(member);
      }
    }
    NotifyAll(notify);
  }

  // Stop(), then waits for the fetch (at most fetch_wait) and the settling
  // of what members returned, and gives back what they still held.
  // Idempotent.
  void Close(absl::Status status) {
    Stop(std::move(status));
    if (fetcher_.joinable()) fetcher_.join();
    if (settler_.joinable()) settler_.join();  // runs the tasks left
    {
      absl::MutexLock lock(&mu_);
      for (const std::shared_ptr<Member>& member : members_) {
        for (auto& [sequence, held] : member->held) {
          natsMsg_Nak(held.msg, nullptr);
          natsMsg_Destroy(held.msg);
        }
        for (auto& [sequence, held] : member->expired) {
          natsMsg_Destroy(held.msg);
        }
        member->held.clear();
        member->expired.clear();
        member->ready.clear();
      }
    }
    // Only now: acking a message needs the subscription it came from.
    for (natsSubscription* sub : subscriptions_) {
      natsSubscription_Unsubscribe(sub);
      natsSubscription_Destroy(sub);
    }
    subscriptions_.clear();
    main_ = replay_ = nullptr;
  }

  struct Counts {
    std::size_t members = 0;
    std::size_t held = 0;
  };
  Counts counts() const {
    absl::MutexLock lock(&mu_);
    Counts counts;
    counts.members = members_.size();
    for (const std::shared_ptr<Member>& member : members_) {
      counts.held += member->held.size();
    }
    return counts;
  }

 private:
  struct Held {
    natsMsg* msg = nullptr;  // owned
    std::uint32_t attempt = 0;
    Clock::time_point deadline;
    std::uint64_t id = 0;  // of the Assignment made for it
  };
  // Guarded by the group's mu_, but for `sink`.
  struct Member {
    std::uint64_t id = 0;
    std::uint32_t max_in_flight = 0;
    std::weak_ptr<Member> self;
    absl::Mutex sink_mu;
    groups::MemberSink* sink ABSL_GUARDED_BY(sink_mu) = nullptr;
    std::deque<groups::Assignment> ready;  // not taken yet; in `held` too
    absl::btree_map<std::uint64_t, Held> held;
    // Past their deadline: JetStream redelivers them, but a late ack still
    // counts. At most a few max_in_flight of them, oldest dropped first.
    absl::btree_map<std::uint64_t, Held> expired;
    // Acked recently, so that an ack sent again is a no-op.
    absl::flat_hash_set<std::uint64_t> acked;
    // Being acked now (AckSync queued or running): an ack again is a no-op.
    absl::flat_hash_set<std::uint64_t> acking;
    // Held before a seek: their acks and nacks no longer mean anything.
    absl::flat_hash_set<std::uint64_t> forgotten;
    std::deque<std::uint64_t> acked_order;
    std::vector<std::uint64_t> confirmed;
    absl::Status end;
    bool waiting = true;  // Take() found nothing since the last OnReady()
  };
  struct Task {
    enum Kind { kAck, kFail };
    Kind kind = kAck;
    std::uint64_t member = 0;
    std::uint64_t sequence = 0;
    Held held;
    std::string error;  // kFail
  };
  using Notify = std::vector<std::shared_ptr<Member>>;

  static void NotifyAll(const Notify& notify) {
    for (const std::shared_ptr<Member>& member : notify) {
      if (member == nullptr) continue;
      absl::MutexLock lock(&member->sink_mu);
      if (member->sink != nullptr) member->sink->OnReady();
    }
  }

  Member* FindLocked(std::uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const std::shared_ptr<Member>& member : members_) {
      if (member->id == id) return member.get();
    }
    return nullptr;
  }

  int RoomLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::size_t room = 0;
    for (const std::shared_ptr<Member>& member : members_) {
      if (member->end.ok() && member->held.size() < member->max_in_flight) {
        room += member->max_in_flight - member->held.size();
      }
    }
    return static_cast<int>(std::min<std::size_t>(room, kMaxFetch));
  }

  // Whether a fetch is worth its round trip: one per freed slot would cap a
  // group at one event per round trip, so a fetch waits until half the
  // members' room (or a full batch) is free.
  bool WorthFetchingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::size_t capacity = 0;
    for (const std::shared_ptr<Member>& member : members_) {
      if (member->end.ok()) capacity += member->max_in_flight;
    }
    const std::size_t room = static_cast<std::size_t>(RoomLocked());
    return room > 0 && (2 * room >= std::min<std::size_t>(capacity, kMaxFetch));
  }

  std::shared_ptr<Member> MemberWithRoomLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (std::size_t k = 0; k < members_.size(); ++k) {
      const std::shared_ptr<Member>& member =
          members_[(next_member_index_ + k) % members_.size()];
      if (member->end.ok() && member->held.size() < member->max_in_flight) {
        next_member_index_ = (next_member_index_ + k + 1) % members_.size();
        return member;
      }
    }
    return nullptr;
  }

  // (Re)binds the pull subscriptions to the group's two consumers.
  absl::Status Bind() {
    jsOptions options = ApiOptions(owner_->options_.api_wait);
    jsSubOptions sub;
    jsSubOptions_Init(&sub);
    sub.Stream = owner_->stream_.c_str();
    sub.Consumer = names_.consumer.c_str();
    const std::string all = absl::StrCat(owner_->subject_prefix(), ".>");
    jsErrCode error = static_cast<jsErrCode>(0);
    natsSubscription* main = nullptr;
    if (natsStatus s =
            js_PullSubscribe(&main, owner_->js(), all.c_str(),
                             names_.consumer.c_str(), &options, &sub, &error);
        s != NATS_OK) {
      if (error == kConsumerNotFound) return NotFound(settings_.name);
      return NatsError(
          absl::StrCat("cannot read consumer group \"", settings_.name, "\""),
          s, error);
    }
    const std::string replay_stream = ReplayStreamName(owner_->stream_);
    sub.Stream = replay_stream.c_str();
    sub.Consumer = names_.replay_consumer.c_str();
    natsSubscription* replay = nullptr;
    if (natsStatus s = js_PullSubscribe(
            &replay, owner_->js(), names_.replay_subject.c_str(),
            names_.replay_consumer.c_str(), &options, &sub, &error);
        s != NATS_OK) {
      natsSubscription_Destroy(main);
      return NatsError(absl::StrCat("cannot read the replays of consumer "
                                    "group \"",
                                    settings_.name, "\""),
                       s, error);
    }
    // The old ones stay until Close(): messages still held came from them.
    subscriptions_.push_back(main);
    subscriptions_.push_back(replay);
    main_ = main;
    replay_ = replay;
    return absl::OkStatus();
  }

  void FetchLoop() {
    Clock::time_point next_check = Clock::now();
    Clock::time_point next_replay = Clock::now();
    int missing = 0;
    while (true) {
      int room = 0;
      {
        absl::MutexLock lock(&mu_);
        auto wanted = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stop_ || (out_of_range_.ok() && WorthFetchingLocked());
        };
        mu_.AwaitWithTimeout(absl::Condition(&wanted),
                             owner_->options_.position_check);
        if (stop_) return;
        room = out_of_range_.ok() ? RoomLocked() : 0;
      }
      if (Clock::now() >= next_check) {
        next_check = Clock::now() +
                     absl::ToChronoNanoseconds(owner_->options_.position_check);
        CheckPosition();
      }
      if (room == 0) continue;
      // Each fetch fails on its own (a leader change, a server restart):
      // pull requests name the consumer, so the same subscriptions go on.
      // Replays are rare: their consumer is asked at most twice a second
      // while it has none (a NoWait fetch can take its whole expiry).
      int replayed = 0;
      if (Clock::now() >= next_replay) {
        replayed = Fetch(replay_, room, true);
        next_replay =
            replayed > 0
                ? Clock::now()
                : Clock::now() + absl::ToChronoNanoseconds(kReplayCheck);
      }
      const int got = Fetch(main_, room - std::max(replayed, 0), false);
      if (replayed >= 0 && got >= 0) {
        missing = 0;
        continue;
      }
      // The consumer may be gone: deleted (the members end), or made again
      // by a seek (CheckIncarnation()).
      absl::StatusOr<Found> found = owner_->Lookup(settings_.name);
      if (absl::IsNotFound(found.status())) {
        if (++missing >= kMissingChecks) {
          EndMembers(absl::NotFoundError(absl::StrCat(
              "consumer group \"", settings_.name, "\" was deleted")));
          return;
        }
      } else if (found.ok()) {
        missing = 0;
        CheckIncarnation(*found);
      }
      absl::SleepFor(kRetryPause);
    }
  }

  // Up to `room` messages from `sub`, handed out; how many, or -1 when the
  // subscription failed (not just found nothing).
  int Fetch(natsSubscription* sub, int room, bool no_wait) {
    if (room <= 0 || sub == nullptr) return 0;
    jsFetchRequest request;
    jsFetchRequest_Init(&request);
    request.Batch = room;
    // With NoWait the server answers at once, but cnats still needs time to
    // read the answer: without it the messages would arrive after the
    // fetch gave up, and wait unseen while their deadline runs.
    request.NoWait = no_wait;
    request.Expires =
        Nanos(no_wait ? kNoWaitReply : owner_->options_.fetch_wait);
    // JetStream's AckWait starts when it sends, not when we read.
    const Clock::time_point sent = Clock::now();
    natsMsgList list{};
    const natsStatus s = natsSubscription_FetchRequest(&list, sub, &request);
    if (s == NATS_TIMEOUT || s == NATS_NOT_FOUND) return 0;
    if (s != NATS_OK) {
      natsMsgList_Destroy(&list);
      return -1;
    }
    const int count = list.Count;
    for (int i = 0; i < list.Count; ++i) {
      Handle(list.Msgs[i], sub == replay_, sent);
      list.Msgs[i] = nullptr;
    }
    natsMsgList_Destroy(&list);
    return count;
  }

  void Handle(natsMsg* msg, bool replay, Clock::time_point sent) {
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
      natsMsg_Destroy(msg);
      return;
    }
    std::uint64_t sequence = meta->Sequence.Stream;
    const std::uint64_t delivered = meta->NumDelivered;
    jsMsgMetaData_Destroy(meta);
    const char* header = nullptr;
    if (replay &&
        (natsMsgHeader_Get(msg, kSequenceHeader, &header) != NATS_OK ||
         !absl::SimpleAtoi(header, &sequence))) {
      natsMsg_Term(msg, nullptr);  // not a replay we made
      natsMsg_Destroy(msg);
      return;
    }
    const absl::string_view body(natsMsg_GetData(msg),
                                 natsMsg_GetDataLength(msg));
    v1::Event event;
    hub::EventKey key;
    if (event.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
      key = hub::KeyOf(event);
    }
    if (!filter_.Matches(key)) {
      natsMsg_Ack(msg, nullptr);  // the group does not read it
      natsMsg_Destroy(msg);
      return;
    }
    if (OnDelivered(delivered, settings_.max_delivery_attempts) ==
        DeliveryAction::kDeadLetter) {
      // JetStream redelivered it because the deadline of its last attempt
      // passed.
      DeadLetter(sequence, static_cast<std::uint32_t>(delivered - 1),
                 absl::StrCat("the ack deadline (",
                              absl::FormatDuration(settings_.ack_deadline),
                              ") passed"),
                 msg);
      return;
    }
    auto delivery = std::make_shared<const hub::Delivery>(
        sequence, hub::WithSequence(sequence, body));
    Notify notify;
    {
      absl::MutexLock lock(&mu_);
      std::shared_ptr<Member> member = MemberWithRoomLocked();
      if (member == nullptr) {
        natsMsg_Nak(msg, nullptr);  // its member left meanwhile
        natsMsg_Destroy(msg);
        return;
      }
      Held& held = member->held[sequence];
      if (held.msg != nullptr) natsMsg_Destroy(held.msg);
      held = Held{msg, static_cast<std::uint32_t>(delivered),
                  sent + absl::ToChronoNanoseconds(settings_.ack_deadline),
                  next_delivery_id_++};
      member->ready.push_back(
          groups::Assignment{std::move(delivery), held.attempt, held.id});
      if (member->waiting) {
        member->waiting = false;
        notify.push_back(member);
      }
    }
    NotifyAll(notify);
  }

  // Moves the message into the dead-letter list, then Terms it; when the
  // list cannot be written, Naks it so that the next delivery tries again.
  void DeadLetter(std::uint64_t sequence, std::uint32_t attempts,
                  const std::string& error, natsMsg* msg) {
    if (owner_->PutDeadLetter(settings_.name, sequence, attempts, error).ok()) {
      natsMsg_Term(msg, nullptr);
    } else {
      natsMsg_Nak(msg, nullptr);
    }
    natsMsg_Destroy(msg);
  }

  // What a seek or a re-creation elsewhere changed: a group made again ends
  // its members (its settings may differ); a consumer made again by a seek
  // leaves what members held to the new one.
  void CheckIncarnation(const Found& found) {
    if (found.settings.create_time != settings_.create_time) {
      EndMembers(absl::NotFoundError(
          absl::StrCat("consumer group \"", settings_.name,
                       "\" was deleted and made again; join it again")));
      return;
    }
    ForgetBefore(found.created);
  }

 public:
  // After a seek that made the consumer `created`: what members hold came
  // from the old one, so it is dropped unacked (its acks and nacks are
  // ignored); the new consumer delivers again from the new start.
  void ForgetBefore(std::int64_t created) {
    absl::MutexLock lock(&mu_);
    if (created == created_) return;
    created_ = created;
    for (const std::shared_ptr<Member>& member : members_) {
      for (auto* held : {&member->held, &member->expired}) {
        for (auto& [sequence, entry] : *held) {
          natsMsg_Destroy(entry.msg);
          member->forgotten.insert(sequence);
        }
        held->clear();
      }
      member->ready.clear();
    }
  }

 private:
  void CheckPosition() {
    absl::StatusOr<Found> found = owner_->Lookup(settings_.name);
    if (!found.ok()) return;
    CheckIncarnation(*found);
    absl::StatusOr<Bounds> bounds = owner_->StreamBounds();
    if (!bounds.ok()) return;
    absl::Status position = CheckGroupPosition(settings_.name, found->delivered,
                                               bounds->first, bounds->last);
    if (position.ok()) {
      absl::MutexLock lock(&mu_);
      out_of_range_ = absl::OkStatus();
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      out_of_range_ = position;
    }
    EndMembers(position);
  }

  void EndMembers(const absl::Status& status) {
    Notify notify;
    {
      absl::MutexLock lock(&mu_);
      for (const std::shared_ptr<Member>& member : members_) {
        if (!member->end.ok()) continue;
        member->end = status;
        notify.push_back(member);
      }
      if (absl::IsNotFound(status)) closed_ = status;
    }
    NotifyAll(notify);
  }

  void SettleLoop() {
    while (true) {
      std::deque<Task> tasks;
      {
        absl::MutexLock lock(&mu_);
        auto wanted = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stop_ || !tasks_.empty();
        };
        mu_.AwaitWithTimeout(absl::Condition(&wanted), absl::Milliseconds(100));
        if (stop_ && tasks_.empty()) return;
        tasks.swap(tasks_);
        ExpireLocked(Clock::now());
      }
      // Consecutive acks go out together: each but the last as a plain ack,
      // the last with AckSync. JetStream handles a consumer's acks from
      // one connection in order, so the AckSync's answer covers the ones
      // before it, and the batch costs one round trip instead of one each.
      for (std::size_t k = 0; k < tasks.size();) {
        if (tasks[k].kind != Task::kAck) {
          Run(tasks[k++]);
          continue;
        }
        std::size_t end = k;
        while (end < tasks.size() && tasks[end].kind == Task::kAck) ++end;
        bool sent = true;
        for (std::size_t j = k; j + 1 < end; ++j) {
          sent = sent && natsMsg_Ack(tasks[j].held.msg, nullptr) == NATS_OK;
        }
        jsOptions options = ApiOptions(owner_->options_.api_wait);
        jsErrCode error = static_cast<jsErrCode>(0);
        const bool acked = sent && natsMsg_AckSync(tasks[end - 1].held.msg,
                                                   &options, &error) == NATS_OK;
        for (std::size_t j = k; j < end; ++j) FinishAck(tasks[j], acked);
        k = end;
      }
    }
  }

  void ExpireLocked(Clock::time_point now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const std::shared_ptr<Member>& member : members_) {
      for (auto it = member->held.begin(); it != member->held.end();) {
        if (it->second.deadline > now) {
          ++it;
          continue;
        }
        // JetStream redelivers it (its AckWait passed too); what this member
        // holds is room again.
        Held& late = member->expired[it->first];
        if (late.msg != nullptr) natsMsg_Destroy(late.msg);
        late = std::move(it->second);
        it = member->held.erase(it);
      }
      while (member->expired.size() > 4 * member->max_in_flight) {
        natsMsg_Destroy(member->expired.begin()->second.msg);
        member->expired.erase(member->expired.begin());
      }
    }
  }

  // Confirms an ack JetStream has (`acked`), or keeps its message for an
  // ack sent again.
  void FinishAck(Task& task, bool acked) {
    natsMsg* msg = task.held.msg;
    {
      Notify notify;
      {
        absl::MutexLock lock(&mu_);
        Member* member = FindLocked(task.member);
        if (member != nullptr) member->acking.erase(task.sequence);
        if (!acked) {
          ack_failures_.fetch_add(1, std::memory_order_relaxed);
          // Unconfirmed: JetStream delivers it again after its deadline,
          // and the member may ack it again meanwhile.
          if (member != nullptr && !member->expired.contains(task.sequence)) {
            member->expired[task.sequence] = std::move(task.held);
          } else {
            natsMsg_Destroy(msg);
          }
          return;
        }
        natsMsg_Destroy(msg);
        if (member == nullptr) return;
        member->confirmed.push_back(task.sequence);
        if (member->acked.insert(task.sequence).second) {
          member->acked_order.push_back(task.sequence);
          if (member->acked_order.size() > 4 * member->max_in_flight) {
            member->acked.erase(member->acked_order.front());
            member->acked_order.pop_front();
          }
        }
        if (member->waiting) {
          member->waiting = false;
          notify.push_back(member->self.lock());
        }
      }
      NotifyAll(notify);
    }
  }

  // A failed delivery (an ack goes through FinishAck()).
  void Run(Task& task) {
    natsMsg* msg = task.held.msg;
    if (OnFailed(task.held.attempt, settings_.max_delivery_attempts) ==
        FailureAction::kDeadLetter) {
      DeadLetter(task.sequence, task.held.attempt, task.error, msg);
      return;
    }
    natsMsg_Nak(msg, nullptr);
    natsMsg_Destroy(msg);
  }

  JetStreamGroups* const owner_;
  const groups::GroupSettings settings_;
  const GroupNames names_;
  const hub::EventFilter filter_;
  // The consumer's creation time this replica's deliveries come from.
  std::int64_t created_ ABSL_GUARDED_BY(mu_);
  // Written by Bind(): in Start(), then on the fetch thread; destroyed by
  // Close() once that thread is done.
  natsSubscription* main_ = nullptr;
  natsSubscription* replay_ = nullptr;
  std::vector<natsSubscription*> subscriptions_;  // every one Bind() made
  std::thread fetcher_;
  std::thread settler_;
  std::atomic<std::uint64_t> ack_failures_{0};

  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status closed_ ABSL_GUARDED_BY(mu_);
  absl::Status out_of_range_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Member>> members_ ABSL_GUARDED_BY(mu_);
  std::size_t next_member_index_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t next_member_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::uint64_t next_delivery_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::deque<Task> tasks_ ABSL_GUARDED_BY(mu_);
};

jsCtx* JetStreamGroups::js() const { return store_->js_; }

const std::string& JetStreamGroups::subject_prefix() const {
  return store_->options_.stream.subject_prefix;
}

JetStreamGroups::JetStreamGroups(JetStreamEventStore* store,
                                 JetStreamGroupsOptions options)
    : store_(store),
      options_(options),
      stream_(store->options_.stream.stream) {}

absl::StatusOr<std::unique_ptr<JetStreamGroups>> JetStreamGroups::Open(
    JetStreamEventStore* store, JetStreamGroupsOptions options) {
  if (store == nullptr || store->js_ == nullptr) {
    return absl::InvalidArgumentError("consumer groups need an open store");
  }
  std::unique_ptr<JetStreamGroups> groups(new JetStreamGroups(store, options));
  if (absl::Status made = groups->EnsureReplayStreamAndBucket(); !made.ok()) {
    return made;
  }
  return groups;
}

JetStreamGroups::~JetStreamGroups() {
  Shutdown();
  if (kv_ != nullptr) kvStore_Destroy(kv_);
}

absl::Status JetStreamGroups::EnsureReplayStreamAndBucket() {
  jsCtx* js = store_->js_;
  const int replicas = static_cast<int>(
      std::max<std::int64_t>(1, store_->options_.stream.replicas));
  jsOptions options = ApiOptions(options_.api_wait);
  const std::string replay = ReplayStreamName(stream_);
  const std::string subjects = ReplayStreamSubjects(stream_);
  jsStreamInfo* info = nullptr;
  jsErrCode error = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&info, js, replay.c_str(), &options, &error);
  if (s == NATS_OK) {
    jsStreamInfo_Destroy(info);
  } else if (error == kStreamNotFound) {
    jsStreamConfig config;
    jsStreamConfig_Init(&config);
    config.Name = replay.c_str();
    const char* subject_list[] = {subjects.c_str()};
    config.Subjects = subject_list;
    config.SubjectsLen = 1;
    // A replayed event leaves once its group acked it.
    config.Retention = js_WorkQueuePolicy;
    config.Storage = js_FileStorage;
    config.Replicas = replicas;
    s = js_AddStream(&info, js, &config, &options, &error);
    if (s != NATS_OK && js_GetStreamInfo(&info, js, replay.c_str(), &options,
                                         nullptr) == NATS_OK) {
      s = NATS_OK;  // another replica made it first
    }
    if (s != NATS_OK) {
      return NatsError(absl::StrCat("cannot create the replay stream ", replay),
                       s, error);
    }
    jsStreamInfo_Destroy(info);
  } else {
    return NatsError(absl::StrCat("cannot look up the replay stream ", replay),
                     s, error);
  }
  const std::string bucket = GroupsBucketName(stream_);
  if (js_KeyValue(&kv_, js, bucket.c_str()) == NATS_OK) return absl::OkStatus();
  kvConfig config;
  kvConfig_Init(&config);
  config.Bucket = bucket.c_str();
  config.History = 1;
  config.StorageType = js_FileStorage;
  config.Replicas = replicas;
  if (s = js_CreateKeyValue(&kv_, js, &config);
      s != NATS_OK && js_KeyValue(&kv_, js, bucket.c_str()) != NATS_OK) {
    return NatsError(absl::StrCat("cannot create the KV bucket ", bucket), s);
  }
  return absl::OkStatus();
}

absl::StatusOr<JetStreamGroups::Found> JetStreamGroups::Lookup(
    const std::string& name) const {
  if (absl::Status valid = groups::ValidateGroupName(name); !valid.ok()) {
    return valid;
  }
  const std::string consumer = NamesFor(stream_, name).consumer;
  jsOptions options = ApiOptions(options_.api_wait);
  jsConsumerInfo* info = nullptr;
  jsErrCode error = static_cast<jsErrCode>(0);
  if (natsStatus s = js_GetConsumerInfo(&info, js(), stream_.c_str(),
                                        consumer.c_str(), &options, &error);
      s != NATS_OK) {
    if (error == kConsumerNotFound) return NotFound(name);
    return NatsError(
        absl::StrCat("cannot look up consumer group \"", name, "\""), s, error);
  }
  absl::StatusOr<groups::GroupSettings> settings = SettingsFromDescription(
      info->Config != nullptr && info->Config->Description != nullptr
          ? info->Config->Description
          : "");
  Found found;
  if (settings.ok()) {
    found.settings = *std::move(settings);
    found.ack_floor = info->AckFloor.Stream;
    found.delivered = info->Delivered.Stream;
    found.ack_pending = static_cast<std::uint64_t>(
        std::max<std::int64_t>(0, info->NumAckPending));
    found.created = info->Created;
  }
  jsConsumerInfo_Destroy(info);
  if (!settings.ok()) {
    return absl::DataLossError(absl::StrCat(
        "consumer group \"", name, "\": ", settings.status().message()));
  }
  return found;
}

absl::StatusOr<JetStreamGroups::Found> JetStreamGroups::Authorized(
    const std::string& name, const groups::GroupAuthorizer& authorize) const {
  absl::StatusOr<Found> found = Lookup(name);
  if (!found.ok()) return found.status();
  v1::SubscribeRequest filter = found->settings.filter;
  if (absl::Status allowed = authorize(&filter, false); !allowed.ok()) {
    return allowed;
  }
  return found;
}

absl::StatusOr<JetStreamGroups::Bounds> JetStreamGroups::StreamBounds() const {
  absl::StatusOr<JetStreamEventStore::StreamState> state =
      store_->QueryStream(options_.api_wait);
  if (!state.ok()) return state.status();
  if (state->messages == 0) {
    return Bounds{state->last_sequence == 0 ? 0 : state->last_sequence + 1,
                  state->last_sequence};
  }
  return Bounds{state->first_sequence, state->last_sequence};
}

absl::Status JetStreamGroups::CheckStart(
    const std::string& name, const hub::StartPosition& start) const {
  if (start.kind != hub::StartPosition::Kind::kAfterSequence) {
    return absl::OkStatus();
  }
  absl::StatusOr<Bounds> bounds = StreamBounds();
  if (!bounds.ok()) return bounds.status();
  if (bounds->first == 0 || start.after_sequence + 1 >= bounds->first) {
    return absl::OkStatus();
  }
  return hub::WithResumeInfo(
      absl::OutOfRangeError(
          absl::StrCat("consumer group \"", name,
                       "\" cannot start after sequence ", start.after_sequence,
                       ": the oldest event still retained is ", bounds->first)),
      hub::ResumePoint{.last_sent_sequence = start.after_sequence,
                       .oldest_available_sequence = bounds->first,
                       .last_sequence = bounds->last});
}

absl::Status JetStreamGroups::MakeConsumers(
    const groups::GroupSettings& settings,
    const hub::StartPosition& start) const {
  absl::StatusOr<GroupConsumerConfig> want =
      ConsumerConfigFor(stream_, settings, start);
  if (!want.ok()) return want.status();
  const GroupNames names = NamesFor(stream_, settings.name);
  jsOptions options = ApiOptions(options_.api_wait);
  jsErrCode error = static_cast<jsErrCode>(0);
  jsConsumerConfig config;
  jsConsumerConfig_Init(&config);
  config.Durable = want->durable.c_str();
  config.Description = want->description.c_str();
  switch (want->deliver) {
    case GroupConsumerConfig::Deliver::kAll:
      config.DeliverPolicy = js_DeliverAll;
      break;
    case GroupConsumerConfig::Deliver::kNew:
      config.DeliverPolicy = js_DeliverNew;
      break;
    case GroupConsumerConfig::Deliver::kByStartSequence:
      config.DeliverPolicy = js_DeliverByStartSequence;
      config.OptStartSeq = want->start_sequence;
      break;
    case GroupConsumerConfig::Deliver::kByStartTime:
      config.DeliverPolicy = js_DeliverByStartTime;
      config.OptStartTime = absl::ToUnixNanos(want->start_time);
      break;
  }
  config.AckPolicy = js_AckExplicit;
  config.AckWait = Nanos(want->ack_wait);
  config.MaxDeliver = want->max_deliver;
  config.MaxAckPending = want->max_ack_pending;
  jsConsumerInfo* info = nullptr;
  if (Lookup(settings.name).ok()) {
    return absl::AlreadyExistsError(
        absl::StrCat("consumer group \"", settings.name, "\" already exists"));
  }
  if (natsStatus s = js_AddConsumer(&info, js(), stream_.c_str(), &config,
                                    &options, &error);
      s != NATS_OK) {
    if (Lookup(settings.name).ok()) {  // another replica was first
      return absl::AlreadyExistsError(absl::StrCat(
          "consumer group \"", settings.name, "\" already exists"));
    }
    return NatsError(
        absl::StrCat("cannot create consumer group \"", settings.name, "\""), s,
        error);
  }
  jsConsumerInfo_Destroy(info);

  jsConsumerConfig replay;
  jsConsumerConfig_Init(&replay);
  replay.Durable = names.replay_consumer.c_str();
  replay.FilterSubject = names.replay_subject.c_str();
  replay.DeliverPolicy = js_DeliverAll;
  replay.AckPolicy = js_AckExplicit;
  replay.AckWait = config.AckWait;
  replay.MaxDeliver = -1;
  replay.MaxAckPending = config.MaxAckPending;
  const std::string replay_stream = ReplayStreamName(stream_);
  info = nullptr;
  if (natsStatus s = js_AddConsumer(&info, js(), replay_stream.c_str(), &replay,
                                    &options, &error);
      s != NATS_OK) {
    js_DeleteConsumer(js(), stream_.c_str(), names.consumer.c_str(), &options,
                      nullptr);
    return NatsError(absl::StrCat("cannot create the replay consumer of "
                                  "consumer group \"",
                                  settings.name, "\""),
                     s, error);
  }
  jsConsumerInfo_Destroy(info);
  return absl::OkStatus();
}

std::size_t JetStreamGroups::CountGroups() const {
  jsConsumerNamesList* list = nullptr;
  jsOptions options = ApiOptions(options_.api_wait);
  if (js_ConsumerNames(&list, js(), stream_.c_str(), &options, nullptr) !=
          NATS_OK ||
      list == nullptr) {
    return 0;
  }
  std::size_t count = 0;
  for (int i = 0; i < list->Count; ++i) {
    if (GroupOfConsumer(list->List[i]).has_value()) ++count;
  }
  jsConsumerNamesList_Destroy(list);
  return count;
}

absl::StatusOr<std::shared_ptr<JetStreamGroups::Group>> JetStreamGroups::Local(
    const Found& found) {
  const groups::GroupSettings& settings = found.settings;
  std::shared_ptr<Group> stale;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_)
      return absl::UnavailableError("the gateway is shutting down");
    auto it = local_.find(settings.name);
    if (it != local_.end()) {
      if (it->second->settings().create_time == settings.create_time) {
        it->second->ForgetBefore(found.created);
        return it->second;
      }
      stale = std::move(it->second);  // the group was made again elsewhere
      local_.erase(it);
    }
  }
  if (stale != nullptr) {
    stale->Close(absl::NotFoundError(
        absl::StrCat("consumer group \"", settings.name,
                     "\" was deleted and made again; join it again")));
  }
  absl::StatusOr<hub::SubscribeOptions> feed =
      groups::FeedOptions(settings, hub::StartPosition::Now());
  if (!feed.ok()) return feed.status();
  auto group =
      std::make_shared<Group>(this, settings, feed->filter, found.created);
  if (absl::Status started = group->Start(); !started.ok()) return started;
  absl::MutexLock lock(&mu_);
  if (shut_down_) return absl::UnavailableError("the gateway is shutting down");
  auto [it, inserted] = local_.emplace(settings.name, group);
  return it->second;  // `group`, or the one a concurrent Join() made
}

void JetStreamGroups::DropLocal(const std::string& name, absl::Status why) {
  std::shared_ptr<Group> group;
  {
    absl::MutexLock lock(&mu_);
    auto it = local_.find(name);
    if (it == local_.end()) return;
    group = std::move(it->second);
    local_.erase(it);
  }
  group->Close(std::move(why));
}

absl::StatusOr<groups::Membership> JetStreamGroups::Join(
    const groups::JoinRequest& join, const groups::GroupAuthorizer& authorize,
    groups::MemberSink* sink) {
  const std::string& name = join.settings.name;
  absl::StatusOr<Found> found = Lookup(name);
  if (absl::IsNotFound(found.status())) {
    groups::GroupSettings settings = join.settings;
    if (absl::Status allowed = authorize(&settings.filter, true);
        !allowed.ok()) {
      return allowed;
    }
    groups::CanonicalizeFilter(&settings.filter);
    settings.create_time = absl::Now();
    if (CountGroups() >= options_.max_groups) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the stream already has ", options_.max_groups,
                       " consumer groups; delete one first"));
    }
    if (absl::Status start = CheckStart(name, join.start); !start.ok()) {
      return start;
    }
    absl::Status made = MakeConsumers(settings, join.start);
    if (!made.ok() && !absl::IsAlreadyExists(made)) return made;
    found = Lookup(name);
  }
  if (!found.ok()) return found.status();
  if (absl::Status allowed =
          groups::CheckJoin(join, found->settings, authorize);
      !allowed.ok()) {
    return allowed;
  }
  absl::StatusOr<Bounds> bounds = StreamBounds();
  if (!bounds.ok()) return bounds.status();
  if (absl::Status position = CheckGroupPosition(name, found->delivered,
                                                 bounds->first, bounds->last);
      !position.ok()) {
    return position;
  }
  absl::StatusOr<std::shared_ptr<Group>> group = Local(*found);
  if (!group.ok()) return group.status();
  absl::StatusOr<std::uint64_t> member =
      (*group)->Join(join.max_in_flight, sink);
  if (!member.ok()) return member.status();
  return groups::Membership{*std::move(group), *member};
}

absl::Status JetStreamGroups::Settle(
    const groups::Membership& membership, absl::Span<const std::uint64_t> acks,
    absl::Span<const groups::NackRequest> nacks) {
  return membership.group->Settle(membership.member, acks, nacks);
}

absl::StatusOr<v1::ConsumerGroup> JetStreamGroups::Info(
    const Found& found) const {
  v1::ConsumerGroup info;
  groups::SettingsToProto(found.settings, &info);
  info.set_ack_floor_sequence(found.ack_floor);
  const std::uint64_t above =
      found.delivered > found.ack_floor ? found.delivered - found.ack_floor : 0;
  info.set_settled_above_floor(
      above > found.ack_pending ? above - found.ack_pending : 0);
  info.set_in_flight_events(found.ack_pending);
  absl::StatusOr<std::vector<std::uint64_t>> letters =
      DeadLetterSequences(found.settings.name);
  if (!letters.ok()) return letters.status();
  info.set_dead_letter_count(letters->size());
  {
    absl::MutexLock lock(&mu_);
    auto it = local_.find(found.settings.name);
    if (it != local_.end()) {
      info.set_connected_members(
          static_cast<std::uint32_t>(it->second->counts().members));
    }
  }
  info.set_last_sequence(store_->Stats().last_sequence);
  return info;
}

absl::StatusOr<v1::ConsumerGroup> JetStreamGroups::CreateGroup(
    const v1::CreateConsumerGroupRequest& request,
    const groups::GroupAuthorizer& authorize) {
  absl::StatusOr<groups::GroupSettings> settings =
      groups::SettingsFromProto(request.consumer_group());
  if (!settings.ok()) return settings.status();
  absl::StatusOr<hub::StartPosition> start = groups::StartPositionOf(request);
  if (!start.ok()) return start.status();
  if (absl::Status allowed = authorize(&settings->filter, true);
      !allowed.ok()) {
    return allowed;
  }
  groups::CanonicalizeFilter(&settings->filter);
  settings->create_time = absl::Now();
  if (CountGroups() >= options_.max_groups) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the stream already has ", options_.max_groups,
                     " consumer groups; delete one first"));
  }
  if (absl::Status ok = CheckStart(settings->name, *start); !ok.ok()) return ok;
  if (absl::Status made = MakeConsumers(*settings, *start); !made.ok()) {
    return made;
  }
  absl::StatusOr<Found> found = Lookup(settings->name);
  if (!found.ok()) return found.status();
  // cnats creates or updates: of two replicas creating one name at once,
  // the last writer's settings stand, and the other hears ALREADY_EXISTS.
  if (found->settings.create_time != settings->create_time) {
    return absl::AlreadyExistsError(
        absl::StrCat("consumer group \"", settings->name, "\" already exists"));
  }
  return Info(*found);
}

absl::StatusOr<v1::ConsumerGroup> JetStreamGroups::GetGroup(
    const std::string& name, const groups::GroupAuthorizer& authorize) {
  absl::StatusOr<Found> found = Authorized(name, authorize);
  if (!found.ok()) return found.status();
  return Info(*found);
}

absl::StatusOr<std::vector<v1::ConsumerGroup>> JetStreamGroups::ListGroups(
    const groups::GroupAuthorizer& authorize) {
  jsConsumerNamesList* list = nullptr;
  jsOptions options = ApiOptions(options_.api_wait);
  jsErrCode error = static_cast<jsErrCode>(0);
  if (natsStatus s =
          js_ConsumerNames(&list, js(), stream_.c_str(), &options, &error);
      s != NATS_OK && s != NATS_NOT_FOUND) {
    return NatsError("cannot list the consumer groups", s, error);
  }
  std::vector<std::string> names;
  if (list != nullptr) {
    for (int i = 0; i < list->Count; ++i) {
      if (std::optional<std::string> group = GroupOfConsumer(list->List[i])) {
        names.push_back(*std::move(group));
      }
    }
    jsConsumerNamesList_Destroy(list);
  }
  std::sort(names.begin(), names.end());
  std::vector<v1::ConsumerGroup> groups;
  for (const std::string& name : names) {
    absl::StatusOr<Found> found = Authorized(name, authorize);
    if (absl::IsNotFound(found.status()) ||
        absl::IsPermissionDenied(found.status()) ||
        absl::IsUnauthenticated(found.status())) {
      continue;
    }
    if (!found.ok()) return found.status();
    absl::StatusOr<v1::ConsumerGroup> info = Info(*found);
    if (!info.ok()) return info.status();
    groups.push_back(*std::move(info));
  }
  return groups;
}

absl::Status JetStreamGroups::DeleteGroup(
    const std::string& name, const groups::GroupAuthorizer& authorize) {
  absl::StatusOr<Found> found = Authorized(name, authorize);
  if (!found.ok()) return found.status();
  const GroupNames names = NamesFor(stream_, name);
  // The dead letters first: a group made again under this name must not
  // inherit them, so a delete that cannot list them fails whole.
  absl::StatusOr<std::vector<std::uint64_t>> letters =
      DeadLetterSequences(name);
  if (!letters.ok()) return letters.status();
  for (std::uint64_t sequence : *letters) {
    if (natsStatus s = kvStore_Purge(
            kv_, SequenceKey(names.dead_letter_prefix, sequence).c_str(),
            nullptr);
        s != NATS_OK) {
      return NatsError(absl::StrCat("cannot delete consumer group \"", name,
                                    "\": its dead letter ", sequence),
                       s);
    }
  }
  jsOptions options = ApiOptions(options_.api_wait);
  jsErrCode error = static_cast<jsErrCode>(0);
  if (natsStatus s = js_DeleteConsumer(
          js(), stream_.c_str(), names.consumer.c_str(), &options, &error);
      s != NATS_OK) {
    if (error == kConsumerNotFound) return NotFound(name);
    return NatsError(
        absl::StrCat("cannot delete consumer group \"", name, "\""), s, error);
  }
  const std::string replay_stream = ReplayStreamName(stream_);
  js_DeleteConsumer(js(), replay_stream.c_str(), names.replay_consumer.c_str(),
                    &options, nullptr);
  jsOptions purge = ApiOptions(options_.api_wait);
  purge.Stream.Purge.Subject = names.replay_subject.c_str();
  js_PurgeStream(js(), replay_stream.c_str(), &purge, nullptr);
  DropLocal(name, absl::NotFoundError(absl::StrCat("consumer group \"", name,
                                                   "\" was deleted")));
  return absl::OkStatus();
}

absl::StatusOr<v1::ConsumerGroup> JetStreamGroups::SeekGroup(
    const v1::SeekConsumerGroupRequest& request,
    const groups::GroupAuthorizer& authorize) {
  absl::StatusOr<Found> found = Authorized(request.consumer_group(), authorize);
  if (!found.ok()) return found.status();
  absl::StatusOr<hub::StartPosition> start = groups::StartPositionOf(request);
  if (!start.ok()) return start.status();
  const std::string& name = found->settings.name;
  if (absl::Status ok = CheckStart(name, *start); !ok.ok()) return ok;
  // JetStream cannot move a consumer: the group's is made again from the
  // new start with the same settings, which every replica's fetches find
  // under the same name.
  const GroupNames names = NamesFor(stream_, name);
  jsOptions options = ApiOptions(options_.api_wait);
  jsErrCode error = static_cast<jsErrCode>(0);
  if (natsStatus s = js_DeleteConsumer(
          js(), stream_.c_str(), names.consumer.c_str(), &options, &error);
      s != NATS_OK && error != kConsumerNotFound) {
    return NatsError(absl::StrCat("cannot seek consumer group \"", name, "\""),
                     s, error);
  }
  const std::string replay_stream = ReplayStreamName(stream_);
  js_DeleteConsumer(js(), replay_stream.c_str(), names.replay_consumer.c_str(),
                    &options, nullptr);
  if (absl::Status made = MakeConsumers(found->settings, *start); !made.ok()) {
    return made;
  }
  absl::StatusOr<Found> now = Lookup(name);
  if (!now.ok()) return now.status();
  std::shared_ptr<Group> local;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = local_.find(name); it != local_.end()) local = it->second;
  }
  // Other replicas notice within a second (CheckIncarnation()).
  if (local != nullptr) local->ForgetBefore(now->created);
  return Info(*now);
}

absl::StatusOr<std::vector<std::uint64_t>> JetStreamGroups::DeadLetterSequences(
    const std::string& group) const {
  // A watch of this group's keys only (not a scan of every group's), up to
  // the marker that ends the values there now.
  const std::string prefix = NamesFor(stream_, group).dead_letter_prefix;
  const std::string keys = absl::StrCat(prefix, ">");
  kvWatchOptions watch;
  kvWatchOptions_Init(&watch);
  watch.MetaOnly = true;
  watch.IgnoreDeletes = true;
  kvWatcher* watcher = nullptr;
  if (natsStatus s = kvStore_Watch(&watcher, kv_, keys.c_str(), &watch);
      s != NATS_OK) {
    return NatsError("cannot list the dead letters", s);
  }
  std::vector<std::uint64_t> sequences;
  const absl::Time deadline = absl::Now() + options_.api_wait;
  while (true) {
    kvEntry* entry = nullptr;
    const natsStatus s = kvWatcher_Next(
        &entry, watcher,
        std::max<std::int64_t>(1, Millis(deadline - absl::Now())));
    if (s != NATS_OK) {
      kvWatcher_Destroy(watcher);
      return NatsError("cannot list the dead letters", s);
    }
    if (entry == nullptr) break;
    if (std::optional<std::uint64_t> sequence =
            SequenceOfKey(prefix, kvEntry_Key(entry))) {
      sequences.push_back(*sequence);
    }
    kvEntry_Destroy(entry);
  }
  kvWatcher_Destroy(watcher);
  std::sort(sequences.begin(), sequences.end());
  return sequences;
}

absl::Status JetStreamGroups::PutDeadLetter(const std::string& group,
                                            std::uint64_t sequence,
                                            std::uint32_t attempts,
                                            const std::string& error) const {
  v1::DeadLetter letter;
  letter.set_sequence(sequence);
  letter.set_delivery_attempts(attempts);
  letter.set_last_error(error.substr(0, groups::kMaxErrorBytes));
  const absl::Time now = absl::Now();
  letter.mutable_dead_letter_time()->set_seconds(absl::ToUnixSeconds(now));
  letter.mutable_dead_letter_time()->set_nanos(
      static_cast<std::int32_t>(absl::ToInt64Nanoseconds(
          now - absl::FromUnixSeconds(absl::ToUnixSeconds(now)))));
  const std::string bytes = letter.SerializeAsString();
  const std::string key =
      SequenceKey(NamesFor(stream_, group).dead_letter_prefix, sequence);
  std::uint64_t revision = 0;
  if (natsStatus s = kvStore_Put(&revision, kv_, key.c_str(), bytes.data(),
                                 static_cast<int>(bytes.size()));
      s != NATS_OK) {
    return NatsError("cannot write a dead letter", s);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> JetStreamGroups::EventBody(
    std::uint64_t sequence) const {
  natsMsg* msg = nullptr;
  jsOptions options = ApiOptions(options_.api_wait);
  jsErrCode error = static_cast<jsErrCode>(0);
  if (natsStatus s =
          js_GetMsg(&msg, js(), stream_.c_str(), sequence, &options, &error);
      s != NATS_OK) {
    if (s == NATS_NOT_FOUND) {
      return absl::OutOfRangeError(absl::StrCat(
          "event ", sequence, " is no longer retained by the stream"));
    }
    return NatsError(absl::StrCat("cannot read event ", sequence), s, error);
  }
  std::string body(natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
  natsMsg_Destroy(msg);
  return body;
}

absl::StatusOr<std::vector<std::uint64_t>> JetStreamGroups::ChosenDeadLetters(
    const std::string& group, absl::Span<const std::uint64_t> sequences,
    const groups::GroupAuthorizer& authorize) const {
  absl::StatusOr<Found> found = Authorized(group, authorize);
  if (!found.ok()) return found.status();
  absl::StatusOr<std::vector<std::uint64_t>> letters =
      DeadLetterSequences(group);
  if (!letters.ok() || sequences.empty()) return letters;
  std::vector<std::uint64_t> chosen;
  for (std::uint64_t sequence : sequences) {
    if (std::binary_search(letters->begin(), letters->end(), sequence)) {
      chosen.push_back(sequence);
    }
  }
  std::sort(chosen.begin(), chosen.end());
  chosen.erase(std::unique(chosen.begin(), chosen.end()), chosen.end());
  return chosen;
}

absl::StatusOr<v1::ListDeadLettersResponse> JetStreamGroups::ListDeadLetters(
    const v1::ListDeadLettersRequest& request,
    const groups::GroupAuthorizer& authorize) {
  if (request.page_size() > 1000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_size must be at most 1000, not ", request.page_size()));
  }
  absl::StatusOr<Found> found = Authorized(request.consumer_group(), authorize);
  if (!found.ok()) return found.status();
  absl::StatusOr<std::vector<std::uint64_t>> sequences =
      DeadLetterSequences(request.consumer_group());
  if (!sequences.ok()) return sequences.status();
  const std::size_t limit =
      request.page_size() == 0 ? 100 : request.page_size();
  const std::string prefix =
      NamesFor(stream_, request.consumer_group()).dead_letter_prefix;
  v1::ListDeadLettersResponse response;
  for (std::uint64_t sequence : *sequences) {
    if (sequence <= request.after_sequence()) continue;
    if (static_cast<std::size_t>(response.dead_letters_size()) >= limit) break;
    kvEntry* entry = nullptr;
    if (kvStore_Get(&entry, kv_, SequenceKey(prefix, sequence).c_str()) !=
        NATS_OK) {
      continue;  // dropped or replayed meanwhile
    }
    v1::DeadLetter letter;
    const bool parsed =
        letter.ParseFromArray(kvEntry_Value(entry), kvEntry_ValueLen(entry));
    kvEntry_Destroy(entry);
    if (!parsed) continue;
    absl::StatusOr<std::string> body = EventBody(sequence);
    if (body.ok()) {
      letter.mutable_event()->ParseFromString(
          *hub::WithSequence(sequence, *body));
    } else if (!absl::IsOutOfRange(body.status())) {
      return body.status();
    }
    *response.add_dead_letters() = std::move(letter);
  }
  return response;
}

absl::StatusOr<v1::ReplayDeadLettersResponse>
JetStreamGroups::ReplayDeadLetters(const v1::ReplayDeadLettersRequest& request,
                                   const groups::GroupAuthorizer& authorize) {
  absl::StatusOr<std::vector<std::uint64_t>> chosen =
      ChosenDeadLetters(request.consumer_group(),
                        {request.sequences().data(),
                         static_cast<std::size_t>(request.sequences_size())},
                        authorize);
  if (!chosen.ok()) return chosen.status();
  const GroupNames names = NamesFor(stream_, request.consumer_group());
  v1::ReplayDeadLettersResponse response;
  for (std::uint64_t sequence : *chosen) {
    absl::StatusOr<std::string> body = EventBody(sequence);
    if (!body.ok()) {
      return absl::Status(
          body.status().code(),
          absl::StrCat("dead letter ", sequence,
                       " cannot be replayed: ", body.status().message(),
                       "; drop it with DropDeadLetters"));
    }
    natsMsg* msg = nullptr;
    natsMsg_Create(&msg, names.replay_subject.c_str(), nullptr, body->data(),
                   static_cast<int>(body->size()));
    natsMsgHeader_Set(msg, kSequenceHeader, absl::StrCat(sequence).c_str());
    jsPubAck* ack = nullptr;
    jsErrCode error = static_cast<jsErrCode>(0);
    const natsStatus s = js_PublishMsg(&ack, js(), msg, nullptr, &error);
    natsMsg_Destroy(msg);
    jsPubAck_Destroy(ack);
    if (s != NATS_OK) {
      return NatsError(absl::StrCat("cannot replay dead letter ", sequence), s,
                       error);
    }
    // Purged after the publish: a crash in between replays it twice rather
    // than losing it.
    kvStore_Purge(kv_, SequenceKey(names.dead_letter_prefix, sequence).c_str(),
                  nullptr);
    response.add_sequences(sequence);
  }
  return response;
}

absl::StatusOr<v1::DropDeadLettersResponse> JetStreamGroups::DropDeadLetters(
    const v1::DropDeadLettersRequest& request,
    const groups::GroupAuthorizer& authorize) {
  absl::StatusOr<std::vector<std::uint64_t>> chosen =
      ChosenDeadLetters(request.consumer_group(),
                        {request.sequences().data(),
                         static_cast<std::size_t>(request.sequences_size())},
                        authorize);
  if (!chosen.ok()) return chosen.status();
  const GroupNames names = NamesFor(stream_, request.consumer_group());
  v1::DropDeadLettersResponse response;
  for (std::uint64_t sequence : *chosen) {
    if (natsStatus s = kvStore_Purge(
            kv_, SequenceKey(names.dead_letter_prefix, sequence).c_str(),
            nullptr);
        s != NATS_OK) {
      return NatsError(absl::StrCat("cannot drop dead letter ", sequence), s);
    }
    response.add_sequences(sequence);
  }
  return response;
}

groups::GroupServiceStats JetStreamGroups::Stats() const {
  groups::GroupServiceStats stats;
  absl::MutexLock lock(&mu_);
  for (const auto& [name, group] : local_) {
    const Group::Counts counts = group->counts();
    ++stats.groups;
    stats.members += counts.members;
    stats.in_flight_events += counts.held;
  }
  return stats;
}

absl::Status JetStreamGroups::Health() const { return store_->Health(); }

void JetStreamGroups::Shutdown() {
  absl::flat_hash_map<std::string, std::shared_ptr<Group>> local;
  {
    absl::MutexLock lock(&mu_);
    shut_down_ = true;
    local.swap(local_);
  }
  const absl::Status status = absl::UnavailableError(
      "the gateway is shutting down; consume again later");
  // All stop at once, so that their fetches end together.
  for (auto& [name, group] : local) group->Stop(status);
  for (auto& [name, group] : local) group->Close(status);
}

}  // namespace convocore::jetstream
