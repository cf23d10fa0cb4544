"""Helpers shared by the tests of clients/, examples/ and deploy/: free
ports, polling with a deadline, small HTTP calls, child processes, and the
gateway's flags as its --helpfull prints them. The fixtures built on them are
in conftest.py.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES_DIR = ROOT / "tests" / "testdata" / "samples"
# The spec's samples carry this secret.
SAMPLE_SECRET = "your_workspace_secret"


def free_port() -> int:
    """A port the OS just handed out, free unless another process races us."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):
    """Polls condition() until it returns a truthy value; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def http_get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def http_post_json(url: str, body: bytes, timeout: float = 10) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@dataclass(frozen=True)
class Flag:
    name: str
    help: str
    default: str  # As --helpfull prints it (strings in quotes).


def parse_helpfull(text: str) -> dict[str, Flag]:
    """Parses Abseil's --helpfull: `--name (help); default: value;`."""
    flags = {}
    for m in re.finditer(r"--(\w+) \((.*?)\);\s+default: (.*?);", text, re.DOTALL):
        flags[m.group(1)] = Flag(m.group(1), " ".join(m.group(2).split()), m.group(3))
    return flags


class Process:
    """A child process in its own process group, output to a log file; its
    stdin is empty unless stdin=subprocess.PIPE (then write() feeds it)."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict | None = None,
                 stdin=subprocess.DEVNULL):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.out_path = log_dir / f"{name}.out"
        self._log = open(self.log_path, "ab")
        self._out = open(self.out_path, "ab")
        self.proc = subprocess.Popen(
            argv,
            stdout=self._out,
            stderr=self._log,
            env=env,
            stdin=stdin,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def write(self, text: str) -> None:
        """Writes text to the process's stdin (started with stdin=PIPE)."""
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:  # It exited with input unread.
                pass

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stdout_lines(self) -> list[str]:
        text = self.out_path.read_text(errors="replace")
        return text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]

    def stop(self, sig=signal.SIGTERM, timeout: float = 30) -> int:
        """Signals the process and waits for it; SIGKILLs it after timeout."""
        if self.alive():
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise
        finally:
            self.close_stdin()
            self._log.close()
            self._out.close()
            # For the test command's check that no credential reaches a
            # gateway's log (buildscripts/test.sh).
            keep = os.environ.get("CONVOCORE_TEST_LOG_DIR")
            if keep and self.name.startswith("gateway"):
                target = Path(keep) / f"pytest-{self.name}-{self.proc.pid}.log"
                target.write_bytes(self.log_path.read_bytes())


def gateway_env(**extra) -> dict:
    """This process's environment without any gateway setting, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVOCORE_", "GATEWAY_"))}
    env.update(extra)
    return env


@dataclass
class Gateway:
    """A running webhook-gateway on free ports."""

    process: Process
    http_port: int
    grpc_port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def wait_ready(self, timeout: float = 60):
        def ready():
            if not self.process.alive():
                pytest.fail(f"the gateway exited ({self.process.proc.returncode}):\n{self.process.log()}")
            try:
                return http_get(self.http + "/readyz", timeout=2)[0] == 200
            except OSError:
                return False

        wait_for(ready, timeout, "the gateway's /readyz")


def make_tls(tmp_path: Path) -> dict[str, Path]:
    """A CA and a server certificate for localhost and 127.0.0.1 it signs,
    made by the openssl command."""
    files = {name: tmp_path / name for name in ("ca.crt", "ca.key", "tls.crt", "tls.key", "tls.csr", "san.ext")}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", files["ca.key"], "-out", files["ca.crt"])
    openssl("req", *ec, "-subj", "/CN=localhost", "-keyout", files["tls.key"], "-out", files["tls.csr"])
    files["san.ext"].write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-days", "2", "-in", files["tls.csr"], "-CA", files["ca.crt"],
            "-CAkey", files["ca.key"], "-CAcreateserial", "-extfile", files["san.ext"], "-out", files["tls.crt"])
    return files
