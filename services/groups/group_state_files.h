// Consumer group states as files in a directory (the disk store's data
// directory, `groups/`): one `<name>.group` per group, replaced atomically
// (written aside, fdatasync'd, renamed, directory fsync'd), so that a crash
// leaves either the old state or the new one.
#ifndef SERVICES_GROUPS_GROUP_STATE_FILES_H_
#define SERVICES_GROUPS_GROUP_STATE_FILES_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "services/groups/group_state_store.h"

namespace convocore::groups {

// Creates `directory` when missing. UNAVAILABLE when it cannot be used.
absl::StatusOr<std::unique_ptr<GroupStateStore>> OpenGroupStateDirectory(
    const std::string& directory);

}  // namespace convocore::groups

#endif  // SERVICES_GROUPS_GROUP_STATE_FILES_H_
