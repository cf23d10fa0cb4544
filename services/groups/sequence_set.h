// A set of event sequences kept as disjoint ranges, for what a consumer
// group has settled above its floor: acknowledged, dead-lettered or passed
// by its filter. Those are mostly runs, so the set stays small however many
// events it holds.
#ifndef SERVICES_GROUPS_SEQUENCE_SET_H_
#define SERVICES_GROUPS_SEQUENCE_SET_H_

#include <cstdint>
#include <map>

namespace convocore::groups {

class SequenceSet {
 public:
  // Adds [first, last]; nothing when first > last.
  void InsertRange(std::uint64_t first, std::uint64_t last);
  void Insert(std::uint64_t sequence) { InsertRange(sequence, sequence); }
  void Erase(std::uint64_t sequence);
  bool Contains(std::uint64_t sequence) const;
  // Removes every sequence up to `sequence`.
  void EraseThrough(std::uint64_t sequence);
  // Removes every sequence above `sequence`.
  void EraseAbove(std::uint64_t sequence);
  // With every sequence up to `floor` taken as present: the largest `f` such
  // that every sequence up to `f` is present. Removes what it passes.
  std::uint64_t AdvanceFloor(std::uint64_t floor);

  std::uint64_t size() const;
  bool empty() const { return ranges_.empty(); }
  // first -> last, in order.
  const std::map<std::uint64_t, std::uint64_t>& ranges() const {
    return ranges_;
  }

 private:
  std::map<std::uint64_t, std::uint64_t> ranges_;
};

}  // namespace convocore::groups

#endif  // SERVICES_GROUPS_SEQUENCE_SET_H_
