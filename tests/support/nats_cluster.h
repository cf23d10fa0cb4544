// A NATS JetStream cluster for tests: N nats-server children on loopback,
// each on free ports with its own store directory, always killed and reaped
// when the object goes (and killed by the kernel if the test process dies
// first). Every node runs with `sync_interval: always`, as deploy/ requires
// of production servers, so that a PubAck means "on disk on a quorum" here
// too.
#ifndef TESTS_SUPPORT_NATS_CLUSTER_H_
#define TESTS_SUPPORT_NATS_CLUSTER_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/support/temp_dir.h"

namespace convocore::testing {

class NatsCluster {
 public:
  // Starts `nodes` servers (one: a standalone server; more: one cluster with
  // routes between all of them) and waits until each answers its JetStream
  // health check (and, for a cluster, JetStream has a meta leader).
  // FAILED_PRECONDITION when the nats-server binary is missing (tests then
  // skip), unless $CI is set: CI installs it, so there a missing binary is
  // an error. The binary is $NATS_SERVER_BIN, else the one
  // buildscripts/install-deps.sh installs.
  static absl::StatusOr<std::unique_ptr<NatsCluster>> Start(
      int nodes, absl::Duration timeout = absl::Seconds(30));
  ~NatsCluster();
  NatsCluster(const NatsCluster&) = delete;
  NatsCluster& operator=(const NatsCluster&) = delete;

  int size() const { return static_cast<int>(nodes_.size()); }
  // Every node's client URL, comma-separated: what --nats_url takes.
  std::string url() const;
  std::string url(int node) const;
  // The node's server name ("n0", "n1", ...), as JetStream names leaders.
  std::string name(int node) const;

  // SIGKILL and reap; its store directory stays for Restart().
  void Kill(int node);
  // SIGSTOP / SIGCONT: a node that hangs rather than dies.
  void Pause(int node);
  void Resume(int node);
  // Starts killed nodes again on the same ports and stores, all of them
  // before waiting for their health checks: a cluster node is healthy only
  // once a quorum of its peers runs, so nodes restarted one by one could
  // wait for each other.
  absl::Status Restart(const std::vector<int>& nodes,
                       absl::Duration timeout = absl::Seconds(30));
  absl::Status Restart(int node, absl::Duration timeout = absl::Seconds(30)) {
    return Restart(std::vector<int>{node}, timeout);
  }
  bool running(int node) const { return nodes_[node].pid > 0; }

  // The node that leads `stream`, as the running nodes' monitoring
  // endpoints report it; NOT_FOUND while there is none (an election).
  absl::StatusOr<int> StreamLeader(const std::string& stream) const;

  // The node's log (its stderr), for failure messages.
  std::string log(int node) const;

 private:
  struct Node {
    std::string name;
    std::uint16_t client_port = 0;
    std::uint16_t cluster_port = 0;
    std::uint16_t monitor_port = 0;
    std::string config_path;
    std::string log_path;
    pid_t pid = -1;
  };

  NatsCluster(std::string binary, int nodes);
  absl::Status WriteConfig(int node) const;
  absl::Status Spawn(int node);
  absl::Status WaitHealthy(int node, absl::Time deadline) const;

  std::string binary_;
  TempDir dir_;
  std::vector<Node> nodes_;
};

}  // namespace convocore::testing

#endif  // TESTS_SUPPORT_NATS_CLUSTER_H_
