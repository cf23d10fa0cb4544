// Tests of the deduplicator: the window by count and age, the outcome that
// pending duplicates learn, and the atomic check-and-insert under many
// threads.
#include "gateway/core/deduplicator.h"

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/barrier.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace convocore::gateway {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'718'035'200);

// Records the outcome a pending duplicate is given.
struct Outcome {
  std::optional<absl::StatusOr<std::uint64_t>> value;
  ClaimTicket::OutcomeCallback Callback() {
    return [this](absl::StatusOr<std::uint64_t> result) {
      EXPECT_FALSE(value.has_value()) << "called twice";
      value = std::move(result);
    };
  }
};

TEST(DeduplicatorTest, FirstIsNewAndLaterOnesGetItsSequence) {
  Deduplicator dedup({});
  ClaimTicket first = dedup.Claim("evt_a", kT0);
  EXPECT_TRUE(first.is_new());
  first.Complete(17);
  EXPECT_EQ(first.sequence(), 17u);

  ClaimTicket again =
      dedup.Claim("evt_a", kT0 + absl::Minutes(5));
  EXPECT_FALSE(again.is_new());
  EXPECT_EQ(again.sequence(), 17u);

  ClaimTicket other = dedup.Claim("evt_b", kT0);
  EXPECT_TRUE(other.is_new());
  EXPECT_EQ(dedup.size(), 2u);
}

TEST(DeduplicatorTest, PendingDuplicatesLearnTheSequenceOnceStored) {
  Deduplicator dedup({});
  ClaimTicket first = dedup.Claim("evt_a", kT0);
  ASSERT_TRUE(first.is_new());
  ClaimTicket duplicate = dedup.Claim("evt_a", kT0);
  ClaimTicket another = dedup.Claim("evt_a", kT0);
  ASSERT_TRUE(duplicate.is_pending());
  EXPECT_FALSE(duplicate.is_new());
  Outcome one, two;
  std::move(duplicate).WhenFirstSettled(one.Callback());
  std::move(another).WhenFirstSettled(two.Callback());
  EXPECT_FALSE(one.value.has_value());  // nothing waits, nothing answers yet
  EXPECT_EQ(dedup.waiting(), 2u);
  first.Complete(5);
  ASSERT_TRUE(one.value.has_value() && two.value.has_value());
  EXPECT_EQ(one.value->value_or(0), 5u);
  EXPECT_EQ(two.value->value_or(0), 5u);
  EXPECT_EQ(dedup.waiting(), 0u);
  // Later duplicates are stored ones.
  ClaimTicket later = dedup.Claim("evt_a", kT0);
  EXPECT_FALSE(later.is_pending());
  EXPECT_EQ(later.sequence(), 5u);
}

TEST(DeduplicatorTest, AskingAfterTheOutcomeIsKnownAnswersAtOnce) {
  Deduplicator dedup({});
  ClaimTicket first = dedup.Claim("evt_a", kT0);
  ClaimTicket duplicate = dedup.Claim("evt_a", kT0);
  ASSERT_TRUE(duplicate.is_pending());
  first.Complete(8);
  Outcome outcome;
  std::move(duplicate).WhenFirstSettled(outcome.Callback());
  ASSERT_TRUE(outcome.value.has_value());
  EXPECT_EQ(outcome.value->value_or(0), 8u);
  EXPECT_EQ(dedup.waiting(), 0u);
}

TEST(DeduplicatorTest, FailureReachesPendingDuplicatesAndForgetsTheId) {
  Deduplicator dedup({});
  ClaimTicket first = dedup.Claim("evt_a", kT0);
  Outcome outcome;
  dedup.Claim("evt_a", kT0).WhenFirstSettled(outcome.Callback());
  EXPECT_EQ(dedup.waiting(), 1u);
  first.Fail(absl::UnavailableError("log is full"));
  ASSERT_TRUE(outcome.value.has_value());
  EXPECT_EQ(outcome.value->status(), absl::UnavailableError("log is full"));
  EXPECT_EQ(dedup.size(), 0u);
  EXPECT_EQ(dedup.waiting(), 0u);
  EXPECT_TRUE(dedup.Claim("evt_a", kT0).is_new());
}

TEST(DeduplicatorTest, DroppedTicketAbortsPendingDuplicates) {
  Deduplicator dedup({});
  Outcome outcome;
  {
    ClaimTicket first = dedup.Claim("evt_a", kT0);
    dedup.Claim("evt_a", kT0).WhenFirstSettled(outcome.Callback());
    EXPECT_FALSE(outcome.value.has_value());
  }
  ASSERT_TRUE(outcome.value.has_value());
  EXPECT_EQ(outcome.value->status().code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(dedup.Claim("evt_a", kT0).is_new());
}

TEST(DeduplicatorTest, WhenFirstSettledOnOtherTicketsAnswersAtOnce) {
  Deduplicator dedup({});
  ClaimTicket first = dedup.Claim("evt_a", kT0);
  first.Complete(3);
  Outcome stored;
  dedup.Claim("evt_a", kT0).WhenFirstSettled(stored.Callback());
  ASSERT_TRUE(stored.value.has_value());
  EXPECT_EQ(stored.value->value_or(0), 3u);
  Outcome fresh;
  dedup.Claim("evt_b", kT0).WhenFirstSettled(fresh.Callback());
  ASSERT_TRUE(fresh.value.has_value());
  EXPECT_EQ(fresh.value->status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(DeduplicatorTest, OnlyTheFirstSettlementCounts) {
  Deduplicator dedup({});
  ClaimTicket first = dedup.Claim("evt_a", kT0);
  first.Complete(1);
  first.Fail(absl::InternalError("late"));
  first.Complete(2);
  ClaimTicket duplicate = dedup.Claim("evt_a", kT0);
  EXPECT_EQ(duplicate.sequence(), 1u);
  duplicate.Complete(9);  // a duplicate's ticket settles nothing
  EXPECT_EQ(dedup.Claim("evt_a", kT0).sequence(), 1u);
}

TEST(DeduplicatorTest, MovedTicketsKeepTheirDuty) {
  Deduplicator dedup({});
  ClaimTicket a = dedup.Claim("evt_a", kT0);
  ClaimTicket b = dedup.Claim("evt_b", kT0);
    ClaimTicket moved = std::move(a);
  moved = std::move(b);  // abandons evt_a, now owns evt_b
  moved.Complete(4);
  EXPECT_TRUE(dedup.Claim("evt_a", kT0).is_new());
  EXPECT_EQ(dedup.Claim("evt_b", kT0).sequence(), 4u);
}

TEST(DeduplicatorTest, ForgetsAfterMaxAge) {
  Deduplicator dedup({.max_age = absl::Minutes(10)});
  dedup.Claim("evt_a", kT0).Complete(1);
  EXPECT_FALSE(
      dedup.Claim("evt_a", kT0 + absl::Minutes(10) - absl::Nanoseconds(1)).is_new());
  ClaimTicket later =
      dedup.Claim("evt_a", kT0 + absl::Minutes(10));
  EXPECT_TRUE(later.is_new());
  later.Complete(2);
  // Expiry also frees memory: an old id is dropped when time moves on.
  dedup.Claim("evt_b", kT0 + absl::Minutes(30)).Complete(3);
  EXPECT_EQ(dedup.size(), 1u);
}

TEST(DeduplicatorTest, ForgetsTheOldestBeyondMaxEntries) {
  Deduplicator dedup({.max_entries = 2});
  for (const char* id : {"evt_a", "evt_b", "evt_c"}) {
    dedup.Claim(id, kT0).Complete(1);
  }
  EXPECT_EQ(dedup.size(), 2u);
  EXPECT_FALSE(dedup.Claim("evt_c", kT0).is_new());
  EXPECT_FALSE(dedup.Claim("evt_b", kT0).is_new());
  EXPECT_TRUE(dedup.Claim("evt_a", kT0).is_new());
}

// Failed deliveries are forgotten, and so many of them (the store down for a
// while) never push the ids that were stored out of the window.
TEST(DeduplicatorTest, ManyFailuresKeepTheStoredIdsInTheWindow) {
  Deduplicator dedup({.max_entries = 3});
  dedup.Claim("evt_a", kT0).Complete(7);
  for (int i = 0; i < 1000; ++i) {
    ClaimTicket failing =
        dedup.Claim(absl::StrCat("evt_failing_", i), kT0);
    ASSERT_TRUE(failing.is_new());
    failing.Fail(absl::UnavailableError("the disk is full"));
  }
  dedup.Claim("evt_b", kT0).Complete(8);
  EXPECT_EQ(dedup.size(), 2u);
  ClaimTicket a = dedup.Claim("evt_a", kT0);
  EXPECT_FALSE(a.is_new());
  EXPECT_EQ(a.sequence(), 7u);
  EXPECT_TRUE(dedup.Claim("evt_failing_999", kT0).is_new());
}

// Replaced records leave their old place in the arrival order; the window
// still counts each id once and evicts in order.
TEST(DeduplicatorTest, RestoringAnIdAgainMovesItToTheNewest) {
  Deduplicator dedup({.max_entries = 2});
  dedup.Restore("evt_a", 1, kT0);
  dedup.Restore("evt_b", 2, kT0);
  dedup.Restore("evt_a", 3, kT0);  // now newer than evt_b
  dedup.Claim("evt_c", kT0).Complete(4);
  EXPECT_EQ(dedup.size(), 2u);
  EXPECT_EQ(dedup.Claim("evt_a", kT0).sequence(), 3u);
  EXPECT_TRUE(dedup.Claim("evt_b", kT0).is_new());
}

// The arrival order is a ring that grows and drops its leftovers in place;
// a long run through a small window exercises both.
TEST(DeduplicatorTest, AWindowKeepsExactlyTheNewestIdsOverALongRun) {
  constexpr int kWindow = 100;
  Deduplicator dedup({.max_entries = kWindow});
  for (int i = 0; i < 5000; ++i) {
    ClaimTicket ticket =
        dedup.Claim(absl::StrCat("evt_", i), kT0);
    ASSERT_TRUE(ticket.is_new()) << i;
    if (i % 3 == 0) {
      ticket.Fail(absl::UnavailableError("down"));
    } else {
      ticket.Complete(i);
    }
  }
  std::size_t remembered = 0;
  for (int i = 5000 - 1; i >= 0 && remembered < kWindow; --i) {
    if (i % 3 == 0) continue;
    ClaimTicket again =
        dedup.Claim(absl::StrCat("evt_", i), kT0);
    ASSERT_FALSE(again.is_new()) << i;
    EXPECT_EQ(again.sequence(), static_cast<std::uint64_t>(i));
    ++remembered;
  }
  EXPECT_EQ(dedup.size(), static_cast<std::size_t>(kWindow));
}

TEST(DeduplicatorTest, RestoredIdsAreDuplicatesWithinTheWindow) {
  Deduplicator dedup({.max_age = absl::Hours(1)});
  dedup.Restore("evt_a", 41, kT0);
  dedup.Restore("evt_old", 40, kT0 - absl::Hours(2));
  ClaimTicket a = dedup.Claim("evt_a", kT0 + absl::Minutes(1));
  EXPECT_FALSE(a.is_new());
  EXPECT_EQ(a.sequence(), 41u);
  EXPECT_TRUE(dedup.Claim("evt_old", kT0 + absl::Minutes(1)).is_new());
}

TEST(DeduplicatorTest, RestoreLeavesAnInFlightDeliveryAlone) {
  Deduplicator dedup({});
  ClaimTicket first = dedup.Claim("evt_a", kT0);
  dedup.Restore("evt_a", 99, kT0);
  first.Complete(7);
  EXPECT_EQ(dedup.Claim("evt_a", kT0).sequence(), 7u);
}

TEST(DeduplicatorConcurrencyTest, IdenticalDeliveriesOnManyThreadsYieldOneNew) {
  constexpr int kThreads = 32;
  Deduplicator dedup({});
  absl::Barrier start(kThreads);
  // Every delivery has claimed (and a pending one asked for its outcome)
  // before the first is settled.
  absl::Barrier claimed(kThreads);
  std::atomic<int> fresh{0};
  std::atomic<int> duplicates_with_sequence{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      start.Block();
      ClaimTicket ticket = dedup.Claim("evt_same", kT0);
      const bool is_new = ticket.is_new();
      if (is_new) {
        ++fresh;
      } else if (ticket.is_pending()) {
        std::move(ticket).WhenFirstSettled(
            [&](absl::StatusOr<std::uint64_t> sequence) {
              if (sequence.ok() && *sequence == 1234) {
                ++duplicates_with_sequence;
              } else {
                ++errors;
              }
            });
      } else {
        ++errors;  // stored before the first was settled
      }
      claimed.Block();
      if (is_new) ticket.Complete(1234);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(fresh.load(), 1);
  EXPECT_EQ(duplicates_with_sequence.load(), kThreads - 1);
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(dedup.waiting(), 0u);
}

TEST(DeduplicatorConcurrencyTest, ManyIdsOnManyThreadsEachNewExactlyOnce) {
  constexpr int kThreads = 16;
  constexpr int kIds = 200;
  Deduplicator dedup({});
  std::vector<std::atomic<int>> fresh(kIds);
  std::atomic<std::uint64_t> next_sequence{1};
  absl::Barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.Block();
      for (int n = 0; n < kIds; ++n) {
        const int id = (n + t * 7) % kIds;  // threads collide at different ids
        ClaimTicket ticket =
            dedup.Claim(absl::StrCat("evt_", id), kT0);
        if (ticket.is_new()) {
          ++fresh[id];
          ticket.Complete(next_sequence++);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int id = 0; id < kIds; ++id) EXPECT_EQ(fresh[id].load(), 1) << id;
  EXPECT_EQ(dedup.size(), static_cast<std::size_t>(kIds));
}

}  // namespace
}  // namespace convocore::gateway
