"""Tests of convocore.webhooks.Consumer against a scripted gateway.

The fake gateway is a real gRPC server on a free loopback port whose Consume
plays one scripted session per call and records every request of each call.
"""

from __future__ import annotations

import queue
import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import status_pb2

import convocore.webhooks.v1.events_pb2 as events_pb2
from convocore.webhooks import Consumer, StreamEnded, resume_info
from convocore.webhooks.consume import _CLOSED, MAX_NACK_ERROR_BYTES, _batch, nack_reason
from convocore.webhooks.v1 import event_stream_service_pb2 as pb
from convocore.webhooks.v1 import event_stream_service_pb2_grpc as pb_grpc


def deliveries(*seqs, attempt=1):
    """One response carrying the events `seqs`, each at `attempt`."""
    return pb.ConsumeResponse(
        events=[
            pb.ConsumedEvent(
                event=events_pb2.Event(
                    sequence=s,
                    event_type=events_pb2.EVENT_TYPE_MESSAGE_RECEIVED,
                    type_raw="message_received",
                ),
                delivery_attempt=attempt,
            )
            for s in seqs
        ]
    )


@dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple


def end(context, code, details, resume=None):
    """Ends a session with `code` (None: OK), with `resume` (a ResumeInfo) as
    the gateway attaches it."""
    if code is None:
        return
    if resume is None:
        context.abort(code, details)
    status = status_pb2.Status(code=code.value[0], message=details)
    status.details.add().Pack(resume)
    trailer = (("grpc-status-details-bin", status.SerializeToString()),)
    context.abort_with_status(_Status(code, details, trailer))


class Member:
    """The fake gateway's side of one Consume call."""

    def __init__(self, request_iterator, context):
        self._requests = request_iterator
        self.context = context
        self.requests = []
        self.token = dict(context.invocation_metadata()).get("authorization")

    def recv(self):
        request = next(self._requests)
        copy = pb.ConsumeRequest()
        copy.CopyFrom(request)
        self.requests.append(copy)
        return request

    def settled(self, n):
        """Receives until `n` events were acked or nacked in all."""
        acks, nacks = [], []
        while len(acks) + len(nacks) < n:
            request = self.recv()
            acks += request.ack_sequences
            nacks += request.nacks
        return acks, nacks


def delivers_all(*responses, code=grpc.StatusCode.UNAVAILABLE, details="gateway restarting", resume=None):
    """A session that sends `responses`, waits until the member settled each
    of their events, confirms the acks, then ends with `code`."""

    def session(member):
        yield from responses
        acks, _ = member.settled(sum(len(r.events) for r in responses))
        if acks:
            yield pb.ConsumeResponse(acknowledged_sequences=acks)
        end(member.context, code, details, resume)

    return session


def deleted(*responses):
    return delivers_all(
        *responses, code=grpc.StatusCode.NOT_FOUND, details='consumer group "crm-sync" was deleted'
    )


class FakeGateway(pb_grpc.EventStreamServiceServicer):
    def __init__(self, sessions):
        self._sessions = list(sessions)
        self._lock = threading.Lock()
        self.members = []

    def Consume(self, request_iterator, context):
        member = Member(request_iterator, context)
        with self._lock:
            i = len(self.members)
            self.members.append(member)
        member.recv()
        if i >= len(self._sessions):
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "fake gateway: script exhausted")
        yield from self._sessions[i](member)


@pytest.fixture
def serve():
    """Starts a FakeGateway on a free port; returns (gateway, channel)."""
    started = []

    def start(*sessions):
        gateway = FakeGateway(sessions)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_EventStreamServiceServicer_to_server(gateway, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        started.append((server, channel))
        return gateway, channel

    yield start
    for server, channel in started:
        channel.close()
        server.stop(grace=None)


def join_request():
    return pb.ConsumeRequest(
        consumer_group="crm-sync",
        event_types=[events_pb2.EVENT_TYPE_MESSAGE_RECEIVED],
        from_oldest=True,
        ack_deadline=duration_pb2.Duration(seconds=5),
        max_delivery_attempts=3,
        max_in_flight=10,
    )


class Recorder:
    """Records what the Consumer hands over, durable acks and retry delays."""

    def __init__(self, fail=None):
        self._fail = fail
        self._lock = threading.Lock()
        self.seen = []
        self.acknowledged = []
        self.delays = []

    def kwargs(self, **kwargs):
        kwargs.setdefault("initial_backoff", 0.001)
        kwargs.setdefault("max_backoff", 0.003)
        kwargs.setdefault("on_retry", lambda error, delay: self.delays.append(delay))
        kwargs.setdefault("on_acknowledged", self.acknowledged.extend)
        return kwargs

    def handle(self, consumed):
        with self._lock:
            self.seen.append((consumed.event.sequence, consumed.delivery_attempt))
        if self._fail is not None:
            self._fail(consumed.event.sequence)


def check_joined_only(member, want):
    """The call's first request is `want`; every later one carries only acks
    and nacks."""
    assert member.requests and member.requests[0] == want
    for request in member.requests[1:]:
        assert request == pb.ConsumeRequest(ack_sequences=request.ack_sequences, nacks=request.nacks)
        assert request.ack_sequences or request.nacks


def test_acks_each_handled_event_and_reports_the_durable_acks(serve):
    gateway, channel = serve(
        deleted(
            deliveries(1, 2),
            pb.ConsumeResponse(heartbeat=pb.Heartbeat(last_sequence=2)),
            deliveries(3, attempt=2),
        )
    )
    recorder = Recorder()
    heartbeats = []
    consumer = Consumer(
        channel,
        join_request(),
        recorder.handle,
        **recorder.kwargs(on_heartbeat=lambda hb: heartbeats.append(hb.last_sequence)),
    )
    with pytest.raises(grpc.RpcError) as raised:
        consumer.run()

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert recorder.seen == [(1, 1), (2, 1), (3, 2)]
    assert len(gateway.members) == 1
    member = gateway.members[0]
    check_joined_only(member, join_request())
    # One at a time (concurrency 1), so acks go out in delivery order.
    assert [s for r in member.requests[1:] for s in r.ack_sequences] == [1, 2, 3]
    assert not any(r.nacks for r in member.requests)
    assert recorder.acknowledged == [1, 2, 3]
    assert heartbeats == [2]


def test_nacks_with_the_exceptions_text(serve):
    def fail(seq):
        if seq == 2:
            raise RuntimeError("CRM answered 503")
        if seq == 3:
            raise ValueError("é" * 600)  # 1200 bytes; 1024 is inside a character.
        if seq == 4:
            raise KeyError  # No text: the type says what happened.

    gateway, channel = serve(deleted(deliveries(1, 2, 3, 4)))
    recorder = Recorder(fail)
    with pytest.raises(grpc.RpcError):
        Consumer(channel, join_request(), recorder.handle, **recorder.kwargs()).run()

    member = gateway.members[0]
    check_joined_only(member, join_request())
    assert [s for r in member.requests[1:] for s in r.ack_sequences] == [1]
    nacks = [(n.sequence, n.error) for r in member.requests[1:] for n in r.nacks]
    assert nacks == [(2, "CRM answered 503"), (3, "é" * 512), (4, "KeyError")]


def test_nack_reason_is_valid_utf8_within_the_limit():
    assert nack_reason(ValueError("x" * 5000)) == "x" * MAX_NACK_ERROR_BYTES
    assert nack_reason(ValueError("a\ud800b")) == "a?b"  # A lone surrogate.
    assert nack_reason(RuntimeError()) == "RuntimeError"


def test_joins_again_after_a_break_with_the_same_first_request(serve):
    gateway, channel = serve(
        delivers_all(deliveries(1)),
        delivers_all(deliveries(2), code=None),  # A stream that just ends is a break too.
        delivers_all(code=grpc.StatusCode.RESOURCE_EXHAUSTED, details="too many members"),
        deleted(deliveries(3)),
    )
    recorder = Recorder()
    errors = []
    kwargs = recorder.kwargs(initial_backoff=0.001, max_backoff=0.004)
    record_delay = kwargs["on_retry"]
    kwargs["on_retry"] = lambda error, delay: (errors.append(error), record_delay(error, delay))
    with pytest.raises(grpc.RpcError) as raised:
        Consumer(channel, join_request(), recorder.handle, token="s3cret", **kwargs).run()

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert [s for s, _ in recorder.seen] == [1, 2, 3]
    assert len(gateway.members) == 4
    for member in gateway.members:
        check_joined_only(member, join_request())
        assert member.token == "Bearer s3cret"
    assert isinstance(errors[1], StreamEnded)
    # Reset after each stream that delivered; the third delivered nothing.
    nominal = [0.001, 0.001, 0.002]
    assert len(recorder.delays) == len(nominal)
    for delay, n in zip(recorder.delays, nominal):
        assert n / 2 <= delay <= n


def test_drops_the_outcome_of_an_event_whose_stream_broke(serve):
    handling, broke = threading.Event(), threading.Event()

    def breaks(member):
        yield deliveries(5)
        handling.wait()
        broke.set()
        end(member.context, grpc.StatusCode.UNAVAILABLE, "gateway restarting")

    # The gateway redelivers what the disconnected member held.
    gateway, channel = serve(breaks, deleted(deliveries(5, attempt=2)))

    def handle(consumed):
        recorder.handle(consumed)
        if consumed.delivery_attempt == 1:
            handling.set()
            broke.wait()
            raise RuntimeError("too late: its stream is gone")

    recorder = Recorder()
    with pytest.raises(grpc.RpcError) as raised:
        Consumer(channel, join_request(), handle, **recorder.kwargs()).run()

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert recorder.seen == [(5, 1), (5, 2)]
    first, second = gateway.members
    assert first.requests == [join_request()]
    assert second.requests == [join_request(), pb.ConsumeRequest(ack_sequences=[5])]


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNIMPLEMENTED,
    ],
)
def test_permanent_errors_are_raised_without_retry(serve, code):
    gateway, channel = serve(delivers_all(deliveries(1), code=code, details="no"))
    recorder = Recorder()
    with pytest.raises(grpc.RpcError) as raised:
        Consumer(channel, join_request(), recorder.handle, **recorder.kwargs()).run()
    assert raised.value.code() == code
    assert len(gateway.members) == 1 and recorder.delays == []


def test_out_of_range_is_raised_with_its_resume_info(serve):
    info = pb.ResumeInfo(last_sent_sequence=3, oldest_available_sequence=9, last_sequence=20)
    _, channel = serve(
        delivers_all(
            code=grpc.StatusCode.OUT_OF_RANGE, details="the group's position is no longer retained", resume=info
        )
    )
    recorder = Recorder()
    with pytest.raises(grpc.RpcError) as raised:
        Consumer(channel, "crm-sync", recorder.handle, **recorder.kwargs()).run()
    assert raised.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert resume_info(raised.value) == info


def test_handles_up_to_concurrency_events_at_once(serve):
    gateway, channel = serve(deleted(deliveries(1, 2, 3)))
    together = threading.Barrier(3, timeout=10)  # Breaks unless all three run at once.
    recorder = Recorder(lambda seq: together.wait())
    with pytest.raises(grpc.RpcError):
        Consumer(channel, join_request(), recorder.handle, concurrency=3, **recorder.kwargs()).run()
    assert sorted(recorder.acknowledged) == [1, 2, 3]


def test_concurrency_is_capped_at_max_in_flight():
    channel = grpc.insecure_channel("127.0.0.1:1")
    try:
        capped = Consumer(channel, pb.ConsumeRequest(consumer_group="g", max_in_flight=2), print, concurrency=50)
        assert capped._concurrency == 2
        assert Consumer(channel, "g", print, concurrency=5000)._concurrency == 100
        assert Consumer(channel, "g", print, concurrency=0)._concurrency == 1
    finally:
        channel.close()


def test_outcomes_ready_together_go_out_in_one_request():
    outcomes = queue.SimpleQueue()
    for outcome in [(8, None), (9, "no"), (10, None)]:
        outcomes.put(outcome)
    assert _batch((7, None), outcomes) == pb.ConsumeRequest(
        ack_sequences=[7, 8, 10], nacks=[pb.Nack(sequence=9, error="no")]
    )
    assert _batch((11, None), outcomes) == pb.ConsumeRequest(ack_sequences=[11])
    outcomes.put(_CLOSED)
    assert _batch((12, None), outcomes) is None  # Closed: nowhere to send it.


def test_a_burst_is_settled_in_full(serve):
    # Handlers far quicker than the gateway reads: whatever the batching,
    # every outcome arrives once.
    gateway, channel = serve(deleted(deliveries(*range(1, 101)), deliveries(*range(101, 201))))
    request = join_request()
    request.max_in_flight = 200
    recorder = Recorder()
    with pytest.raises(grpc.RpcError):
        Consumer(channel, request, recorder.handle, concurrency=4, **recorder.kwargs()).run()
    acks = [s for r in gateway.members[0].requests[1:] for s in r.ack_sequences]
    assert sorted(acks) == list(range(1, 201))


def blocks_until_cancelled(*responses):
    def session(member):
        yield from responses
        done = threading.Event()
        member.context.add_callback(done.set)
        done.wait()

    return session


def test_cancel_ends_an_open_stream(serve):
    gateway, channel = serve(blocks_until_cancelled(deliveries(1)))
    consumer = None

    def handle(consumed):
        threading.Timer(0, consumer.cancel).start()  # From another thread.

    consumer = Consumer(channel, join_request(), handle)
    assert consumer.run() is None
    assert len(gateway.members) == 1


def test_cancel_ends_the_backoff_wait(serve):
    _, channel = serve(delivers_all())
    consumer = Consumer(
        channel, "crm-sync", print, initial_backoff=3600, on_retry=lambda e, d: consumer.cancel()
    )
    assert consumer.run() is None


def test_a_handlers_base_exception_ends_run_without_an_outcome(serve):
    gateway, channel = serve(blocks_until_cancelled(deliveries(1)))

    def handle(consumed):
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        Consumer(channel, join_request(), handle).run()
    assert gateway.members[0].requests == [join_request()]


def test_a_request_without_a_group_is_refused():
    channel = grpc.insecure_channel("127.0.0.1:1")
    try:
        for request in ("", pb.ConsumeRequest(max_in_flight=5)):
            with pytest.raises(ValueError):
                Consumer(channel, request, print)
    finally:
        channel.close()
