#include "services/groups/group_state_store.h"

#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace convocore::groups {

namespace {

class MemoryGroupStateStore final : public GroupStateStore {
 public:
  absl::StatusOr<std::vector<GroupState>> LoadAll() override {
    absl::MutexLock lock(&mu_);
    std::vector<GroupState> all;
    for (const auto& [name, state] : states_) all.push_back(state);
    return all;
  }
  absl::Status Save(const GroupState& state) override {
    absl::MutexLock lock(&mu_);
    states_[state.settings().name()] = state;
    return absl::OkStatus();
  }
  absl::Status Remove(const std::string& name) override {
    absl::MutexLock lock(&mu_);
    states_.erase(name);
    return absl::OkStatus();
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, GroupState> states_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<GroupStateStore> NewMemoryGroupStateStore() {
  return std::make_unique<MemoryGroupStateStore>();
}

}  // namespace convocore::groups
