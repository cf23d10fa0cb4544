"""Checks deploy/: the Kubernetes manifests are well-formed, and what they and
the Dockerfile name (flags, their environment variables, ports, probe paths,
the data directory, the shutdown timeout) is what the real binary uses. The
binary's side is read from its --helpfull and by running it with the
sidecar's configuration, never restated here.
"""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest
import yaml

from gatewaytest import ROOT, free_port, gateway_env, http_get, wait_for

DEPLOY = ROOT / "deploy"


def manifests() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def of_kind(kind: str) -> list[dict]:
    return [d for d in manifests() if d["kind"] == kind]


def pod_spec() -> dict:
    [deployment] = of_kind("Deployment")
    return deployment["spec"]["template"]["spec"]


def containers() -> list[dict]:
    spec = pod_spec()
    return spec.get("initContainers", []) + spec["containers"]


def sidecar() -> dict:
    [c] = [c for c in containers() if "webhook-gateway" in c["image"]]
    return c


def secret_value(ref: dict) -> str:
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


def sidecar_config(flags, help_text) -> Config:
    c = sidecar()
    return Config(flags, help_text, env_values(c.get("env", [])), c.get("args", []))


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


def test_sidecar_names_only_the_binarys_flags_and_variables(gateway_flags, help_text):
    config = sidecar_config(gateway_flags, help_text)
    for name in config.args:
        assert name in gateway_flags, f"deployment.yaml passes --{name}, which the binary does not have"
    for variable in config.env:
        flag = config.flag_of(variable)
        if flag is None:
            assert variable in help_text, f"the binary's help never mentions {variable}"
        else:
            assert flag in gateway_flags, f"{variable} names no flag of the binary"
    assert "CONVOCORE_WORKSPACE_SECRET" in config.env


def test_sidecar_ports_and_probes_are_the_binarys(gateway_flags, help_text):
    c, config = sidecar(), sidecar_config(gateway_flags, help_text)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["http"] == int(config["http_port"])
    probes = {k: c[k]["httpGet"] for k in ("livenessProbe", "readinessProbe", "startupProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    for probe in probes.values():
        assert probe["port"] in ports, f"probe on unknown port {probe['port']}"
        assert probe["path"] in help_text, f"the binary's help never mentions {probe['path']}"
    [service] = of_kind("Service")
    for p in service["spec"]["ports"]:
        assert p["targetPort"] in ports
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


def test_grace_period_exceeds_the_gateways_shutdown(gateway_flags, help_text):
    c, config = sidecar(), sidecar_config(gateway_flags, help_text)
    pre_stop = float(c["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod_spec()["terminationGracePeriodSeconds"] > seconds(config["shutdown_timeout"]) + pre_stop


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
