"""Checks deploy/: the Kubernetes manifests are well-formed, and what they and
the Dockerfile name (flags, their environment variables, ports, probe paths,
the data directory, the shutdown timeout) is what the real binary uses. The
binary's side is read from its --helpfull and by running it with the
sidecar's configuration, never restated here.

deploy/k8s/ holds the sidecar; deploy/k8s/ha/ the replicas on JetStream, whose
manifests are checked against the same flags (the binary is not run with
them: they need a NATS cluster) and against the NATS chart's values.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from gatewaytest import ROOT, free_port, gateway_env, http_get, wait_for

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"  # The sidecar.
HA = K8S / "ha"  # Several replicas on one JetStream cluster.
# The flags that name a file the gateway reads.
FILE_FLAGS = ("nats_creds_file", "nats_nkey_file", "nats_ca_file", "nats_tls_cert", "nats_tls_key",
              "subscriber_tokens_file", "grpc_tls_cert", "grpc_tls_key", "grpc_tls_client_ca",
              "workspace_secret_file")
# In ha/ but not a manifest: values for NATS's Helm chart.
NATS_VALUES = HA / "nats-values.yaml"


def manifest_paths(directory: Path = K8S) -> list[Path]:
    """The manifests directly in `directory` (not its subdirectories)."""
    return [p for p in sorted(directory.glob("*.yaml")) if p != NATS_VALUES]


def manifests(directory: Path = K8S) -> list[dict]:
    docs = []
    for path in manifest_paths(directory):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def of_kind(kind: str, directory: Path = K8S) -> list[dict]:
    return [d for d in manifests(directory) if d["kind"] == kind]


def pod_spec(directory: Path = K8S) -> dict:
    [deployment] = of_kind("Deployment", directory)
    return deployment["spec"]["template"]["spec"]


def containers(directory: Path = K8S) -> list[dict]:
    spec = pod_spec(directory)
    return spec.get("initContainers", []) + spec["containers"]


def gateway_container(directory: Path = K8S) -> dict:
    [c] = [c for c in containers(directory) if "webhook-gateway" in c["image"]]
    return c


def sidecar() -> dict:
    return gateway_container(K8S)


def secret_value(ref: dict) -> str:
    # The one Secret of deploy/k8s/secret.yaml, which ha/ uses too.
    [secret] = [s for s in of_kind("Secret") if s["metadata"]["name"] == ref["name"]]
    return secret["stringData"][ref["key"]]


def env_values(env: list[dict]) -> dict[str, str]:
    return {
        e["name"]: secret_value(e["valueFrom"]["secretKeyRef"]) if "valueFrom" in e else e["value"] for e in env
    }


def flag_args(args: list[str]) -> dict[str, str]:
    """{name: value} of `--name=value` arguments; every argument must be one."""
    out = {}
    for a in args:
        m = re.fullmatch(r"--(\w+)=(.*)", a)
        assert m, f"argument {a!r} is not --flag=value"
        out[m.group(1)] = m.group(2)
    return out


class Config:
    """What a container or image sets, resolved the way the binary does:
    flags over their environment variables over the defaults."""

    def __init__(self, flags, help_text: str, env: dict[str, str], args: list[str]):
        self.flags = flags
        # The prefix, from the binary's own example ("GATEWAY_HTTP_PORT=8080").
        self.prefix = re.search(r"\b(\w+_)HTTP_PORT=", help_text).group(1)
        self.env, self.args = env, flag_args(args)

    def flag_of(self, variable: str) -> str | None:
        if variable.startswith(self.prefix):
            return variable[len(self.prefix) :].lower()
        return None

    def __getitem__(self, name: str) -> str:
        assert name in self.flags, f"the binary has no --{name}"
        if name in self.args:
            return self.args[name]
        if self.prefix + name.upper() in self.env:
            return self.env[self.prefix + name.upper()]
        default = self.flags[name].default
        return default[1:-1] if default.startswith('"') else default


def container_config(c: dict, flags, help_text) -> Config:
    return Config(flags, help_text, env_values(c.get("env", [])), c.get("args", []))


def sidecar_config(flags, help_text) -> Config:
    return container_config(sidecar(), flags, help_text)


@pytest.fixture(scope="module")
def help_text(gateway_bin) -> str:
    out = subprocess.run([str(gateway_bin), "--helpfull"], capture_output=True, text=True, timeout=30)
    return out.stdout + out.stderr


def seconds(duration: str) -> float:
    """An Abseil duration ("10s", "1m30s", "500ms") or plain seconds."""
    if re.fullmatch(r"[0-9.]+", duration):
        return float(duration)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"([0-9.]+)(ms|us|ns|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def test_manifests_are_well_formed():
    docs = manifests()
    assert {d["kind"] for d in docs} >= {"Deployment", "Secret", "Service", "PersistentVolumeClaim"}
    for d in docs:
        assert d.get("apiVersion") and d.get("metadata", {}).get("name"), d
    [deployment] = of_kind("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    [service] = of_kind("Service")
    assert service["spec"]["selector"].items() <= labels.items()


def check_names_only_flags(config: Config, flags, help_text: str, where: str):
    for name in config.args:
        assert name in flags, f"{where} passes --{name}, which the binary does not have"
    for variable in config.env:
        flag = config.flag_of(variable)
        if flag is None:
            assert variable in help_text, f"the binary's help never mentions {variable} ({where})"
        else:
            assert flag in flags, f"{variable} in {where} names no flag of the binary"
    assert "CONVOCORE_WORKSPACE_SECRET" in config.env


def test_sidecar_names_only_the_binarys_flags_and_variables(gateway_flags, help_text):
    config = sidecar_config(gateway_flags, help_text)
    check_names_only_flags(config, gateway_flags, help_text, "deployment.yaml")


def check_ports_and_probes(c: dict, config: Config, help_text: str, service: dict) -> dict[str, int]:
    """The container's HTTP port is the binary's, its probes ask that port for
    /healthz and /readyz, and the Service targets its ports; returns them."""
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["http"] == int(config["http_port"])
    probes = {k: c[k]["httpGet"] for k in ("livenessProbe", "readinessProbe", "startupProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    for probe in probes.values():
        assert probe["port"] in ports, f"probe on unknown port {probe['port']}"
        assert probe["path"] in help_text, f"the binary's help never mentions {probe['path']}"
    for p in service["spec"]["ports"]:
        assert p["targetPort"] in ports
    return ports


def test_sidecar_ports_and_probes_are_the_binarys(gateway_flags, help_text):
    c, config = sidecar(), sidecar_config(gateway_flags, help_text)
    [service] = of_kind("Service")
    check_ports_and_probes(c, config, help_text, service)
    # The application reaches the stream over localhost, where it listens.
    assert config["grpc_address"] in ("127.0.0.1", "0.0.0.0", "::", "localhost")
    targets = [v for c in pod_spec()["containers"] for v in env_values(c.get("env", [])).values() if "localhost:" in v]
    assert targets and all(t.endswith(":" + config["grpc_port"]) for t in targets)


def test_sidecar_data_dir_is_the_persistent_volume(gateway_flags, help_text):
    c, config = sidecar(), sidecar_config(gateway_flags, help_text)
    assert config["store"] == "disk"
    [mount] = [m for m in c["volumeMounts"] if m["mountPath"] == config["data_dir"]]
    [volume] = [v for v in pod_spec()["volumes"] if v["name"] == mount["name"]]
    [pvc] = of_kind("PersistentVolumeClaim")
    assert volume["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]


def check_grace_period(directory: Path, flags, help_text: str):
    c = gateway_container(directory)
    config = container_config(c, flags, help_text)
    pre_stop = float(c["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod_spec(directory)["terminationGracePeriodSeconds"] > seconds(config["shutdown_timeout"]) + pre_stop


def test_grace_period_exceeds_the_gateways_shutdown(gateway_flags, help_text):
    check_grace_period(K8S, gateway_flags, help_text)


def test_sidecar_configuration_starts_the_binary_and_serves_the_probes(
    gateway_bin, gateway_flags, help_text, processes, tmp_path
):
    """Runs the binary with the container's env and args, the ports and the
    data directory moved to free ones, and probes it as the kubelet would."""
    c, config = sidecar(), sidecar_config(gateway_flags, help_text)
    http_port = free_port()
    env = gateway_env(**config.env)
    env.update(
        {
            config.prefix + "HTTP_PORT": str(http_port),
            config.prefix + "GRPC_PORT": str(free_port()),
            config.prefix + "DATA_DIR": str(tmp_path / "data"),
        }
    )
    gateway = processes("sidecar", [str(gateway_bin), *c.get("args", [])], env)

    def serves(path):
        def ok():
            if not gateway.alive():
                pytest.fail(f"the sidecar configuration did not start:\n{gateway.log()}")
            try:
                return http_get(f"http://127.0.0.1:{http_port}{path}", timeout=2)[0] == 200
            except OSError:
                return False

        return ok

    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        path = c[kind]["httpGet"]["path"]
        wait_for(serves(path), 60, f"{path} to answer 200")
    assert "names no flag" not in gateway.log(), gateway.log()
    assert gateway.stop() == 0, gateway.log()


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each a list of (INSTRUCTION, arguments)."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        if instr.upper() == "FROM":
            stages.append([])
        stages[-1].append((instr.upper(), rest.strip()))
    return stages


def instr(stage, name) -> list[str]:
    return [rest for i, rest in stage if i == name]


def test_dockerfile_builds_with_the_ci_scripts_and_runs_as_configured(gateway_flags, help_text):
    build, runtime = dockerfile_stages()
    assert instr(build, "FROM")[0].startswith("debian:12") and instr(runtime, "FROM")[0] == "debian:12"
    run = " ".join(instr(build, "RUN"))
    # The same build as CI's: the scripts, with no extra CMake arguments.
    assert "buildscripts/install-deps.sh" in run
    assert re.search(r"buildscripts/build\.sh\s*(&&|$)", run)

    [user] = instr(runtime, "USER")
    uid = user.split(":")[0]
    assert uid not in ("0", "root")
    assert str(pod_spec()["securityContext"]["runAsUser"]) == uid

    [entrypoint] = instr(runtime, "ENTRYPOINT")
    binary = yaml.safe_load(entrypoint)[0]  # A JSON array is YAML.
    assert any(shlex.split(c)[-1] == binary for c in instr(runtime, "COPY"))
    env = dict(kv.split("=", 1) for e in instr(runtime, "ENV") for kv in shlex.split(e))
    cmd = [yaml.safe_load(c) for c in instr(runtime, "CMD")]
    config = Config(gateway_flags, help_text, env, cmd[0] if cmd else [])
    for variable in env:
        assert config.flag_of(variable) in gateway_flags, f"{variable} names no flag of the binary"
    [volume] = instr(runtime, "VOLUME")
    assert config["store"] == "disk" and volume == config["data_dir"]
    assert volume == sidecar_config(gateway_flags, help_text)["data_dir"]
    exposed = {int(p) for p in " ".join(instr(runtime, "EXPOSE")).split()}
    assert exposed == {int(config["http_port"]), int(config["grpc_port"])}


def test_runtime_packages_cover_the_binarys_libraries(gateway_bin):
    out = subprocess.run(
        [str(DEPLOY / "runtime-packages.sh"), str(gateway_bin)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    packages = out.stdout.split()
    assert any(p.startswith("libgrpc++") for p in packages), packages
    for p in packages:
        status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
        assert status.stdout == "install ok installed", p


def test_dockerignore_keeps_build_outputs_out_of_the_context():
    ignored = set((DEPLOY / "Dockerfile.dockerignore").read_text().split())
    assert {"build", "build-*", ".tools", ".git"} <= ignored


# ---------------------------------------------------------------------------
# deploy/k8s/ha/: replicas of the gateway alone on one JetStream cluster. The
# binary is not started with this configuration (it needs NATS); its flags,
# ports and probes are checked as the sidecar's are, and the manifests
# against each other and against the NATS chart's values.


def selects(selector: dict, labels: dict) -> bool:
    """Whether a label selector (matchLabels only) selects these labels."""
    assert set(selector) <= {"matchLabels"}, f"only matchLabels is understood here: {selector}"
    return selector["matchLabels"].items() <= labels.items()


def ha_labels() -> dict:
    [deployment] = of_kind("Deployment", HA)
    return deployment["spec"]["template"]["metadata"]["labels"]


def ha_config(flags, help_text) -> Config:
    return container_config(gateway_container(HA), flags, help_text)


def nats_values() -> dict:
    [values] = [d for d in yaml.safe_load_all(NATS_VALUES.read_text()) if d is not None]
    return values


def dig(d: dict, *path, default=None):
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return default
        d = d[key]
    return d


def ha_readme_commands() -> list[list[str]]:
    """The shell commands of ha/README.md's sh blocks, split into words."""
    text = (HA / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    return [shlex.split(line) for b in blocks for line in b.replace("\\\n", " ").splitlines() if line.strip()]


def files_of(words: list[str]) -> list[str]:
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-f", "--filename", "--values")]


def nats_release() -> dict:
    """What the chart names, from the README's `helm install RELEASE CHART`
    and the values (the chart's own rules for its names and labels)."""
    [install] = [w for w in ha_readme_commands() if w[:2] == ["helm", "install"]]
    release, chart = install[2], install[3]
    assert chart.endswith("/nats"), install
    assert str(NATS_VALUES.relative_to(ROOT)) in files_of(install), install
    values = nats_values()
    name = values.get("nameOverride") or "nats"
    fullname = values.get("fullnameOverride") or (release if name in release else f"{release}-{name}")
    statefulset = dig(values, "statefulSet", "name") or fullname
    return {
        "release": release,
        "statefulset": statefulset,
        "headless": dig(values, "headlessService", "name") or f"{fullname}-headless",
        "client_port": dig(values, "config", "nats", "port", default=4222),
        "cluster_port": dig(values, "config", "cluster", "port", default=6222),
        "labels": {
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/instance": release,
            "app.kubernetes.io/component": "nats",
        },
    }


def admitted(policy: dict, port) -> list[dict]:
    """The ingress rules of a NetworkPolicy that admit this port (a number or a
    list of a number and the container port's name)."""
    names = port if isinstance(port, list) else [port]
    rules = policy["spec"].get("ingress", [])
    return [r for r in rules if "ports" not in r or any(p.get("port") in names for p in r["ports"])]


def policy_for(labels: dict) -> dict:
    [policy] = [p for p in of_kind("NetworkPolicy", HA) if selects(p["spec"]["podSelector"], labels)]
    assert "Ingress" in policy["spec"]["policyTypes"]
    return policy


def test_ha_manifests_are_well_formed():
    docs = manifests(HA)
    assert {d["kind"] for d in docs} == {"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"}
    for d in docs:
        assert d.get("apiVersion") and d.get("metadata", {}).get("name"), d
    [deployment] = of_kind("Deployment", HA)
    assert deployment["metadata"]["name"] == "webhook-gateway"
    labels = ha_labels()
    assert selects(deployment["spec"]["selector"], labels)
    [service] = of_kind("Service", HA)
    assert service["spec"]["selector"].items() <= labels.items()
    [pdb] = of_kind("PodDisruptionBudget", HA)
    assert selects(pdb["spec"]["selector"], labels)
    policy_for(labels)
    # The gateway alone, not a sidecar.
    spec = pod_spec(HA)
    assert not spec.get("initContainers") and [c["name"] for c in spec["containers"]] == ["webhook-gateway"]
    assert isinstance(nats_values(), dict)


def test_ha_names_only_the_binarys_flags_and_variables(gateway_flags, help_text):
    config = ha_config(gateway_flags, help_text)
    check_names_only_flags(config, gateway_flags, help_text, "ha/deployment.yaml")
    # The variables shown commented out (the NATS credentials) too.
    text = (HA / "deployment.yaml").read_text()
    commented = re.findall(r"^\s*#\s*-\s*name:\s*([A-Z][A-Z0-9_]*)\s*$", text, re.MULTILINE)
    # How to pass NATS credentials is shown, set or commented out.
    assert config.prefix + "NATS_CREDS_FILE" in [*config.env, *commented]
    for variable in commented:
        assert config.flag_of(variable) in gateway_flags, f"{variable} names no flag of the binary"


def test_ha_ports_and_probes_are_the_binarys(gateway_flags, help_text):
    c, config = gateway_container(HA), ha_config(gateway_flags, help_text)
    [service] = of_kind("Service", HA)
    ports = check_ports_and_probes(c, config, help_text, service)
    assert ports["grpc"] == int(config["grpc_port"])
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {"http", "grpc"}
    # Subscribers are other pods, so the stream listens on the pod's address.
    assert config["grpc_address"] in ("0.0.0.0", "::")


def test_ha_event_stream_only_admits_subscribers(gateway_flags, help_text):
    """Defence in depth besides the tokens: the NetworkPolicy of the
    gateway's pods admits the stream's port only from selected pods; webhooks
    from anywhere."""
    c, config = gateway_container(HA), ha_config(gateway_flags, help_text)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    policy = policy_for(ha_labels())
    grpc_rules = admitted(policy, [ports["grpc"], "grpc"])
    assert grpc_rules, "the NetworkPolicy admits nothing to the gRPC port"
    for rule in grpc_rules:
        assert rule.get("from"), f"the gRPC port is open to every source: {rule}"
        for peer in rule["from"]:
            assert "ipBlock" not in peer and peer.get("podSelector", {}).get("matchLabels"), peer
    http_rules = admitted(policy, [ports["http"], "http"])
    assert any(not r.get("from") for r in http_rules), "webhooks must reach the HTTP port from anywhere"


def test_ha_nats_admits_only_the_gateway_and_its_own_pods():
    nats = nats_release()
    policy = policy_for(nats["labels"])
    assert policy["spec"]["podSelector"]["matchLabels"] == nats["labels"]
    for port in (nats["client_port"], nats["cluster_port"]):
        rules = admitted(policy, port)
        assert rules and all(r.get("from") for r in rules), f"NATS port {port} is open to every source"
        for rule in rules:
            for peer in rule["from"]:
                assert "ipBlock" not in peer and peer.get("podSelector", {}).get("matchLabels"), peer
    [rule] = admitted(policy, nats["client_port"])
    assert any(selects(peer["podSelector"], ha_labels()) for peer in rule["from"]), "the gateway cannot reach NATS"


def test_ha_rolls_and_drains_without_losing_capacity():
    [deployment] = of_kind("Deployment", HA)
    replicas = deployment["spec"]["replicas"]
    assert replicas >= 2
    strategy = deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert str(strategy["rollingUpdate"]["maxUnavailable"]) in ("0", "0%")
    assert str(strategy["rollingUpdate"]["maxSurge"]) not in ("0", "0%")
    [pdb] = of_kind("PodDisruptionBudget", HA)
    budget = pdb["spec"]
    assert ("minAvailable" in budget) != ("maxUnavailable" in budget)
    # At least one replica always serves, and a drain can still proceed.
    if "minAvailable" in budget:
        assert 1 <= budget["minAvailable"] <= replicas - 1
    else:
        assert 1 <= budget["maxUnavailable"] <= replicas - 1
    # Spread across nodes, so that losing one loses one replica.
    spread = pod_spec(HA).get("topologySpreadConstraints", [])
    anti = dig(pod_spec(HA), "affinity", "podAntiAffinity", default={})
    by_host = [t for t in spread if t["topologyKey"] == "kubernetes.io/hostname"] + [
        t.get("podAffinityTerm", t)
        for k in ("requiredDuringSchedulingIgnoredDuringExecution", "preferredDuringSchedulingIgnoredDuringExecution")
        for t in anti.get(k, [])
        if t.get("podAffinityTerm", t)["topologyKey"] == "kubernetes.io/hostname"
    ]
    assert by_host and all(selects(t["labelSelector"], ha_labels()) for t in by_host)


def test_ha_keeps_nothing_in_the_pod(gateway_flags, help_text):
    """--store=jetstream writes nothing locally: no volume but read-only
    Secrets, each where a file flag points, and a read-only root filesystem."""
    c, config = gateway_container(HA), ha_config(gateway_flags, help_text)
    assert config["store"] == "jetstream"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod_spec(HA)["securityContext"]["runAsNonRoot"] is True
    volumes = pod_spec(HA).get("volumes", [])
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    files = [config[f] for f in FILE_FLAGS if config[f]]
    for v in volumes:
        assert set(v) == {"name", "secret"}, f"volume {v['name']} is not a Secret"
        assert mounts[v["name"]].get("readOnly") is True, f"{v['name']} is mounted writable"
        path = mounts[v["name"]]["mountPath"].rstrip("/") + "/"
        assert any(f.startswith(path) for f in files), f"no flag reads Secret volume {v['name']}"
    for f in files:
        assert any(f.startswith(m["mountPath"].rstrip("/") + "/") for m in mounts.values()), (
            f"{f} is on no mounted volume"
        )
    assert set(mounts) <= {v["name"] for v in volumes}


def test_ha_event_stream_needs_a_token_over_tls(gateway_flags, help_text):
    """Subscribers are other pods: the stream is not open to whoever reaches
    its port, and tokens do not travel in plaintext."""
    config = ha_config(gateway_flags, help_text)
    assert config["subscriber_tokens_file"]
    assert config["grpc_tls_cert"] and config["grpc_tls_key"]
    assert config["grpc_allow_unauthenticated"] == "false"


def test_ha_readme_creates_every_secret_the_pods_read():
    created = {w[4] if w[3] in ("generic", "tls") else w[3]
               for w in ha_readme_commands() if w[:3] == ["kubectl", "create", "secret"]}
    for v in pod_spec(HA).get("volumes", []):
        assert v["secret"]["secretName"] in created, f"the README creates no Secret {v['secret']['secretName']}"
    [container] = [gateway_container(HA)]
    for e in container["env"]:
        if "valueFrom" in e:
            assert e["valueFrom"]["secretKeyRef"]["name"] in created


def test_ha_stream_replicas_match_the_nats_cluster(gateway_flags, help_text):
    config, values, nats = ha_config(gateway_flags, help_text), nats_values(), nats_release()
    cluster = values["config"]["cluster"]
    assert cluster["enabled"] is True
    assert int(config["nats_replicas"]) == 3 == cluster["replicas"]
    # Every server of the StatefulSet, by the name its headless Service gives.
    urls = [u.strip() for u in config["nats_url"].split(",")]
    expected = [
        f"nats://{nats['statefulset']}-{i}.{nats['headless']}:{nats['client_port']}" for i in range(cluster["replicas"])
    ]
    assert sorted(urls) == sorted(expected)


def test_ha_nats_stores_on_disk_and_syncs_every_write():
    js = nats_values()["config"]["jetstream"]
    assert js["enabled"] is True
    assert js["fileStore"]["enabled"] is True and js["fileStore"]["pvc"]["enabled"] is True
    assert not dig(js, "memoryStore", "enabled", default=False)
    merged = {**dig(nats_values(), "config", "merge", "jetstream", default={}), **js.get("merge", {})}
    # Else a PubAck means in the page caches of a quorum, not on its disks.
    assert str(merged.get("sync_interval", merged.get("sync"))).lower() == "always"
    # One server per node where the nodes allow: a node loses one server.
    spread = dig(nats_values(), "podTemplate", "topologySpreadConstraints", default={})
    assert "kubernetes.io/hostname" in spread


def test_ha_grace_period_exceeds_the_gateways_shutdown(gateway_flags, help_text):
    check_grace_period(HA, gateway_flags, help_text)


def test_ha_readme_installs_every_file():
    commands = ha_readme_commands()
    applied = [f for w in commands if w[:2] == ["kubectl", "apply"] for f in files_of(w)]
    assert sorted(applied) == sorted(str(p.relative_to(ROOT)) for p in manifest_paths(HA))
    # The NetworkPolicy is in place before the stream's port opens.
    assert applied.index("deploy/k8s/ha/networkpolicy.yaml") < applied.index("deploy/k8s/ha/deployment.yaml")
    nats_release()  # and the helm install names the values
    # The Secret the Deployment reads is the one the README creates.
    [ref] = [e["valueFrom"]["secretKeyRef"] for e in gateway_container(HA)["env"] if "valueFrom" in e]
    [create] = [w for w in commands if w[:3] == ["kubectl", "create", "secret"] and ref["name"] in w]
    assert ref["name"] in create and any(w.startswith(f"--from-literal={ref['key']}=") for w in create)
