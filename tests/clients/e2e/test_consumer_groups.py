"""End to end: consumer groups of the real gateway, joined by both consume
examples (examples/go/consume, examples/python/consume.py) and by grpcurl.

- Two members, the Go example and the Python one, share a group's events:
  each accepted event is acked by exactly one of them, and both get some.
- A member that nacks one type, in a group with max_delivery_attempts=2,
  sends those events to the dead-letter list with its error; replaying them
  hands them to another member, which acks them.
- grpcurl feeds Consume from a pipe: a first request, then an ack once the
  event is printed; the gateway confirms the ack and the group's ack floor
  moves, as GetConsumerGroup and ListConsumerGroups (also over grpcurl) show.

Each example prints one JSON line per delivery: member, sequence, type,
attempt, outcome ("ack" or "nack").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import grpc
import pytest

from convocore.webhooks.v1 import event_stream_service_pb2 as pb
from convocore.webhooks.v1 import event_stream_service_pb2_grpc as pb_grpc
from gatewaytest import ROOT, wait_for
from test_examples import SERVICE, changed, post_all, samples

CONSUME_PY = ROOT / "examples" / "python" / "consume.py"


def consume_go(processes, name, target, *flags):
    return processes(name, [os.environ["CONSUME_GO_BIN"], "-target", target, "-member", name, *flags])


def consume_py(processes, name, target, *flags):
    return processes(name, [sys.executable, str(CONSUME_PY), "--target", target, "--member", name, *flags])


def deliveries(member) -> list[dict]:
    """The lines the example printed so far, each checked to be its own."""
    lines = [json.loads(line) for line in member.stdout_lines()]
    for line in lines:
        assert line["member"] == member.name, line
        assert line["outcome"] in ("ack", "nack"), line
    return lines


def rounds(n: int) -> list[tuple[str, bytes]]:
    """Every spec sample, n times, each round with new content."""
    return [(t, changed(b, r)) for r in range(n) for t, b in samples()]


def alive(*members):
    for m in members:
        if not m.alive():
            pytest.fail(f"{m.name} exited ({m.proc.returncode}):\n{m.log()}")


@pytest.fixture
def groups(start_gateway):
    """A function that starts a gateway with the args given and returns it with
    an EventStreamService stub on a channel closed at teardown."""
    channels = []

    def start(args):
        gateway = start_gateway(args)
        channel = grpc.insecure_channel(gateway.grpc_target)
        channels.append(channel)
        return gateway, pb_grpc.EventStreamServiceStub(channel)

    yield start
    for c in channels:
        c.close()


def group(stub, name) -> pb.ConsumerGroup:
    return stub.GetConsumerGroup(pb.GetConsumerGroupRequest(consumer_group=name), timeout=10).consumer_group


def wait_connected(stub, name, members, *processes_):
    def connected():
        alive(*processes_)
        try:
            return group(stub, name).connected_members == members
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:  # Not created by a first member yet.
                return False
            raise

    wait_for(connected, 30, f"{members} members connected to {name}", interval=0.1)


def wait_settled(stub, name, last_sequence, *processes_):
    """Waits until every event of the group up to last_sequence is settled and
    none is in flight."""

    def settled():
        alive(*processes_)
        g = group(stub, name)
        return g.ack_floor_sequence == last_sequence and g.in_flight_events == 0

    wait_for(settled, 60, f"{name}'s ack floor to reach {last_sequence}", interval=0.1)


def test_a_go_and_a_python_member_share_a_groups_events(groups, processes):
    gateway, stub = groups(["--store=disk"])
    # Accepted before the group exists: from_oldest must deliver them.
    accepted = post_all(gateway, rounds(1))
    # A small max_in_flight, so that the first member to join cannot take
    # the whole backlog before the other one joins.
    go = consume_go(processes, "go-member", gateway.grpc_target,
                    "-group", "share", "-from_oldest", "-max_in_flight", "4", "-max_backoff", "300ms")
    py = consume_py(processes, "py-member", gateway.grpc_target,
                    "--group", "share", "--from_oldest", "--max_in_flight", "4", "--max_backoff", "0.3")
    wait_connected(stub, "share", 2, go, py)
    accepted += post_all(gateway, [(t, changed(b, 1000 + r)) for r in range(4) for t, b in samples()])
    assert len(accepted) >= 60
    types = dict(accepted)

    def all_acked():
        alive(go, py)
        acked = {line["sequence"] for m in (go, py) for line in deliveries(m) if line["outcome"] == "ack"}
        return acked >= types.keys()

    wait_for(all_acked, 60, f"the members to ack {len(accepted)} events", interval=0.1)
    wait_settled(stub, "share", max(types), go, py)

    lines = {m.name: deliveries(m) for m in (go, py)}
    by_sequence: dict[int, list[dict]] = {}
    for member_lines in lines.values():
        for line in member_lines:
            by_sequence.setdefault(line["sequence"], []).append(line)
    assert by_sequence.keys() == types.keys(), "the members printed events that were not accepted"
    for seq, got in by_sequence.items():
        assert {line["type"] for line in got} == {types[seq]}, got
        assert [line["outcome"] for line in got] == ["ack"] * len(got), got
        # At least once: a redelivery may repeat an event, but only as a
        # later attempt.
        assert sorted(line["attempt"] for line in got) == list(range(1, len(got) + 1)), got
    # Redeliveries come after a nack (none here), an ack deadline (30s) or a
    # member's disconnect: none unless a stream broke.
    repeated = {seq: got for seq, got in by_sequence.items() if len(got) > 1}
    broke = [m.name for m in (go, py) if "stream broke" in m.log()]
    assert not repeated or broke, f"redelivered with no stream broken: {repeated}"
    for name, member_lines in lines.items():
        assert member_lines, f"{name} got none of the group's {len(accepted)} events: {lines}"
    for m in (go, py):
        assert m.stop() == 0, f"{m.name} did not stop cleanly:\n{m.log()}"


def test_a_nacking_members_events_are_dead_lettered_then_replayed_to_another(groups, processes):
    gateway, stub = groups(["--store=memory"])
    accepted = post_all(gateway, rounds(3))
    failing_type = "lead_captured"
    failed = [seq for seq, t in accepted if t == failing_type]
    assert len(failed) == 3
    failing = consume_py(processes, "py-failing", gateway.grpc_target, "--group", "dlq", "--from_oldest",
                         "--max_delivery_attempts", "2", "--fail_types", failing_type, "--max_backoff", "0.3")
    wait_connected(stub, "dlq", 1, failing)  # It created the group.

    def dead_letters():
        return list(stub.ListDeadLetters(pb.ListDeadLettersRequest(consumer_group="dlq"), timeout=10).dead_letters)

    def all_dead_lettered():
        alive(failing)
        return len(dead_letters()) == len(failed)

    wait_for(all_dead_lettered, 60, f"{len(failed)} dead letters", interval=0.1)
    wait_settled(stub, "dlq", accepted[-1][0], failing)
    g = group(stub, "dlq")
    assert g.max_delivery_attempts == 2 and g.dead_letter_count == len(failed), g
    for letter, seq in zip(dead_letters(), failed, strict=True):
        assert letter.sequence == seq and letter.delivery_attempts == 2, letter
        assert letter.last_error == f"member py-failing fails {failing_type} events (--fail_types)", letter
        assert letter.event.sequence == seq and letter.event.type_raw == failing_type, letter
    printed = deliveries(failing)
    for seq, t in accepted:
        outcomes = [(line["attempt"], line["outcome"]) for line in printed if line["sequence"] == seq]
        assert outcomes == ([(1, "nack"), (2, "nack")] if t == failing_type else [(1, "ack")]), (seq, t, outcomes)
    assert failing.stop() == 0, f"{failing.name} did not stop cleanly:\n{failing.log()}"
    wait_connected(stub, "dlq", 0)

    # Another member, that fails nothing, joins the group as it is (no
    # settings); replayed, the dead letters go to it with a fresh count.
    replay = consume_go(processes, "go-replay", gateway.grpc_target, "-group", "dlq", "-max_backoff", "300ms")
    wait_connected(stub, "dlq", 1, replay)
    replayed = stub.ReplayDeadLetters(pb.ReplayDeadLettersRequest(consumer_group="dlq"), timeout=10)
    assert list(replayed.sequences) == failed

    def replay_acked():
        alive(replay)
        return len(deliveries(replay)) >= len(failed)

    wait_for(replay_acked, 60, f"{replay.name} to handle the {len(failed)} replayed events", interval=0.1)
    wait_settled(stub, "dlq", accepted[-1][0], replay)
    assert [(line["sequence"], line["type"], line["attempt"], line["outcome"]) for line in deliveries(replay)] == [
        (seq, failing_type, 1, "ack") for seq in failed
    ]
    assert dead_letters() == [] and group(stub, "dlq").dead_letter_count == 0
    assert replay.stop() == 0, f"{replay.name} did not stop cleanly:\n{replay.log()}"


def grpcurl(target: str, method: str, request: dict) -> dict:
    """One unary call: grpcurl -plaintext -d '<request>' target service/method."""
    argv = [os.environ["GRPCURL_BIN"], "-plaintext", "-d", json.dumps(request), target, f"{SERVICE}/{method}"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"{' '.join(argv)}: {out.returncode}\n{out.stdout}{out.stderr}"
    return json.loads(out.stdout)


def field(message: dict, name: str, default=None):
    """A field of grpcurl's JSON output, by its proto name (what grpcurl
    prints) or its JSON name (what other tools print)."""
    camel = name.split("_")[0] + "".join(w.title() for w in name.split("_")[1:])
    return message.get(name, message.get(camel, default))


def printed_messages(process) -> list[dict]:
    """Every message grpcurl printed in full so far (pretty-printed JSON, one
    after the other)."""
    text, at, messages = process.out_path.read_text(), 0, []
    decoder = json.JSONDecoder()
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        try:
            message, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            return messages  # None left, or not all of the next one yet.
        messages.append(message)


def test_grpcurl_consumes_from_a_pipe_and_reads_the_group(start_gateway, processes):
    gateway = start_gateway(["--store=memory"])
    target = gateway.grpc_target
    accepted = post_all(gateway, samples())
    assert "rpc Consume ( stream .convocore.webhooks.v1.ConsumeRequest ) returns ( stream .convocore.webhooks.v1.ConsumeResponse );" in subprocess.run(
        [os.environ["GRPCURL_BIN"], "-plaintext", target, "describe", SERVICE],
        capture_output=True, text=True, timeout=30, check=True).stdout

    # -d @: the requests are JSON messages read from stdin, each sent as soon
    # as it is complete; the stream lasts until stdin closes.
    consume = processes(
        "grpcurl-consume",
        [os.environ["GRPCURL_BIN"], "-plaintext", "-d", "@", target, f"{SERVICE}/Consume"],
        stdin=subprocess.PIPE,
    )
    consume.write(json.dumps({"consumer_group": "cli", "from_oldest": True, "max_in_flight": 1}) + "\n")

    def events():
        alive(consume)
        return [e for m in printed_messages(consume) for e in field(m, "events", [])]

    first = wait_for(events, 30, "grpcurl to print the group's first event")[0]
    seq = int(first["event"]["sequence"])
    assert (seq, first["event"]["type_raw"]) == accepted[0]
    assert field(first, "delivery_attempt") == 1

    got = grpcurl(target, "GetConsumerGroup", {"consumer_group": "cli"})["consumer_group"]
    assert got["name"] == "cli" and int(field(got, "ack_floor_sequence", 0)) == 0, got
    assert int(field(got, "in_flight_events", 0)) == 1 and field(got, "connected_members") == 1, got

    consume.write(json.dumps({"ack_sequences": [str(seq)]}) + "\n")

    def confirmed():
        alive(consume)
        return [int(s) for m in printed_messages(consume) for s in field(m, "acknowledged_sequences", [])]

    assert wait_for(confirmed, 30, "grpcurl to print the ack's confirmation") == [seq]
    # max_in_flight 1: the next event comes once the first is acked.
    wait_for(lambda: len(events()) >= 2, 30, "grpcurl to print the second event")
    assert [int(e["event"]["sequence"]) for e in events()] == [s for s, _ in accepted[:2]]

    got = grpcurl(target, "GetConsumerGroup", {"consumer_group": "cli"})["consumer_group"]
    assert int(field(got, "ack_floor_sequence", 0)) == seq, got
    assert int(field(got, "last_sequence")) == accepted[-1][0], got

    created = grpcurl(target, "CreateConsumerGroup",
                      {"consumer_group": {"name": "cli-other", "max_delivery_attempts": 3}, "after_sequence": "0"})
    assert field(created["consumer_group"], "max_delivery_attempts") == 3, created
    listed = grpcurl(target, "ListConsumerGroups", {})
    assert [g["name"] for g in field(listed, "consumer_groups")] == ["cli", "cli-other"], listed
    grpcurl(target, "DeleteConsumerGroup", {"consumer_group": "cli-other"})
    assert [g["name"] for g in field(grpcurl(target, "ListConsumerGroups", {}), "consumer_groups")] == ["cli"]

    # Closing stdin half-closes the stream, which the gateway then ends: the
    # unacked second event goes back to the group.
    consume.close_stdin()
    assert consume.proc.wait(timeout=30) == 0, consume.log()
    def left():
        got = grpcurl(target, "GetConsumerGroup", {"consumer_group": "cli"})["consumer_group"]
        return field(got, "connected_members", 0) == 0 and got

    assert int(field(wait_for(left, 30, "the member to leave the group"), "ack_floor_sequence", 0)) == seq
