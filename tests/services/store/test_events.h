// Deterministic events for the disk store's tests and its crash child, so
// that a reader can check every stored byte without being told what was
// written.
#ifndef TESTS_SERVICES_STORE_TEST_EVENTS_H_
#define TESTS_SERVICES_STORE_TEST_EVENTS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "services/hub/event_store.h"

namespace convocore::store::testing {

// ~500 bytes, like a serialized Event, different for every sequence.
inline std::string EventBytes(std::uint64_t sequence) {
  std::string bytes = absl::StrCat("event #", sequence, ":");
  std::uint64_t state = sequence * 0x9E3779B97F4A7C15ull + 1;
  while (bytes.size() < 500) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    bytes.push_back(static_cast<char>('a' + state % 26));
  }
  return bytes;
}

inline std::string EventId(std::uint64_t sequence) {
  return absl::StrCat("evt_", sequence);
}

inline absl::Time EventTime(std::uint64_t sequence) {
  return absl::FromUnixSeconds(1'700'000'000) + absl::Milliseconds(sequence);
}

inline hub::StoredEvent MakeEvent(std::uint64_t sequence, absl::Time time) {
  return hub::StoredEvent{
      .sequence = sequence,
      .receive_time = time,
      .id = EventId(sequence),
      .event_bytes = std::make_shared<const std::string>(EventBytes(sequence)),
  };
}

inline hub::StoredEvent MakeEvent(std::uint64_t sequence) {
  return MakeEvent(sequence, EventTime(sequence));
}

}  // namespace convocore::store::testing

#endif  // TESTS_SERVICES_STORE_TEST_EVENTS_H_
