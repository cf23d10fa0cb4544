#include "gateway/app/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace convocore::app {
namespace {

// The value of `key` (e.g. "VmRSS:", "Threads:") in /proc/self/status,
// whose memory figures are in kB; -1 if absent.
double StatusField(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string name;
  double value = 0;
  while (in >> name) {
    if (name == key) {
      in >> value;
      return value;
    }
    in.ignore(1 << 16, '\n');
  }
  return -1;
}

double OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  double count = 0;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // the directory being read
}

double CpuSeconds() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return -1;
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace

void RegisterProcessMetrics(metrics::Registry& registry) {
  registry.AddCallbackCounter("process_cpu_seconds_total",
                              "User and system CPU time spent, in seconds.",
                              &CpuSeconds);
  registry.AddCallbackGauge("process_resident_memory_bytes",
                            "Resident memory size in bytes.",
                            [] { return StatusField("VmRSS:") * 1024; });
  registry.AddCallbackGauge("process_virtual_memory_bytes",
                            "Virtual memory size in bytes.",
                            [] { return StatusField("VmSize:") * 1024; });
  registry.AddCallbackGauge("process_open_fds", "Open file descriptors.",
                            &OpenFds);
  registry.AddCallbackGauge("process_threads", "OS threads.",
                            [] { return StatusField("Threads:"); });
  const double start = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  registry.AddCallbackGauge(
      "process_start_time_seconds",
      "Start time of the process since the Unix epoch, in seconds.",
      [start] { return start; });
}

}  // namespace convocore::app
