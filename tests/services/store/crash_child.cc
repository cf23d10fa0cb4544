// The process that the crash test kills: appends batches to the disk store
// in a loop and reports each batch on stdout before ("begin FIRST LAST") and
// after its Append() returned OK ("ack FIRST LAST"), one write(2) per line so
// that a SIGKILL never leaves half a line in the pipe.
//
//   disk_store_crash_child DATA_DIR fsync|os_cache SEGMENT_BYTES
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "services/store/disk_event_store.h"
#include "tests/services/store/test_events.h"

namespace {

void Say(const std::string& line) {
  const std::string text = line + "\n";
  if (write(STDOUT_FILENO, text.data(), text.size()) !=
      static_cast<ssize_t>(text.size())) {
    _exit(3);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using convocore::store::DiskEventStore;
  using convocore::store::DiskStoreOptions;
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s DATA_DIR fsync|os_cache SEGMENT_BYTES\n",
                 argv[0]);
    return 2;
  }
  DiskStoreOptions options;
  options.data_dir = argv[1];
  options.retention = {};  // keep everything: the test reads it all back
  // Small segments, so that kills land around rollovers and the segments
  // maintenance makes ahead.
  if (!absl::SimpleAtoi(argv[3], &options.segment_bytes)) {
    std::fprintf(stderr, "bad SEGMENT_BYTES: %s\n", argv[3]);
    return 2;
  }
  options.maintenance_interval = absl::Milliseconds(2);
  std::string error;
  if (!AbslParseFlag(argv[2], &options.durability, &error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 2;
  }
  auto store = DiskEventStore::Open(options);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    return 1;
  }
  std::uint64_t next = (*store)->Stats().last_sequence + 1;
  for (int round = 0;; ++round) {
    // Batch sizes vary like the hub's group commits do.
    const int size = 1 + (round * 7) % 40;
    std::vector<convocore::hub::StoredEvent> batch;
    for (int i = 0; i < size; ++i) {
      batch.push_back(convocore::store::testing::MakeEvent(next + i));
    }
    const std::string range = absl::StrCat(next, " ", next + size - 1);
    Say("begin " + range);
    const absl::Status status = (*store)->Append(batch);
    if (!status.ok()) {
      std::fprintf(stderr, "%s\n", status.ToString().c_str());
      return 1;
    }
    Say("ack " + range);
    next += size;
  }
}
