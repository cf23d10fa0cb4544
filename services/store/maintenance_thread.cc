#include "services/store/maintenance_thread.h"

#include <pthread.h>

#include <cstring>
#include <utility>

#include "gateway/log/logger.h"

namespace convocore::store {

MaintenanceThread::MaintenanceThread(std::string name, absl::Duration interval,
                                     std::function<void()> work)
    : name_(std::move(name)), interval_(interval), work_(std::move(work)) {
  thread_ = std::thread([this] { Loop(); });
}

MaintenanceThread::~MaintenanceThread() { Stop(); }

void MaintenanceThread::Wake() {
  absl::MutexLock lock(&mu_);
  woken_ = true;
}

void MaintenanceThread::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void MaintenanceThread::Loop() {
  if (const int error =
          pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
      error != 0) {
    // Cosmetic: ps and debuggers show the process's name instead.
    log::Warning("cannot name a thread",
                 {{"name", name_}, {"error", std::strerror(error)}});
  }
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(
          absl::Condition(this, &MaintenanceThread::WokenOrStopping),
          interval_);
      if (stopping_) return;
      woken_ = false;
    }
    work_();
  }
}

}  // namespace convocore::store
