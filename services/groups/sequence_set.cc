#include "services/groups/sequence_set.h"

#include <iterator>

namespace convocore::groups {

void SequenceSet::InsertRange(std::uint64_t first, std::uint64_t last) {
  if (first > last) return;
  auto it = ranges_.upper_bound(first);
  if (it != ranges_.begin()) {
    auto prev = std::prev(it);
    // Overlapping or adjacent on the left: grow that range instead, in place
    // unless it reaches the next one.
    if (prev->second + 1 >= first) {
      if (prev->second >= last) return;
      if (it == ranges_.end() || it->first > last + 1) {
        prev->second = last;
        return;
      }
      first = prev->first;
      it = ranges_.erase(prev);
    }
  }
  while (it != ranges_.end() && it->first <= last + 1) {
    if (it->second > last) last = it->second;
    it = ranges_.erase(it);
  }
  ranges_.emplace(first, last);
}

void SequenceSet::Erase(std::uint64_t sequence) {
  auto it = ranges_.upper_bound(sequence);
  if (it == ranges_.begin()) return;
  --it;
  const std::uint64_t first = it->first;
  const std::uint64_t last = it->second;
  if (last < sequence) return;
  ranges_.erase(it);
  if (first < sequence) ranges_.emplace(first, sequence - 1);
  if (sequence < last) ranges_.emplace(sequence + 1, last);
}

bool SequenceSet::Contains(std::uint64_t sequence) const {
  auto it = ranges_.upper_bound(sequence);
  if (it == ranges_.begin()) return false;
  return std::prev(it)->second >= sequence;
}

void SequenceSet::EraseThrough(std::uint64_t sequence) {
  auto it = ranges_.begin();
  while (it != ranges_.end() && it->first <= sequence) {
    const std::uint64_t last = it->second;
    it = ranges_.erase(it);
    if (last > sequence) {
      ranges_.emplace(sequence + 1, last);
      return;
    }
  }
}

void SequenceSet::EraseAbove(std::uint64_t sequence) {
  auto it = ranges_.upper_bound(sequence);
  ranges_.erase(it, ranges_.end());
  if (ranges_.empty()) return;
  auto last = std::prev(ranges_.end());
  if (last->second > sequence) last->second = sequence;
}

std::uint64_t SequenceSet::AdvanceFloor(std::uint64_t floor) {
  EraseThrough(floor);
  auto it = ranges_.begin();
  if (it != ranges_.end() && it->first == floor + 1) {
    floor = it->second;
    ranges_.erase(it);
  }
  return floor;
}

std::uint64_t SequenceSet::size() const {
  std::uint64_t n = 0;
  for (const auto& [first, last] : ranges_) n += last - first + 1;
  return n;
}

}  // namespace convocore::groups
