// Where consumer groups' positions are kept across restarts. The manager
// saves a group's state whenever it changed (a few times a second at most
// per group) and reports acks as durable only once Save() returned OK.
#ifndef SERVICES_GROUPS_GROUP_STATE_STORE_H_
#define SERVICES_GROUPS_GROUP_STATE_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/groups/group_state.pb.h"

namespace convocore::groups {

// Thread-safe.
class GroupStateStore {
 public:
  virtual ~GroupStateStore() = default;
  // Every saved group; an error names what could not be read.
  virtual absl::StatusOr<std::vector<GroupState>> LoadAll() = 0;
  // Replaces the group's state (settings.name), durably on return.
  virtual absl::Status Save(const GroupState& state) = 0;
  // Forgets the group; OK when it was not there.
  virtual absl::Status Remove(const std::string& name) = 0;
};

// Keeps states in memory only, for a gateway whose events do not outlive it
// either (--store=memory) and for tests.
std::unique_ptr<GroupStateStore> NewMemoryGroupStateStore();

}  // namespace convocore::groups

#endif  // SERVICES_GROUPS_GROUP_STATE_STORE_H_
