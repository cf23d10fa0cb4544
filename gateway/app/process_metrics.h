// The Prometheus client libraries' standard process metrics, read from
// /proc at scrape time: CPU time, resident memory, open file descriptors,
// thread count and start time.
#ifndef GATEWAY_APP_PROCESS_METRICS_H_
#define GATEWAY_APP_PROCESS_METRICS_H_

#include "gateway/metrics/registry.h"

namespace convocore::app {

// Registers process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_threads and
// process_start_time_seconds (Unix seconds).
void RegisterProcessMetrics(metrics::Registry& registry);

}  // namespace convocore::app

#endif  // GATEWAY_APP_PROCESS_METRICS_H_
