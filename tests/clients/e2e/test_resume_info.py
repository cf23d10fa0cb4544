"""End to end: the real gateway ends streams with a ResumeInfo detail that the
Python client reads (convocore.webhooks.resume_info) and resumes from.

- OUT_OF_RANGE: a gateway with --store=memory and a retention of two events,
  asked for events it no longer retains, raises OUT_OF_RANGE whose
  ResumeInfo says where the retained events start; resuming there (accepting
  the gap) gets them.
- UNAVAILABLE at shutdown: a subscription "from now" that has received no
  event yet resumes, after the restart, after the sequence its stream had
  started at, so it gets the events accepted while it was reconnecting.
"""

from __future__ import annotations

import json
import threading

import grpc
import pytest

from convocore.webhooks import Subscription, resume_info
from convocore.webhooks.v1 import event_stream_service_pb2 as pb
from convocore.webhooks.v1 import events_pb2
from gatewaytest import SAMPLES_DIR, http_post_json


def webhook_tests(first: int, count: int) -> list[bytes]:
    """`count` distinct webhook_test deliveries (createdAt first, first+1, ...),
    so that the gateway takes none for a duplicate."""
    doc = json.loads((SAMPLES_DIR / "webhook_test.json").read_bytes())
    out = []
    for i in range(count):
        doc["payload"]["createdAt"] = first + i
        out.append(json.dumps(doc).encode())
    return out


def post(gateway, bodies: list[bytes]) -> list[int]:
    """Posts each body; returns the sequences the gateway assigned, in order."""
    sequences = []
    for body in bodies:
        status, reply = http_post_json(gateway.http + "/webhooks", body)
        assert status == 200, f"POST: {status} {reply!r}"
        sequences.append(int(json.loads(reply)["sequence"]))
    return sequences


def needs(flags, *names):
    missing = [n for n in names if n not in flags]
    if missing:
        pytest.skip(f"this gateway has no --{', --'.join(missing)}")


class Collector:
    """Iterates a Subscription in a thread, recording the sequences of the
    webhook_test events it yields, until `count` of them; then cancels it."""

    def __init__(self, subscription: Subscription, count: int):
        self.subscription, self.count = subscription, count
        self.seen: list[int] = []
        self.raised: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for ev in self.subscription:
                if ev.event_type != events_pb2.EVENT_TYPE_WEBHOOK_TEST:
                    raise AssertionError(f"got an event of another type: {ev}")
                self.seen.append(ev.sequence)
                if len(self.seen) >= self.count:
                    self.subscription.cancel()
        except BaseException as e:  # noqa: BLE001 - reported by result()
            self.raised = e

    def result(self, timeout: float) -> list[int]:
        """The sequences yielded, once `count` were or `timeout` passed; the
        subscription is cancelled either way. Fails if it raised."""
        self._thread.join(timeout)
        self.subscription.cancel()
        self._thread.join(10)
        assert not self._thread.is_alive(), f"the subscription did not end; it yielded {self.seen}"
        assert self.raised is None, f"the subscription raised {self.raised!r} after {self.seen}"
        assert len(self.seen) == self.count, f"timed out after {timeout}s with {self.seen}"
        return self.seen


def test_out_of_range_carries_a_resume_info_the_client_reads(start_gateway, gateway_flags):
    needs(gateway_flags, "store", "retention_events")
    gateway = start_gateway(["--store=memory", "--retention_events=2"])
    sequences = post(gateway, webhook_tests(1718035200000, 5))

    with grpc.insecure_channel(gateway.grpc_target) as channel:
        request = pb.SubscribeRequest(
            event_types=[events_pb2.EVENT_TYPE_WEBHOOK_TEST], after_sequence=0
        )
        with pytest.raises(grpc.RpcError) as raised:
            for ev in Subscription(channel, request, initial_backoff=0.01):
                pytest.fail(f"got event {ev.sequence}, which is no longer retained")
        assert raised.value.code() == grpc.StatusCode.OUT_OF_RANGE, raised.value

        info = resume_info(raised.value)
        assert info is not None, f"no ResumeInfo in {raised.value.trailing_metadata()}"
        assert info.last_sent_sequence == 0  # Sent none: the start position.
        assert info.last_sequence == sequences[-1]
        # At least the two newest are retained, and the first is not.
        assert sequences[0] < info.oldest_available_sequence <= sequences[-2]

        # Accepting the gap: exactly the retained events.
        request.after_sequence = info.oldest_available_sequence - 1
        retained = [s for s in sequences if s >= info.oldest_available_sequence]
        assert Collector(Subscription(channel, request), len(retained)).result(30) == retained


def test_from_now_resumes_across_a_restart_after_the_resume_info(start_gateway, gateway_flags):
    needs(gateway_flags, "store", "heartbeat_interval")
    # Heartbeats tell the test that the stream is open; disk keeps the
    # sequences across the restart.
    args = ["--store=disk", "--heartbeat_interval=200ms"]
    gateway = start_gateway(args)
    [before] = post(gateway, webhook_tests(1718035200000, 1))

    live = threading.Event()
    broke: list[Exception] = []
    restarted_and_posted = threading.Event()

    def on_retry(error: Exception, delay: float) -> None:
        broke.append(error)
        if len(broke) == 1:
            # Hold the reconnection until events were accepted after the
            # restart: starting from now again would miss them.
            restarted_and_posted.wait(60)

    with grpc.insecure_channel(gateway.grpc_target) as channel:
        subscription = Subscription(
            channel,
            pb.SubscribeRequest(event_types=[events_pb2.EVENT_TYPE_WEBHOOK_TEST]),  # From now.
            initial_backoff=0.05,
            max_backoff=0.2,
            on_retry=on_retry,
            on_heartbeat=lambda hb: live.set(),
        )
        collector = Collector(subscription, 3)
        try:
            assert live.wait(30), "no heartbeat: the stream never opened"
            assert gateway.process.stop() == 0, f"the gateway did not exit cleanly:\n{gateway.process.log()}"
            restarted = start_gateway(
                args, http_port=gateway.http_port, grpc_port=gateway.grpc_port, name="gateway-restarted"
            )
            after = post(restarted, webhook_tests(1718035300000, 3))
            assert min(after) > before
        except BaseException:
            subscription.cancel()
            raise
        finally:
            restarted_and_posted.set()
        got = collector.result(60)

    assert got == after, f"got {got}, want the events accepted while reconnecting, {after}"
    info = resume_info(broke[0])
    assert broke[0].code() == grpc.StatusCode.UNAVAILABLE and info is not None, broke[0]
    assert info.last_sent_sequence == before  # Where "from now" had started.
    assert subscription.last_sequence == after[-1]
