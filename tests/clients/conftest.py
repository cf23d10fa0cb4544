"""Fixtures shared by the tests of clients/, examples/ and deploy/: the real
gateway binary and its flags, and child processes (the gateway, the examples,
grpcurl) that are killed at teardown whatever happens.

buildscripts/test-clients.sh sets WEBHOOK_GATEWAY_BIN (the built webhook-gateway),
SUBSCRIBE_GO_BIN and CONSUME_GO_BIN (the built Go examples) and GRPCURL_BIN.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from gatewaytest import (
    ROOT,
    SAMPLE_SECRET,
    Flag,
    Gateway,
    Process,
    free_port,
    gateway_env,
    parse_helpfull,
)


@pytest.fixture
def processes(tmp_path):
    """Starts processes; every one still running at teardown is killed."""
    started: list[Process] = []

    def start(name, argv, env=None, stdin=subprocess.DEVNULL) -> Process:
        p = Process(name, argv, tmp_path, env, stdin)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.alive():
            try:
                p.stop(signal.SIGKILL, timeout=10)
            except Exception:  # noqa: BLE001 - teardown must reach every process
                pass


def _gateway_target_defined() -> bool:
    return any(
        re.search(r"add_executable\(\s*webhook-gateway\b", f.read_text(errors="replace"))
        for f in (ROOT / "gateway").rglob("CMakeLists.txt")
    )


@pytest.fixture(scope="session")
def gateway_bin() -> Path:
    path = Path(os.environ.get("WEBHOOK_GATEWAY_BIN", ROOT / "build" / "gateway" / "webhook-gateway"))
    if not path.exists():
        if not _gateway_target_defined():
            pytest.skip("the source tree defines no webhook-gateway binary yet")
        pytest.fail(f"{path} is missing: build it with buildscripts/build.sh (or set WEBHOOK_GATEWAY_BIN)")
    return path


@pytest.fixture(scope="session")
def gateway_flags(gateway_bin) -> dict[str, Flag]:
    """The binary's flags, as its --helpfull reports them."""
    out = subprocess.run(
        [str(gateway_bin), "--helpfull"], capture_output=True, text=True, timeout=30
    )
    flags = parse_helpfull(out.stdout + out.stderr)
    assert flags, f"no flags in {gateway_bin} --helpfull:\n{out.stdout}{out.stderr}"
    return flags


@pytest.fixture
def start_gateway(gateway_bin, gateway_flags, processes, tmp_path):
    """start_gateway(args, env=..., http_port=..., grpc_port=...) -> ready Gateway.

    Free ports unless given; the data directory is the test's own unless
    args name one, so that a restart with the same args finds its history.
    """

    def start(args=(), env=None, http_port=None, grpc_port=None, name="gateway") -> Gateway:
        http_port = http_port or free_port()
        grpc_port = grpc_port or free_port()
        argv = [str(gateway_bin), *args, f"--http_port={http_port}", f"--grpc_port={grpc_port}"]
        if "data_dir" in gateway_flags and not any(a.startswith("--data_dir") for a in args):
            argv.append(f"--data_dir={tmp_path / 'data'}")
        if env is None:
            env = gateway_env(CONVOCORE_WORKSPACE_SECRET=SAMPLE_SECRET)
        g = Gateway(processes(name, argv, env), http_port, grpc_port)
        g.wait_ready()
        return g

    return start
