#include "services/groups/group_manager.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace convocore::groups {

namespace v1 = convocore::webhooks::v1;

namespace {

absl::Status NotFound(const std::string& name) {
  return absl::NotFoundError(
      absl::StrCat("consumer group \"", name, "\" does not exist"));
}

}  // namespace

GroupManager::GroupManager(hub::EventHub* hub,
                           std::unique_ptr<GroupStateStore> store,
                           GroupManagerOptions options)
    : hub_(hub), store_(std::move(store)), options_(options) {}

absl::StatusOr<std::unique_ptr<GroupManager>> GroupManager::Create(
    hub::EventHub* hub, std::unique_ptr<GroupStateStore> store,
    GroupManagerOptions options) {
  if (hub == nullptr || store == nullptr) {
    return absl::InvalidArgumentError("consumer groups need a hub and a store");
  }
  absl::StatusOr<std::vector<GroupState>> states = store->LoadAll();
  if (!states.ok()) return states.status();
  std::unique_ptr<GroupManager> manager(
      new GroupManager(hub, std::move(store), options));
  for (GroupState& state : *states) {
    absl::StatusOr<GroupSettings> settings =
        SettingsFromProto(state.settings());
    if (!settings.ok()) {
      return absl::DataLossError(absl::StrCat(
          "consumer group \"", state.settings().name(),
          "\" has invalid saved settings: ", settings.status().message()));
    }
    const std::uint64_t floor = state.ack_floor_sequence();
    auto group = std::make_shared<ConsumerGroup>(
        hub, *settings, std::move(state), options.max_members_per_group,
        options.max_dead_letters_per_group);
    if (absl::Status started =
            group->Start(hub::StartPosition::AfterSequence(floor), true);
        !started.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "consumer group \"", settings->name, "\" cannot resume after ", floor,
          ": ", started.message(),
          " (was the event store replaced without its groups?)"));
    }
    absl::MutexLock lock(&manager->mu_);
    manager->groups_.emplace(settings->name, std::move(group));
  }
  manager->committer_ = std::thread([m = manager.get()] { m->CommitLoop(); });
  return manager;
}

GroupManager::~GroupManager() { Shutdown(); }

absl::StatusOr<std::shared_ptr<ConsumerGroup>> GroupManager::CreateLocked(
    GroupSettings settings, const hub::StartPosition& start) {
  if (shut_down_) {
    return absl::UnavailableError("the gateway is shutting down");
  }
  if (groups_.contains(settings.name)) {
    return absl::AlreadyExistsError(
        absl::StrCat("consumer group \"", settings.name, "\" already exists"));
  }
  if (groups_.size() >= options_.max_groups) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the gateway already has ", options_.max_groups,
                     " consumer groups; delete one first"));
  }
  settings.create_time = absl::Now();
  auto group = std::make_shared<ConsumerGroup>(
      hub_, settings, GroupState(), options_.max_members_per_group,
      options_.max_dead_letters_per_group);
  if (absl::Status started = group->Start(start, false); !started.ok()) {
    return started;
  }
  // Saved before anyone hears of it, so that a group that was reported
  // created survives a crash.
  GroupState state;
  Confirmations none;
  group->Snapshot(&state, &none);
  if (absl::Status saved = store_->Save(state); !saved.ok()) {
    group->Close(absl::UnavailableError("the group could not be saved"));
    return absl::UnavailableError(
        absl::StrCat("consumer group \"", settings.name,
                     "\" could not be saved: ", saved.message()));
  }
  groups_.emplace(settings.name, group);
  return group;
}

absl::StatusOr<Membership> GroupManager::Join(
    const JoinRequest& join, const GroupAuthorizer& authorize,
    MemberSink* sink) {
  std::shared_ptr<ConsumerGroup> group;
  {
    absl::MutexLock lock(&mu_);
    auto it = groups_.find(join.settings.name);
    if (it != groups_.end()) {
      group = it->second;
    } else {
      GroupSettings settings = join.settings;
      if (absl::Status allowed = authorize(&settings.filter, true);
          !allowed.ok()) {
        return allowed;
      }
      CanonicalizeFilter(&settings.filter);
      absl::StatusOr<std::shared_ptr<ConsumerGroup>> created =
          CreateLocked(std::move(settings), join.start);
      if (!created.ok()) return created.status();
      group = *std::move(created);
    }
  }
  if (absl::Status allowed = CheckJoin(join, group->settings(), authorize);
      !allowed.ok()) {
    return allowed;
  }
  absl::StatusOr<std::uint64_t> member = group->Join(join.max_in_flight, sink);
  if (!member.ok()) return member.status();
  return Membership{std::move(group), *member};
}

absl::Status GroupManager::Settle(const Membership& membership,
                                  absl::Span<const std::uint64_t> acks,
                                  absl::Span<const NackRequest> nacks) {
  absl::Status status =
      membership.group->Settle(membership.member, acks, nacks);
  absl::MutexLock lock(&mu_);
  wake_ = true;
  return status;
}

absl::StatusOr<v1::ConsumerGroup> GroupManager::CreateGroup(
    const v1::CreateConsumerGroupRequest& request,
    const GroupAuthorizer& authorize) {
  absl::StatusOr<GroupSettings> settings =
      SettingsFromProto(request.consumer_group());
  if (!settings.ok()) return settings.status();
  absl::StatusOr<hub::StartPosition> start = StartPositionOf(request);
  if (!start.ok()) return start.status();
  if (absl::Status allowed = authorize(&settings->filter, true);
      !allowed.ok()) {
    return allowed;
  }
  CanonicalizeFilter(&settings->filter);
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::shared_ptr<ConsumerGroup>> group =
      CreateLocked(*std::move(settings), *start);
  if (!group.ok()) return group.status();
  return (*group)->Info();
}

absl::StatusOr<std::shared_ptr<ConsumerGroup>> GroupManager::Find(
    const std::string& name, const GroupAuthorizer& authorize) {
  if (absl::Status valid = ValidateGroupName(name); !valid.ok()) return valid;
  std::shared_ptr<ConsumerGroup> group;
  {
    absl::MutexLock lock(&mu_);
    auto it = groups_.find(name);
    if (it == groups_.end()) return NotFound(name);
    group = it->second;
  }
  v1::SubscribeRequest filter = group->settings().filter;
  if (absl::Status allowed = authorize(&filter, false); !allowed.ok()) {
    return allowed;
  }
  return group;
}

absl::StatusOr<v1::ConsumerGroup> GroupManager::GetGroup(
    const std::string& name, const GroupAuthorizer& authorize) {
  absl::StatusOr<std::shared_ptr<ConsumerGroup>> group = Find(name, authorize);
  if (!group.ok()) return group.status();
  return (*group)->Info();
}

absl::StatusOr<std::vector<v1::ConsumerGroup>> GroupManager::ListGroups(
    const GroupAuthorizer& authorize) {
  std::vector<v1::ConsumerGroup> list;
  for (const std::shared_ptr<ConsumerGroup>& group : Groups()) {
    v1::SubscribeRequest filter = group->settings().filter;
    if (!authorize(&filter, false).ok()) continue;
    list.push_back(group->Info());
  }
  return list;
}

absl::Status GroupManager::DeleteGroup(const std::string& name,
                                       const GroupAuthorizer& authorize) {
  absl::StatusOr<std::shared_ptr<ConsumerGroup>> group = Find(name, authorize);
  if (!group.ok()) return group.status();
  {
    // Both locks across the removal: a save of this group, or a new group
    // of the same name, cannot land between the map and the file.
    absl::MutexLock save_lock(&save_mu_);
    absl::MutexLock lock(&mu_);
    auto it = groups_.find(name);
    if (it == groups_.end() || it->second != *group) return NotFound(name);
    if (absl::Status removed = store_->Remove(name); !removed.ok()) {
      return absl::UnavailableError(
          absl::StrCat("consumer group \"", name,
                       "\" could not be deleted: ", removed.message()));
    }
    groups_.erase(it);
  }
  (*group)->Close(absl::NotFoundError(
      absl::StrCat("consumer group \"", name, "\" was deleted")));
  return absl::OkStatus();
}

absl::StatusOr<v1::ConsumerGroup> GroupManager::SeekGroup(
    const v1::SeekConsumerGroupRequest& request,
    const GroupAuthorizer& authorize) {
  if (request.start_position_case() ==
      v1::SeekConsumerGroupRequest::START_POSITION_NOT_SET) {
    return absl::InvalidArgumentError(
        "a seek needs after_sequence, from_oldest or from_time");
  }
  absl::StatusOr<hub::StartPosition> start = StartPositionOf(request);
  if (!start.ok()) return start.status();
  absl::StatusOr<std::shared_ptr<ConsumerGroup>> group =
      Find(request.consumer_group(), authorize);
  if (!group.ok()) return group.status();
  if (absl::Status sought = (*group)->Seek(*start); !sought.ok()) {
    return sought;
  }
  {
    absl::MutexLock lock(&mu_);
    wake_ = true;
  }
  return (*group)->Info();
}

absl::StatusOr<v1::ListDeadLettersResponse> GroupManager::ListDeadLetters(
    const v1::ListDeadLettersRequest& request,
    const GroupAuthorizer& authorize) {
  if (request.page_size() > 1000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_size must be at most 1000, not ", request.page_size()));
  }
  absl::StatusOr<std::shared_ptr<ConsumerGroup>> group =
      Find(request.consumer_group(), authorize);
  if (!group.ok()) return group.status();
  v1::ListDeadLettersResponse response;
  for (v1::DeadLetter& letter : (*group)->DeadLetters(
           request.after_sequence(),
           request.page_size() == 0 ? 100 : request.page_size())) {
    absl::StatusOr<std::shared_ptr<const hub::Delivery>> event =
        hub_->ReadEvent(letter.sequence());
    if (event.ok()) {
      letter.mutable_event()->ParseFromString(*(*event)->event_bytes);
    } else if (!absl::IsOutOfRange(event.status())) {
      return event.status();
    }
    *response.add_dead_letters() = std::move(letter);
  }
  return response;
}

absl::StatusOr<v1::ReplayDeadLettersResponse> GroupManager::ReplayDeadLetters(
    const v1::ReplayDeadLettersRequest& request,
    const GroupAuthorizer& authorize) {
  absl::StatusOr<std::shared_ptr<ConsumerGroup>> group =
      Find(request.consumer_group(), authorize);
  if (!group.ok()) return group.status();
  std::vector<std::shared_ptr<const hub::Delivery>> events;
  for (std::uint64_t sequence : (*group)->DeadLetterSequences(
           {request.sequences().data(),
            static_cast<std::size_t>(request.sequences_size())})) {
    absl::StatusOr<std::shared_ptr<const hub::Delivery>> event =
        hub_->ReadEvent(sequence);
    if (!event.ok()) {
      return absl::Status(
          event.status().code(),
          absl::StrCat("dead letter ", sequence,
                       " cannot be replayed: ", event.status().message(),
                       "; drop it with DropDeadLetters"));
    }
    events.push_back(*std::move(event));
  }
  v1::ReplayDeadLettersResponse response;
  for (std::uint64_t sequence : (*group)->Replay(std::move(events))) {
    response.add_sequences(sequence);
  }
  absl::MutexLock lock(&mu_);
  wake_ = true;
  return response;
}

absl::StatusOr<v1::DropDeadLettersResponse> GroupManager::DropDeadLetters(
    const v1::DropDeadLettersRequest& request,
    const GroupAuthorizer& authorize) {
  absl::StatusOr<std::shared_ptr<ConsumerGroup>> group =
      Find(request.consumer_group(), authorize);
  if (!group.ok()) return group.status();
  const std::vector<std::uint64_t> sequences = (*group)->DeadLetterSequences(
      {request.sequences().data(),
       static_cast<std::size_t>(request.sequences_size())});
  v1::DropDeadLettersResponse response;
  for (std::uint64_t sequence : (*group)->Drop(sequences)) {
    response.add_sequences(sequence);
  }
  absl::MutexLock lock(&mu_);
  wake_ = true;
  return response;
}

GroupServiceStats GroupManager::Stats() const {
  GroupServiceStats stats;
  for (const std::shared_ptr<ConsumerGroup>& group : Groups()) {
    const v1::ConsumerGroup info = group->Info();
    ++stats.groups;
    stats.members += info.connected_members();
    stats.in_flight_events += info.in_flight_events();
    stats.dead_letters += info.dead_letter_count();
    stats.dead_letters_waiting += group->DeadLettersWaiting();
  }
  absl::MutexLock lock(&mu_);
  stats.saves_total = saves_total_;
  stats.save_failures_total = save_failures_total_;
  return stats;
}

absl::Status GroupManager::Health() const {
  absl::MutexLock lock(&mu_);
  return last_save_;
}

std::vector<std::shared_ptr<ConsumerGroup>> GroupManager::Groups() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<ConsumerGroup>> groups;
  groups.reserve(groups_.size());
  for (const auto& [name, group] : groups_) groups.push_back(group);
  return groups;
}

void GroupManager::CommitLoop() {
  absl::Time last_save = absl::InfinitePast();
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || wake_;
      };
      auto stopped = [this]()
                         ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; };
      mu_.AwaitWithTimeout(absl::Condition(&woken), options_.tick);
      // Saves at most once per commit_interval: the acks of that interval
      // share one save and one confirmation per member.
      mu_.AwaitWithDeadline(absl::Condition(&stopped),
                            last_save + options_.commit_interval);
      if (stop_) return;
      wake_ = false;
    }
    last_save = absl::Now();
    const Clock::time_point now = Clock::now();
    for (const std::shared_ptr<ConsumerGroup>& group : Groups()) {
      group->Tick(now);
    }
    SaveChanged();
  }
}

void GroupManager::SaveChanged() {
  absl::MutexLock save_lock(&save_mu_);
  for (const std::shared_ptr<ConsumerGroup>& group : Groups()) {
    GroupState state;
    Confirmations confirm;
    if (!group->Snapshot(&state, &confirm)) continue;
    const absl::Status saved = store_->Save(state);
    {
      absl::MutexLock lock(&mu_);
      ++saves_total_;
      if (!saved.ok()) ++save_failures_total_;
      last_save_ = saved.ok()
                       ? absl::OkStatus()
                       : absl::UnavailableError(absl::StrCat(
                             "consumer group positions cannot be saved: ",
                             saved.message()));
    }
    group->Confirm(std::move(confirm), saved.ok());
  }
}

void GroupManager::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
    stop_ = true;
  }
  if (committer_.joinable()) committer_.join();
  SaveChanged();
  for (const std::shared_ptr<ConsumerGroup>& group : Groups()) {
    group->Close(absl::UnavailableError(
        "the gateway is shutting down; consume again later"));
  }
}

}  // namespace convocore::groups
