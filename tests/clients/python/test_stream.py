"""Tests of convocore.webhooks.Subscription against a scripted gateway.

The fake gateway is a real gRPC server on a free loopback port whose
Subscribe plays one scripted session per call and records each request.
Run against the installed package (buildscripts/test-clients.sh installs it
into a virtual environment first), so the imports below also check that the
generated code imports as `convocore.webhooks.v1`.
"""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.rpc import status_pb2

import convocore.webhooks.v1.events_pb2 as events_pb2
from convocore.webhooks import StreamEnded, Subscription, resume_info
from convocore.webhooks.stream import DEFAULT_MAX_EVENTS_PER_RESPONSE
from convocore.webhooks.v1 import event_stream_service_pb2 as pb
from convocore.webhooks.v1 import event_stream_service_pb2_grpc as pb_grpc


def batch(*seqs):
    """One response carrying the events `seqs`, in that order."""
    return pb.SubscribeResponse(
        events=[
            events_pb2.Event(
                sequence=s,
                event_type=events_pb2.EVENT_TYPE_MESSAGE_RECEIVED,
                type_raw="message_received",
            )
            for s in seqs
        ]
    )


def event(seq):
    """One response carrying the one event `seq`."""
    return batch(seq)


SEND_TIME = timestamp_pb2.Timestamp(seconds=1700000000)


def heartbeat(last):
    return pb.SubscribeResponse(heartbeat=pb.Heartbeat(send_time=SEND_TIME, last_sequence=last))


@dataclass(frozen=True)
class _Status(grpc.Status):
    """A grpc.Status for context.abort_with_status."""

    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple


def ends_with(code, details, resume=None):
    """Ends a session with `code`, carrying `resume` (a ResumeInfo) the way
    the gateway does: as a google.protobuf.Any in the google.rpc.Status of the
    grpc-status-details-bin trailer."""

    def end(context):
        if resume is None:
            context.abort(code, details)
        status = status_pb2.Status(code=code.value[0], message=details)
        status.details.add().Pack(resume)
        context.abort_with_status(
            _Status(code, details, (("grpc-status-details-bin", status.SerializeToString()),))
        )

    return end


def sends(*messages, code=grpc.StatusCode.UNAVAILABLE, details="gateway restarting", resume=None):
    """A session that sends `messages`, then ends with `code` (None: OK),
    with the detail `resume` (a ResumeInfo) when given."""

    def session(request, context):
        yield from messages
        if code is not None:
            ends_with(code, details, resume)(context)

    return session


class FakeGateway(pb_grpc.EventStreamServiceServicer):
    def __init__(self, sessions):
        self._sessions = list(sessions)
        self._lock = threading.Lock()
        self.requests = []

    def Subscribe(self, request, context):
        with self._lock:
            i = len(self.requests)
            copy = pb.SubscribeRequest()
            copy.CopyFrom(request)
            self.requests.append(copy)
        if i >= len(self._sessions):
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "fake gateway: script exhausted")
        yield from self._sessions[i](request, context)


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


def filtered(**start):
    return pb.SubscribeRequest(
        event_types=[events_pb2.EVENT_TYPE_MESSAGE_RECEIVED],
        agent_ids=["agent_123456"],
        channels=[events_pb2.CHANNEL_WHATSAPP],
        **start,
    )


def sent(request):
    """`request` as Subscription sends it: batches asked for unless set."""
    copy = pb.SubscribeRequest()
    copy.CopyFrom(request)
    if copy.max_events_per_response == 0:
        copy.max_events_per_response = DEFAULT_MAX_EVENTS_PER_RESPONSE
    return copy


def fast(**kwargs):
    """Retry settings that keep the tests quick; the delays are recorded."""
    delays = []
    kwargs.setdefault("initial_backoff", 0.001)
    kwargs.setdefault("max_backoff", 0.003)
    kwargs.setdefault("on_retry", lambda error, delay: delays.append(delay))
    return kwargs, delays


def test_resumes_after_the_last_yielded_event_without_repeats(serve):
    gateway, channel = serve(
        sends(event(1), event(2), heartbeat(7)),
        # A gateway that re-sends what the client already has: dropped.
        sends(event(2), event(3), code=grpc.StatusCode.RESOURCE_EXHAUSTED),
        sends(event(4), code=None),  # A stream that just ends is a break too.
        sends(event(5), code=grpc.StatusCode.OUT_OF_RANGE, details="oldest is 9"),
    )
    heartbeats = []
    kwargs, _ = fast(on_heartbeat=lambda hb: heartbeats.append(hb.last_sequence))
    subscription = Subscription(channel, filtered(from_oldest=True), **kwargs)
    seen = []
    with pytest.raises(grpc.RpcError) as raised:
        for ev in subscription:
            seen.append(ev.sequence)

    assert raised.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert seen == [1, 2, 3, 4, 5]
    assert subscription.last_sequence == 5
    assert heartbeats == [7]
    assert gateway.requests == [
        sent(filtered(from_oldest=True)),
        sent(filtered(after_sequence=2)),
        sent(filtered(after_sequence=3)),
        sent(filtered(after_sequence=4)),
    ]


def test_batches_are_yielded_one_event_at_a_time_without_repeats(serve):
    gateway, channel = serve(
        sends(batch(1, 2, 3), event(4)),
        # Overlaps what was yielded: only 5 and 6 are new.
        sends(batch(3, 4, 5), batch(6), code=grpc.StatusCode.OUT_OF_RANGE),
    )
    kwargs, _ = fast()
    seen = []
    with pytest.raises(grpc.RpcError) as raised:
        for ev in Subscription(channel, filtered(from_oldest=True), **kwargs):
            seen.append(ev.sequence)

    assert raised.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert seen == [1, 2, 3, 4, 5, 6]
    assert gateway.requests == [
        sent(filtered(from_oldest=True)),
        sent(filtered(after_sequence=4)),
    ]


def test_an_explicit_max_events_per_response_is_kept(serve):
    gateway, channel = serve(sends(event(1), code=grpc.StatusCode.OUT_OF_RANGE))
    request = filtered(max_events_per_response=1)
    kwargs, _ = fast()
    with pytest.raises(grpc.RpcError):
        list(Subscription(channel, request, **kwargs))

    assert gateway.requests == [request]


def test_keeps_the_requested_start_until_the_first_event(serve):
    gateway, channel = serve(sends(), sends(heartbeat(5)), sends(event(6)))
    kwargs, _ = fast()
    seen = []
    with pytest.raises(grpc.RpcError) as raised:
        for ev in Subscription(channel, filtered(after_sequence=5), **kwargs):
            seen.append(ev.sequence)

    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED  # Script's end.
    assert seen == [6]
    assert gateway.requests == [sent(filtered(after_sequence=5))] * 3 + [
        sent(filtered(after_sequence=6))
    ]


def test_backoff_grows_to_the_cap_and_resets_after_progress(serve):
    _, channel = serve(sends(), sends(), sends(), sends(), sends(event(1)), sends())
    kwargs, delays = fast(initial_backoff=0.001, max_backoff=0.003)
    with pytest.raises(grpc.RpcError):
        for _ in Subscription(channel, **kwargs):
            pass

    nominal = [0.001, 0.002, 0.003, 0.003, 0.001, 0.002]
    assert len(delays) == len(nominal)
    for delay, n in zip(delays, nominal):
        assert n / 2 <= delay <= n


def test_a_stream_ended_by_the_gateway_is_retried(serve):
    _, channel = serve(sends(event(1), code=None))
    errors = []
    with pytest.raises(grpc.RpcError):
        for _ in Subscription(channel, initial_backoff=0.001, on_retry=lambda e, d: errors.append(e)):
            pass
    assert len(errors) == 1 and isinstance(errors[0], StreamEnded)


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
    ],
)
def test_permanent_errors_are_raised_without_retry(serve, code):
    gateway, channel = serve(sends(code=code))
    kwargs, delays = fast()
    with pytest.raises(grpc.RpcError) as raised:
        list(Subscription(channel, **kwargs))
    assert raised.value.code() == code
    assert len(gateway.requests) == 1 and delays == []


def test_the_token_is_sent_with_every_subscribe_call(serve):
    seen = []

    def recording(session):
        def record(request, context):
            seen.append(dict(context.invocation_metadata()).get("authorization"))
            yield from session(request, context)

        return record

    gateway, channel = serve(
        recording(sends(event(1))),
        recording(sends(code=grpc.StatusCode.UNAUTHENTICATED, details='the token of subscriber "crm" was revoked')),
    )
    kwargs, _ = fast()
    with pytest.raises(grpc.RpcError) as raised:
        list(Subscription(channel, token="s3cret", metadata=[("x-trace", "1")], **kwargs))
    # A revoked token is not retried.
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert seen == ["Bearer s3cret", "Bearer s3cret"]


def blocks_until_cancelled(*messages):
    def session(request, context):
        yield from messages
        done = threading.Event()
        context.add_callback(done.set)
        done.wait()

    return session


def test_cancel_ends_an_open_stream(serve):
    gateway, channel = serve(blocks_until_cancelled(event(1)))
    subscription = Subscription(channel)
    seen = []
    for ev in subscription:
        seen.append(ev.sequence)
        threading.Timer(0, subscription.cancel).start()  # From another thread.
    assert seen == [1]
    assert len(gateway.requests) == 1


def test_cancel_ends_the_backoff_wait(serve):
    _, channel = serve(sends())
    subscription = Subscription(
        channel, initial_backoff=3600, on_retry=lambda e, d: subscription.cancel()
    )
    assert list(subscription) == []


def test_breaking_out_of_the_loop_cancels_the_stream(serve):
    cancelled = threading.Event()

    def session(request, context):
        context.add_callback(cancelled.set)
        yield event(1)
        cancelled.wait()

    _, channel = serve(session)
    for _ in Subscription(channel):
        break
    assert cancelled.wait(timeout=10), "the gateway never saw the stream cancelled"


def test_the_events_of_one_response_are_yielded_one_at_a_time_in_order(serve):
    _, channel = serve(
        sends(batch(1, 2, 3, 5, 8), heartbeat(8), batch(13, 21), code=grpc.StatusCode.OUT_OF_RANGE)
    )
    kwargs, _ = fast()
    subscription = Subscription(channel, filtered(from_oldest=True), **kwargs)
    seen = []
    with pytest.raises(grpc.RpcError):
        for ev in subscription:
            assert isinstance(ev, events_pb2.Event)
            # Each step yields one event and has recorded it, no more.
            assert subscription.last_sequence == ev.sequence
            seen.append(ev.sequence)
    assert seen == [1, 2, 3, 5, 8, 13, 21]


def test_heartbeats_go_to_on_heartbeat_and_yield_nothing(serve):
    _, channel = serve(
        sends(heartbeat(0), heartbeat(4), event(5), heartbeat(9), code=grpc.StatusCode.OUT_OF_RANGE)
    )
    heartbeats = []
    kwargs, _ = fast(on_heartbeat=heartbeats.append)
    seen = []
    with pytest.raises(grpc.RpcError):
        for ev in Subscription(channel, filtered(after_sequence=4), **kwargs):
            seen.append(ev.sequence)
    assert seen == [5]
    assert [hb.last_sequence for hb in heartbeats] == [0, 4, 9]
    assert all(hb.send_time == SEND_TIME for hb in heartbeats)


def test_before_the_first_event_resumes_after_the_resume_info(serve):
    gateway, channel = serve(
        # A stream from now that ends before any event: the gateway says
        # where it had started.
        sends(
            heartbeat(41),
            details="shutting down",
            resume=pb.ResumeInfo(last_sent_sequence=41, oldest_available_sequence=1, last_sequence=41),
        ),
        sends(),  # Unreachable: no ResumeInfo, so the position stays.
        sends(
            code=grpc.StatusCode.RESOURCE_EXHAUSTED,
            resume=pb.ResumeInfo(last_sent_sequence=44, oldest_available_sequence=1, last_sequence=90),
        ),
        sends(event(45)),
    )
    kwargs, _ = fast()
    seen = []
    with pytest.raises(grpc.RpcError) as raised:
        for ev in Subscription(channel, filtered(), **kwargs):
            seen.append(ev.sequence)

    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED  # Script's end.
    assert seen == [45]
    assert gateway.requests == [
        sent(filtered()),
        sent(filtered(after_sequence=41)),
        sent(filtered(after_sequence=41)),
        sent(filtered(after_sequence=44)),
        sent(filtered(after_sequence=45)),
    ]


def test_after_an_event_resumes_after_its_own_last_sequence_whatever_the_resume_info_says(serve):
    gateway, channel = serve(
        # The gateway claims to have sent up to 9, but only 3 arrived: 4..9
        # must be asked for again, not skipped.
        sends(
            event(2),
            event(3),
            resume=pb.ResumeInfo(last_sent_sequence=9, oldest_available_sequence=1, last_sequence=9),
        ),
        # A stream that sends nothing after events were yielded: still after
        # the last yielded one, not the ResumeInfo's 1.
        sends(
            code=grpc.StatusCode.RESOURCE_EXHAUSTED,
            resume=pb.ResumeInfo(last_sent_sequence=1, oldest_available_sequence=1, last_sequence=9),
        ),
        sends(batch(4, 9)),
    )
    kwargs, _ = fast()
    seen = []
    with pytest.raises(grpc.RpcError) as raised:
        for ev in Subscription(channel, filtered(from_oldest=True), **kwargs):
            seen.append(ev.sequence)

    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED  # Script's end.
    assert seen == [2, 3, 4, 9]
    assert gateway.requests == [
        sent(filtered(from_oldest=True)),
        sent(filtered(after_sequence=3)),
        sent(filtered(after_sequence=3)),
        sent(filtered(after_sequence=9)),
    ]


def test_out_of_range_is_raised_with_its_resume_info(serve):
    info = pb.ResumeInfo(last_sent_sequence=0, oldest_available_sequence=7, last_sequence=12)
    gateway, channel = serve(
        sends(code=grpc.StatusCode.OUT_OF_RANGE, details="events after 0 are no longer retained", resume=info)
    )
    kwargs, delays = fast()
    with pytest.raises(grpc.RpcError) as raised:
        list(Subscription(channel, filtered(after_sequence=0), **kwargs))

    assert raised.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert raised.value.details() == "events after 0 are no longer retained"
    assert resume_info(raised.value) == info
    assert len(gateway.requests) == 1 and delays == []


def test_resume_info_is_none_without_one(serve):
    _, channel = serve(sends(code=grpc.StatusCode.OUT_OF_RANGE))
    kwargs, _ = fast()
    with pytest.raises(grpc.RpcError) as raised:
        list(Subscription(channel, **kwargs))
    assert resume_info(raised.value) is None
    assert resume_info(ValueError("not an RPC error")) is None
    assert resume_info(StreamEnded("the gateway ended the stream")) is None
