"""End to end: both examples (examples/go, examples/python) and grpcurl
against the real gateway binary.

The examples subscribe to disjoint sets of types (webhook_test in both,
organisation_* in neither); every spec sample is posted; each example must
print exactly the events of its types. Then the gateway restarts on the same
ports and data directory, more webhooks are posted (some before the examples
reconnect), and each example must go on with no gap and no repeat.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gatewaytest import (
    ROOT,
    SAMPLES_DIR,
    http_post_json,
    make_tls,
    wait_for,
)

GO_TYPES = ["message_received", "lead_captured", "agent_created", "agent_updated", "agent_deleted", "webhook_test"]
PY_TYPES = [
    "chat_delegated",
    "bug_reported",
    "form_submitted",
    "client_created",
    "client_updated",
    "client_deleted",
    "webhook_test",
]
SERVICE = "convocore.webhooks.v1.EventStreamService"


def samples() -> list[tuple[str, bytes]]:
    """(type, body) of every spec sample, in file name order."""
    out = []
    for path in sorted(SAMPLES_DIR.glob("*.json")):
        body = path.read_bytes()
        out.append((json.loads(body)["type"], body))
    assert len(out) >= 15, f"expected a sample per event type in {SAMPLES_DIR}"
    return out


def changed(body: bytes, round_: int) -> bytes:
    """The same webhook one millisecond later per round: new content, so the
    gateway does not take it for a duplicate of the original."""
    doc = json.loads(body)
    doc["payload"]["createdAt"] += round_
    return json.dumps(doc).encode()


def post_all(gateway, webhooks) -> list[tuple[int, str]]:
    """Posts each (type, body); returns (sequence, type) of each, in order."""
    accepted = []
    for type_, body in webhooks:
        status, reply = http_post_json(gateway.http + "/webhooks", body)
        assert status == 200, f"POST {type_}: {status} {reply!r}"
        accepted.append((int(json.loads(reply)["sequence"]), type_))
    return accepted


def received(client) -> list[tuple[int, str]]:
    """(sequence, type) of each event the example printed so far (the
    protobuf JSON mapping: type_raw is "typeRaw", event_type "eventType")."""
    events = []
    for line in client.stdout_lines():
        ev = json.loads(line)
        assert ev["eventType"] == "EVENT_TYPE_" + ev["typeRaw"].upper(), line
        events.append((int(ev["sequence"]), ev["typeRaw"]))
    return events


def expect_exactly(clients, accepted):
    """Waits until each client printed exactly the accepted events of its types."""
    for client, types in clients:
        want = [(seq, t) for seq, t in accepted if t in types]

        def caught_up():
            if not client.alive():
                pytest.fail(f"{client.name} exited:\n{client.log()}")
            return len(received(client)) >= len(want)

        wait_for(caught_up, 60, f"{client.name} to print {len(want)} events")
        assert received(client) == want, f"{client.name} printed other events than {types}:\n{client.log()}"


def durable_store(flags) -> bool:
    return "store" in flags and "disk" in flags["store"].help + flags["store"].default


def test_examples_get_their_types_and_resume_across_a_restart(start_gateway, processes, gateway_flags):
    durable = durable_store(gateway_flags)
    args = ["--store=disk"] if durable else []
    gateway = start_gateway(args)
    go = processes(
        "subscribe-go",
        [os.environ["SUBSCRIBE_GO_BIN"], "-target", gateway.grpc_target, "-types", ",".join(GO_TYPES),
         "-after_sequence", "0", "-max_backoff", "300ms"],
    )
    py = processes(
        "subscribe-py",
        [sys.executable, str(ROOT / "examples" / "python" / "subscribe.py"), "--target", gateway.grpc_target,
         "--types", ",".join(PY_TYPES), "--after_sequence", "0", "--max_backoff", "0.3"],
    )
    clients = [(go, set(GO_TYPES)), (py, set(PY_TYPES))]

    accepted = post_all(gateway, samples())
    assert {t for _, t in accepted} >= set(GO_TYPES) | set(PY_TYPES)
    expect_exactly(clients, accepted)

    if not durable:
        pytest.skip("restart part not run: this gateway has no --store=disk, so its history does not survive")
    assert gateway.process.stop() == 0, f"the gateway did not exit cleanly:\n{gateway.process.log()}"
    restarted = start_gateway(
        args, http_port=gateway.http_port, grpc_port=gateway.grpc_port, name="gateway-restarted"
    )
    # Posted right away, mostly before the examples' backoff ends: they must
    # come from the durable log, after the last sequence each example saw.
    more = post_all(restarted, [(t, changed(b, 1)) for t, b in samples()])
    assert min(s for s, _ in more) > max(s for s, _ in accepted), "sequences did not continue across the restart"
    expect_exactly(clients, accepted + more)
    for client, _ in clients:
        assert "resubscribing" in client.log(), f"{client.name} never saw the restart:\n{client.log()}"


def grpcurl(*args: str, timeout: float = 30) -> str:
    out = subprocess.run(
        [os.environ["GRPCURL_BIN"], "-plaintext", *args], capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, f"grpcurl {' '.join(args)}: {out.returncode}\n{out.stdout}{out.stderr}"
    return out.stdout


def test_grpcurl_lists_the_service_by_reflection_and_subscribes(start_gateway, processes):
    gateway = start_gateway()
    target = gateway.grpc_target

    services = grpcurl(target, "list").split()
    assert SERVICE in services and "grpc.health.v1.Health" in services
    assert "rpc Subscribe ( .convocore.webhooks.v1.SubscribeRequest ) returns ( stream .convocore.webhooks.v1.SubscribeResponse );" in grpcurl(target, "describe", SERVICE)

    wanted = ["webhook_test", "message_received", "form_submitted"]
    bodies = {t: b for t, b in samples() if t in wanted}
    accepted = post_all(gateway, [(t, bodies[t]) for t in wanted])
    request = json.dumps(
        {"eventTypes": ["EVENT_TYPE_" + t.upper() for t in wanted], "afterSequence": "0"}
    )
    sub = processes(
        "grpcurl-subscribe",
        [os.environ["GRPCURL_BIN"], "-plaintext", "-d", request, target, f"{SERVICE}/Subscribe"],
    )

    def events_printed():
        """The events of every response grpcurl printed in full, once there
        are as many as were accepted."""
        text, at, events = sub.out_path.read_text(), 0, []
        decoder = json.JSONDecoder()
        while True:
            while at < len(text) and text[at].isspace():
                at += 1
            try:
                message, at = decoder.raw_decode(text, at)
            except json.JSONDecodeError:
                break  # None left, or not all of the next one yet.
            events += message.get("events", [])  # None in a heartbeat.
        return events if len(events) >= len(accepted) else None

    events = wait_for(events_printed, 30, "grpcurl to print the events")
    assert [(int(e["sequence"]), e["type_raw"]) for e in events] == accepted
    # grpcurl prints the proto field names (webhook_test, type_raw), except
    # where the field sets a json_name: then the sender's key (from,
    # createdAt, formData).
    test, message, form = events
    assert test["event_type"] == "EVENT_TYPE_WEBHOOK_TEST"
    assert test["webhook_test"]["message"]
    sample = {t: json.loads(b)["payload"] for t, b in bodies.items()}
    assert test["webhook_test"]["createdAt"] == str(sample["webhook_test"]["createdAt"])
    assert message["message_received"]["from"] == sample["message_received"]["from"]
    # formData is JSON text, holding the object as sent.
    form_data = form["form_submitted"]["formData"]
    assert isinstance(form_data, str) and json.loads(form_data) == sample["form_submitted"]["formData"]


def test_examples_and_grpcurl_subscribe_with_a_token_over_tls(start_gateway, processes, tmp_path):
    tls = make_tls(tmp_path)
    go_token, py_token = "go-token-3e91b0c2", "py-token-77d4a5f1"
    tokens = {"tokens": [
        {"name": "go", "sha256": hashlib.sha256(go_token.encode()).hexdigest(), "event_types": ["message_received"]},
        {"name": "py", "sha256": hashlib.sha256(py_token.encode()).hexdigest(), "event_types": ["*"]},
    ]}
    tokens_file = tmp_path / "tokens.json"
    tokens_file.write_text(json.dumps(tokens))
    gateway = start_gateway([f"--grpc_tls_cert={tls['tls.crt']}", f"--grpc_tls_key={tls['tls.key']}",
                             f"--subscriber_tokens_file={tokens_file}", "--store=memory"])
    # No types asked for: the Go example gets what its token may read.
    go = processes(
        "subscribe-go-tls",
        [os.environ["SUBSCRIBE_GO_BIN"], "-target", gateway.grpc_target, "-ca", str(tls["ca.crt"]),
         "-after_sequence", "0"],
        env={**os.environ, "GATEWAY_TOKEN": go_token},
    )
    py = processes(
        "subscribe-py-tls",
        [sys.executable, str(ROOT / "examples" / "python" / "subscribe.py"), "--target", gateway.grpc_target,
         "--ca", str(tls["ca.crt"]), "--token", py_token, "--types", "lead_captured,webhook_test",
         "--after_sequence", "0"],
    )
    accepted = post_all(gateway, samples())
    expect_exactly([(go, {"message_received"}), (py, {"lead_captured", "webhook_test"})], accepted)

    tls_args = ["-cacert", str(tls["ca.crt"])]
    protos = ["-import-path", str(ROOT / "protos"), "-proto", "convocore/webhooks/v1/event_stream_service.proto"]
    refused = subprocess.run([os.environ["GRPCURL_BIN"], *tls_args, *protos, "-d", "{}", gateway.grpc_target,
                              f"{SERVICE}/Subscribe"], capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "Unauthenticated" in refused.stdout + refused.stderr
    # With tokens there is no reflection: grpcurl reads the contract's files.
    listed = subprocess.run([os.environ["GRPCURL_BIN"], *tls_args, gateway.grpc_target, "list"],
                            capture_output=True, text=True, timeout=30)
    assert listed.returncode != 0 and SERVICE not in listed.stdout
    with_token = processes(
        "grpcurl-tls",
        [os.environ["GRPCURL_BIN"], *tls_args, *protos, "-H", f"authorization: Bearer {py_token}",
         "-d", '{"afterSequence": "0"}', gateway.grpc_target, f"{SERVICE}/Subscribe"],
    )
    wait_for(lambda: '"sequence"' in with_token.out_path.read_text(), 30, "grpcurl to print an event")
    plaintext = subprocess.run([os.environ["GRPCURL_BIN"], "-plaintext", *protos,
                                "-H", f"authorization: Bearer {py_token}",
                                "-d", "{}", gateway.grpc_target, f"{SERVICE}/Subscribe"],
                               capture_output=True, text=True, timeout=30)
    assert plaintext.returncode != 0
    for process in (gateway.process, go, py):
        assert go_token not in process.log() and py_token not in process.log()
