"""Checks deploy/: the Kubernetes manifests are well-formed, and what they and
the Dockerfile name (flags, ports, probe paths, environment variables, data
directory, shutdown timeout) is what the real binary uses. The binary's side
is read from its --helpfull and by running it with the sidecar's
configuration, never restated here.
"""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest
import yaml

from gatewaytest import ROOT, free_port, gateway_env, http_get, wait_for

DEPLOY = ROOT / "deploy"
GATEWAY_SOURCES = [p for p in (ROOT / "gateway").rglob("*") if p.suffix in (".cc", ".h")]


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


def sidecar() -> dict:
    spec = pod_spec()
    [c] = [c for c in spec.get("initContainers", []) + spec["containers"] if "webhook-gateway" in c["image"]]
    return c


def flag_args(args: list[str]) -> dict[str, str]:
    """{name: value} of `--name=value` arguments; every argument must be one."""
    out = {}
    for a in args:
        m = re.fullmatch(r"--(\w+)=(.*)", a)
        assert m, f"argument {a!r} is not --flag=value"
        out[m.group(1)] = m.group(2)
    return out


def unquote(default: str) -> str:
    return default[1:-1] if default.startswith('"') else default


def effective(flags, given: dict[str, str], name: str) -> str:
    assert name in flags, f"the binary has no --{name}"
    return given.get(name, unquote(flags[name].default))


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


def test_sidecar_flags_ports_and_probes_are_the_binarys(gateway_flags):
    c = sidecar()
    given = flag_args(c.get("args", []))
    for name in given:
        assert name in gateway_flags, f"deployment.yaml passes --{name}, which the binary does not have"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["http"] == int(effective(gateway_flags, given, "http_port"))
    assert ports["grpc"] == int(effective(gateway_flags, given, "grpc_port"))
    probes = {k: c[k]["httpGet"] for k in ("livenessProbe", "readinessProbe", "startupProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    for probe in probes.values():
        assert probe["port"] in ports, f"probe on unknown port {probe['port']}"
    [service] = of_kind("Service")
    for p in service["spec"]["ports"]:
        assert p["targetPort"] in ports


def test_sidecar_secret_env_and_data_volume(gateway_flags):
    c, spec = sidecar(), pod_spec()
    sources = "".join(p.read_text(errors="replace") for p in GATEWAY_SOURCES)
    [secret] = of_kind("Secret")
    for env in c["env"]:
        read = env["name"] in sources
        assert read, f"the gateway's sources never read {env['name']}"
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] == secret["metadata"]["name"]
            assert ref["key"] in secret.get("stringData", {}) | secret.get("data", {})
    data_dir = effective(gateway_flags, flag_args(c["args"]), "data_dir")
    [mount] = [m for m in c["volumeMounts"] if m["mountPath"] == data_dir]
    [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    [pvc] = of_kind("PersistentVolumeClaim")
    assert volume["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]


def test_grace_period_exceeds_the_gateways_shutdown_timeout(gateway_flags):
    c = sidecar()
    [name] = [n for n in gateway_flags if "shutdown" in n and ("timeout" in n or "deadline" in n)]
    shutdown = seconds(effective(gateway_flags, flag_args(c["args"]), name))
    pre_stop = float(c["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod_spec()["terminationGracePeriodSeconds"] > shutdown + pre_stop


def test_sidecar_configuration_starts_the_binary_and_serves_the_probes(gateway_bin, processes, tmp_path):
    """Runs the binary with the container's args and env (ports and data
    directory moved to free ones) and probes it as the kubelet would."""
    c = sidecar()
    given = flag_args(c["args"])
    http_port = free_port()
    given.update(http_port=str(http_port), grpc_port=str(free_port()), data_dir=str(tmp_path / "data"))
    [secret] = of_kind("Secret")
    env = gateway_env()
    for e in c["env"]:
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        env[e["name"]] = secret["stringData"][ref["key"]] if ref else e["value"]
    gateway = processes("sidecar", [str(gateway_bin)] + [f"--{k}={v}" for k, v in given.items()], env)

    def probed(path):
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
        wait_for(probed(path), 60, f"{path} to answer 200")
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


def exec_form(rest: str) -> list[str]:
    return yaml.safe_load(rest)  # A JSON array is YAML.


def test_dockerfile_builds_with_the_ci_scripts_and_runs_as_configured(gateway_flags):
    build, runtime = dockerfile_stages()
    assert instr(build, "FROM")[0].startswith("debian:12") and instr(runtime, "FROM")[0] == "debian:12"
    run = " ".join(instr(build, "RUN"))
    assert "buildscripts/install-deps.sh" in run and "buildscripts/build.sh" in run
    # The same build as CI: no extra CMake arguments given to build.sh.
    assert re.search(r"buildscripts/build\.sh\s*(&&|$)", run)

    [user] = instr(runtime, "USER")
    uid = user.split(":")[0]
    assert uid not in ("0", "root")
    assert str(pod_spec()["securityContext"]["runAsUser"]) == uid

    [entrypoint] = instr(runtime, "ENTRYPOINT")
    assert any(exec_form(entrypoint)[0] == shlex.split(c)[-1] for c in instr(runtime, "COPY"))
    [cmd] = instr(runtime, "CMD")
    given = flag_args(exec_form(cmd))
    for name in given:
        assert name in gateway_flags, f"the Dockerfile passes --{name}, which the binary does not have"
    [volume] = instr(runtime, "VOLUME")
    assert volume == effective(gateway_flags, given, "data_dir")
    assert volume == next(m["mountPath"] for m in sidecar()["volumeMounts"] if m["name"] == "data")
    exposed = {int(p) for p in " ".join(instr(runtime, "EXPOSE")).split()}
    assert exposed == {int(effective(gateway_flags, given, f)) for f in ("http_port", "grpc_port")}


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
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {"build", "build-*", ".tools", ".git"} <= set(ignored)
