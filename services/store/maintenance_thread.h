// A named background thread that runs one piece of work every interval, or
// sooner when woken, until it is stopped.
#ifndef SERVICES_STORE_MAINTENANCE_THREAD_H_
#define SERVICES_STORE_MAINTENANCE_THREAD_H_

#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace convocore::store {

class MaintenanceThread {
 public:
  // Starts the thread (named `name`, at most 15 characters, for ps and
  // debuggers), which runs `work` once per `interval` and after each Wake().
  MaintenanceThread(std::string name, absl::Duration interval,
                    std::function<void()> work);
  MaintenanceThread(const MaintenanceThread&) = delete;
  MaintenanceThread& operator=(const MaintenanceThread&) = delete;
  // Stop().
  ~MaintenanceThread();

  // Runs the work again soon: right away if it is waiting, else once the
  // current run is over. Any thread; never blocks on the work.
  void Wake();
  // Waits for a run under way to end and ends the thread; later calls and
  // Wake()s do nothing. Not from the work itself.
  void Stop();

 private:
  void Loop();
  bool WokenOrStopping() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return woken_ || stopping_;
  }

  const std::string name_;
  const absl::Duration interval_;
  const std::function<void()> work_;
  absl::Mutex mu_;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace convocore::store

#endif  // SERVICES_STORE_MAINTENANCE_THREAD_H_
