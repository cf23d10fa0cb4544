"""HTTPS for webhooks, terminated by nginx in front of the gateway, with the
example configuration deploy/nginx/webhooks-tls.conf itself: a webhook over
HTTPS reaches a subscriber, the gateway's answers pass through as they are,
and clients that open connections and say nothing delay nobody else.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import time
import urllib.error
import urllib.request

import grpc
import pytest

from convocore.webhooks import Subscription
from convocore.webhooks.v1 import event_stream_service_pb2 as pb
from gatewaytest import ROOT, SAMPLES_DIR, free_port, make_tls, wait_for

CONF = ROOT / "deploy" / "nginx" / "webhooks-tls.conf"


def proxy_conf(tmp_path, port: int, gateway_http_port: int, tls) -> str:
    """The example with only the addresses, the paths and the process
    settings a test needs changed."""
    text = CONF.read_text()
    for old, new in [
        (r"listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
        (r"/etc/nginx/tls/tls\.crt", str(tls["tls.crt"])),
        (r"/etc/nginx/tls/tls\.key", str(tls["tls.key"])),
        (r"server 127\.0\.0\.1:8080;", f"server 127.0.0.1:{gateway_http_port};"),
        (r"pid /run/nginx-webhooks\.pid;", f"pid {tmp_path}/nginx.pid;\ndaemon off;"),
        (r"worker_processes auto;", "worker_processes 1;"),
    ]:
        text, n = re.subn(old, new, text)
        assert n == 1, f"{CONF} no longer holds {old!r}"
    temp = "".join(f"  {kind}_temp_path {tmp_path}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return text.replace("http {\n", "http {\n" + temp, 1)


def post(url: str, body: bytes, ca) -> tuple[int, bytes]:
    context = ssl.create_default_context(cafile=str(ca))
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (buildscripts/install-deps.sh)")
def test_webhooks_over_https_through_nginx_reach_subscribers(start_gateway, processes, tmp_path):
    gateway = start_gateway(["--store=memory"])
    tls = make_tls(tmp_path)
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(proxy_conf(tmp_path, port, gateway.http_port, tls))
    nginx = processes("nginx", ["nginx", "-c", str(conf), "-p", str(tmp_path), "-e", "stderr"])
    url = f"https://localhost:{port}/webhooks"

    def listening():
        if not nginx.alive():
            pytest.fail(f"nginx exited:\n{nginx.log()}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, 30, "nginx to listen")

    sample = (SAMPLES_DIR / "message_received.json").read_bytes()
    status, reply = post(url, sample, tls["ca.crt"])
    assert status == 200, reply
    ack = json.loads(reply)
    # The gateway's refusals pass through as they are.
    wrong = json.loads(sample)
    wrong["payload"]["workspaceSecret"] = "not-the-secret"
    status, reply = post(url, json.dumps(wrong).encode(), tls["ca.crt"])
    assert status == 401 and b"UNAUTHENTICATED" in reply

    # Clients that connect and never finish a handshake.
    silent = []
    try:
        for half_hello in (b"", b"\x16\x03\x01", b"", b"\x16\x03\x01\x00", b""):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(half_hello)
            silent.append(s)
        started = time.monotonic()
        status, _ = post(url, (SAMPLES_DIR / "webhook_test.json").read_bytes(), tls["ca.crt"])
        took = time.monotonic() - started
    finally:
        for s in silent:
            s.close()
    assert status == 200
    # Pistache's own TLS would hold it for its 10 s handshake timeout per
    # silent client; through nginx it does not wait for them at all.
    assert took < 5, f"a webhook waited {took:.1f}s behind silent TLS clients"

    with grpc.insecure_channel(gateway.grpc_target) as channel:
        subscription = Subscription(channel, pb.SubscribeRequest(after_sequence=0))
        events = []
        for event in subscription:
            events.append(event)
            if len(events) == 2:
                subscription.cancel()
    assert [e.sequence for e in events] == [ack["sequence"], ack["sequence"] + 1]
    assert events[0].type_raw == "message_received" and events[1].type_raw == "webhook_test"
