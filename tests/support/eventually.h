// Polling for tests: waits, bounded in time, for a condition that another
// thread or process makes true. Tests synchronise on conditions, never on
// sleeps of a guessed length.
#ifndef TESTS_SUPPORT_EVENTUALLY_H_
#define TESTS_SUPPORT_EVENTUALLY_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace convocore::testing {

// Polls `done` every `interval` until it returns true (then true) or
// `timeout` passes (then false, after one last check). The default timeout is
// generous: a condition that holds never costs it, and a loaded CI machine
// must not turn a slow pass into a failure.
template <typename Condition>
bool Eventually(Condition done, absl::Duration timeout = absl::Seconds(20),
                absl::Duration interval = absl::Milliseconds(2)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return done();
    absl::SleepFor(interval);
  }
  return true;
}

}  // namespace convocore::testing

#endif  // TESTS_SUPPORT_EVENTUALLY_H_
