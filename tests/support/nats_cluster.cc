#include "tests/support/nats_cluster.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "rapidjson/document.h"
#include "tests/gateway/http/http_test_client.h"

namespace convocore::testing {
namespace {

// Ports the OS hands out for 127.0.0.1, all held open until every one is
// known, so that no two are the same. A port can still be taken by someone
// else between here and the server's bind; the server then fails to start
// and Start() says so.
absl::StatusOr<std::vector<std::uint16_t>> FreePorts(int count) {
  std::vector<int> fds;
  std::vector<std::uint16_t> ports;
  absl::Status status;
  for (int k = 0; k < count && status.ok(); ++k) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      status = absl::InternalError(
          absl::StrCat("no free port: ", std::strerror(errno)));
    } else {
      ports.push_back(ntohs(addr.sin_port));
    }
    if (fd >= 0) fds.push_back(fd);
  }
  for (int fd : fds) close(fd);
  if (!status.ok()) return status;
  return ports;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The last `lines` lines of `text`.
std::string Tail(const std::string& text, int lines) {
  std::size_t at = text.size();
  for (int k = 0; k <= lines && at != std::string::npos && at > 0; ++k) {
    at = text.rfind('\n', at - 1);
  }
  return at == std::string::npos ? text : text.substr(at + 1);
}

}  // namespace

NatsCluster::NatsCluster(std::string binary, int nodes)
    : binary_(std::move(binary)), dir_("nats_cluster"), nodes_(nodes) {}

absl::StatusOr<std::unique_ptr<NatsCluster>> NatsCluster::Start(
    int nodes, absl::Duration timeout) {
  const char* from_env = std::getenv("NATS_SERVER_BIN");
  std::string binary = from_env != nullptr ? from_env : NATS_SERVER_BINARY;
  if (access(binary.c_str(), X_OK) != 0) {
    const std::string message =
        absl::StrCat("no nats-server at ", binary,
                     " (buildscripts/install-deps.sh installs it)");
    if (std::getenv("CI") != nullptr) return absl::NotFoundError(message);
    return absl::FailedPreconditionError(message);
  }
  auto cluster =
      std::unique_ptr<NatsCluster>(new NatsCluster(std::move(binary), nodes));
  absl::StatusOr<std::vector<std::uint16_t>> ports = FreePorts(3 * nodes);
  if (!ports.ok()) return ports.status();
  for (int k = 0; k < nodes; ++k) {
    Node& node = cluster->nodes_[k];
    node.name = absl::StrCat("n", k);
    node.client_port = (*ports)[3 * k];
    node.cluster_port = (*ports)[3 * k + 1];
    node.monitor_port = (*ports)[3 * k + 2];
    node.config_path = (cluster->dir_.path() / (node.name + ".conf")).string();
    node.log_path = (cluster->dir_.path() / (node.name + ".log")).string();
    if (absl::Status written = cluster->WriteConfig(k); !written.ok()) {
      return written;
    }
  }
  // All first, then wait: a cluster node is healthy only once a quorum of
  // its peers elected a JetStream meta leader.
  for (int k = 0; k < nodes; ++k) {
    if (absl::Status spawned = cluster->Spawn(k); !spawned.ok()) {
      return spawned;
    }
  }
  const absl::Time deadline = absl::Now() + timeout;
  for (int k = 0; k < nodes; ++k) {
    if (absl::Status healthy = cluster->WaitHealthy(k, deadline);
        !healthy.ok()) {
      return healthy;
    }
  }
  return cluster;
}

NatsCluster::~NatsCluster() {
  for (int k = 0; k < size(); ++k) Kill(k);
}

absl::Status NatsCluster::WriteConfig(int k) const {
  const Node& node = nodes_[k];
  const std::string store = (dir_.path() / node.name).string();
  std::string config =
      absl::StrCat("server_name: ", node.name, "\n",                          //
                   "listen: 127.0.0.1:", node.client_port, "\n",              //
                   "http: 127.0.0.1:", node.monitor_port, "\n",               //
                   "jetstream {\n  store_dir: \"", store, "\"\n",             //
                   "  sync_interval: always\n",                               //
                   "  max_memory_store: 256MB\n  max_file_store: 1GB\n}\n");  //
  if (size() > 1) {
    std::vector<std::string> routes;
    for (const Node& peer : nodes_) {
      if (&peer != &node) {
        routes.push_back(
            absl::StrCat("nats-route://127.0.0.1:", peer.cluster_port));
      }
    }
    absl::StrAppend(&config, "cluster {\n  name: test\n  listen: 127.0.0.1:",
                    node.cluster_port, "\n  routes: [",
                    absl::StrJoin(routes, ", "), "]\n}\n");
  }
  std::ofstream out(node.config_path);
  out << config;
  out.close();
  if (!out) return absl::InternalError("cannot write " + node.config_path);
  return absl::OkStatus();
}

absl::Status NatsCluster::Spawn(int k) {
  Node& node = nodes_[k];
  // Built before fork: only async-signal-safe calls happen in the child.
  std::string flag = "-c";
  std::vector<char*> argv = {binary_.data(), flag.data(),
                             node.config_path.data(), nullptr};
  const int log_fd = open(node.log_path.c_str(),
                          O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::InternalError("cannot open " + node.log_path);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(log_fd);
  if (pid < 0) {
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  node.pid = pid;
  return absl::OkStatus();
}

absl::Status NatsCluster::WaitHealthy(int k, absl::Time deadline) const {
  const Node& node = nodes_[k];
  const std::string url =
      absl::StrCat("http://127.0.0.1:", node.monitor_port, "/healthz");
  http::testing::HttpClient client;
  std::string last = "no answer";
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(node.pid, &status, WNOHANG) == node.pid) {
      return absl::InternalError(absl::StrCat(
          "nats-server ", node.name, " exited; its log:\n", Tail(log(k), 20)));
    }
    // /healthz answers 200 once JetStream is up and, in a cluster, in
    // contact with a meta leader and current on every stream it hosts.
    absl::StatusOr<http::testing::HttpResponse> answer = client.Get(url);
    if (answer.ok() && answer->code == 200) return absl::OkStatus();
    last = answer.ok() ? absl::StrCat(answer->code, " ", answer->body)
                       : answer.status().ToString();
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("nats-server ", node.name, " not healthy in time (", last,
                   "); its log:\n", Tail(log(k), 20)));
}

std::string NatsCluster::url() const {
  std::vector<std::string> urls;
  for (int k = 0; k < size(); ++k) urls.push_back(url(k));
  return absl::StrJoin(urls, ",");
}

std::string NatsCluster::url(int k) const {
  return absl::StrCat("nats://127.0.0.1:", nodes_[k].client_port);
}

std::string NatsCluster::name(int k) const { return nodes_[k].name; }

void NatsCluster::Kill(int k) {
  Node& node = nodes_[k];
  if (node.pid <= 0) return;
  kill(node.pid, SIGKILL);
  int status = 0;
  waitpid(node.pid, &status, 0);
  node.pid = -1;
}

void NatsCluster::Pause(int k) {
  if (nodes_[k].pid > 0) kill(nodes_[k].pid, SIGSTOP);
}

void NatsCluster::Resume(int k) {
  if (nodes_[k].pid > 0) kill(nodes_[k].pid, SIGCONT);
}

absl::Status NatsCluster::Restart(const std::vector<int>& nodes,
                                  absl::Duration timeout) {
  for (int k : nodes) {
    Kill(k);
    if (absl::Status spawned = Spawn(k); !spawned.ok()) return spawned;
  }
  const absl::Time deadline = absl::Now() + timeout;
  for (int k : nodes) {
    if (absl::Status healthy = WaitHealthy(k, deadline); !healthy.ok()) {
      return healthy;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int> NatsCluster::StreamLeader(const std::string& stream) const {
  http::testing::HttpClient client;
  for (int k = 0; k < size(); ++k) {
    if (nodes_[k].pid <= 0) continue;
    absl::StatusOr<http::testing::HttpResponse> answer =
        client.Get(absl::StrCat("http://127.0.0.1:", nodes_[k].monitor_port,
                                "/jsz?streams=true"));
    if (!answer.ok() || answer->code != 200) continue;
    rapidjson::Document doc;
    doc.Parse(answer->body.c_str());
    if (doc.HasParseError() || !doc.IsObject() ||
        !doc.HasMember("account_details")) {
      continue;
    }
    for (const auto& account : doc["account_details"].GetArray()) {
      if (!account.HasMember("stream_detail")) continue;
      for (const auto& detail : account["stream_detail"].GetArray()) {
        if (!detail.HasMember("name") || detail["name"].GetString() != stream) {
          continue;
        }
        // A standalone server leads every stream it has.
        if (!detail.HasMember("cluster") ||
            !detail["cluster"].HasMember("leader")) {
          if (size() == 1) return k;
          continue;
        }
        const std::string leader = detail["cluster"]["leader"].GetString();
        for (int j = 0; j < size(); ++j) {
          if (nodes_[j].name == leader && nodes_[j].pid > 0) return j;
        }
      }
    }
  }
  return absl::NotFoundError(
      absl::StrCat("no running node reports a leader of stream ", stream));
}

std::string NatsCluster::log(int k) const {
  return ReadFile(nodes_[k].log_path);
}

}  // namespace convocore::testing
