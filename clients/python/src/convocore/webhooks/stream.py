"""A subscription to the webhook gateway's event stream that survives breaks.

Iterating a `Subscription` yields each matching event once, in sequence
order, one at a time, although each gateway response carries 1 to
`max_events_per_response` events (or, on an idle stream, a `Heartbeat`).
When the stream breaks (the gateway restarts, the network drops, the
subscriber fell behind), it subscribes again after the last event it yielded
(before the first one: after the position the error's `ResumeInfo` reports),
with exponential backoff, so the loop sees neither a gap nor a repeat::

    import grpc
    from convocore.webhooks import Subscription, resume_info
    from convocore.webhooks.v1 import event_stream_service_pb2 as pb, events_pb2

    channel = grpc.insecure_channel("localhost:50051")
    request = pb.SubscribeRequest(event_types=[events_pb2.EVENT_TYPE_MESSAGE_RECEIVED])
    try:
        for event in Subscription(channel, request):
            print(event.sequence, events_pb2.EventType.Name(event.event_type))
    except grpc.RpcError as error:
        info = resume_info(error)  # e.g. OUT_OF_RANGE: where the gap ends.

Switch on `event.event_type`. The free-form JSON of an event
(`form_submitted.form_data_json`, `other_json`, `envelope_extras_json`,
`payload_extras_json`) is text holding one JSON object with every number as
sent: `json.loads` keeps integers exact (pass `parse_float=decimal.Decimal`
to keep the other numbers exact too).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator, Sequence

import grpc
from google.protobuf.message import DecodeError
from google.rpc import status_pb2

from convocore.webhooks.v1 import event_stream_service_pb2 as _service_pb2
from convocore.webhooks.v1 import event_stream_service_pb2_grpc as _service_grpc
from convocore.webhooks.v1 import events_pb2 as _events_pb2

# Errors that subscribing again as it is cannot fix; they end the iteration.
# OUT_OF_RANGE: the next event is no longer retained, so resuming would leave
# a gap, which only the caller can decide to accept. INVALID_ARGUMENT: a bad
# filter, or a resume point beyond the gateway's newest event (e.g. a gateway
# with --store=memory that restarted).
PERMANENT_CODES = frozenset(
    {
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
)


# How many events one response may carry unless the request says otherwise;
# the gateway takes 0 to mean the same (and allows at most 1000). Batching
# makes a busy stream far cheaper per event for the gateway and this client,
# and an idle one is as prompt: the gateway never holds an event back to fill
# a response. Iteration still yields one event at a time.
DEFAULT_MAX_EVENTS_PER_RESPONSE = 100

# The trailing metadata key of the google.rpc.Status that carries an error's
# details.
_STATUS_DETAILS_KEY = "grpc-status-details-bin"


def resume_info(error: BaseException) -> _service_pb2.ResumeInfo | None:
    """The `ResumeInfo` detail of a Subscribe error, or None without one.

    The gateway attaches one when a stream that could resume ends with
    OUT_OF_RANGE, RESOURCE_EXHAUSTED or UNAVAILABLE, as a google.protobuf.Any
    in the google.rpc.Status of the `grpc-status-details-bin` trailer. Any
    other exception, an error without that trailer and a trailer that does
    not parse give None. For OUT_OF_RANGE, subscribing again with
    `after_sequence = info.oldest_available_sequence - 1` (or `from_oldest`)
    accepts the gap.
    """
    trailing_metadata = getattr(error, "trailing_metadata", None)
    if not callable(trailing_metadata):
        return None
    for key, value in trailing_metadata() or ():
        if key != _STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:
            return None
        for detail in status.details:
            if detail.Is(_service_pb2.ResumeInfo.DESCRIPTOR):
                info = _service_pb2.ResumeInfo()
                if detail.Unpack(info):
                    return info
        return None
    return None


class StreamEnded(Exception):
    """The gateway ended a stream that never ends by itself; it is retried."""


class Subscription:
    """Iterates over the events matching `request`, resuming after breaks.

    The first call uses `request` as given (its filters and start position;
    none means from now). Once an event has been yielded, every resubscription
    asks for exactly the events after the last one yielded. Before the first
    event, a break whose error carries a `ResumeInfo` (the gateway's
    UNAVAILABLE and RESOURCE_EXHAUSTED stream ends) makes the resubscription
    ask for the events after its `last_sent_sequence`, the position the start
    resolved to, so that a subscription from now misses nothing accepted while
    it reconnects; a break without one (e.g. the gateway was unreachable)
    keeps the start position as it was. A request whose
    `max_events_per_response` is 0 is sent with
    `DEFAULT_MAX_EVENTS_PER_RESPONSE`, what the gateway takes 0 to mean.

    Breaks other than `PERMANENT_CODES` are retried: the first after
    `initial_backoff` seconds, doubling per consecutive failure up to
    `max_backoff`, each delay jittered down by up to half; a stream that
    delivered anything (events or heartbeats) resets it. A permanent error is
    raised as the `grpc.RpcError` the gateway sent, trailers included, so that
    `resume_info(error)` reads its `ResumeInfo` (OUT_OF_RANGE carries one).
    `cancel()`, from any thread, ends the iteration (StopIteration).

    Args:
      channel: a channel to the gateway's gRPC port.
      request: a `SubscribeRequest`; None means every type, from now.
      on_retry: called with (error, delay in seconds) before each retry.
      on_heartbeat: called with each `Heartbeat` of an idle stream.
      metadata: sent with every Subscribe call.
      token: the subscriber token, sent as "authorization: Bearer <token>"
        with every Subscribe call (for a gateway with
        --subscriber_tokens_file; use it over TLS). A revoked or narrowed
        token ends the iteration with UNAUTHENTICATED or PERMISSION_DENIED.
      wait_for_ready: passed to every Subscribe call.
    """

    def __init__(
        self,
        channel: grpc.Channel,
        request: _service_pb2.SubscribeRequest | None = None,
        *,
        initial_backoff: float = 0.1,
        max_backoff: float = 10.0,
        on_retry: Callable[[Exception, float], None] | None = None,
        on_heartbeat: Callable[[_service_pb2.Heartbeat], None] | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
        token: str | None = None,
        wait_for_ready: bool | None = None,
    ) -> None:
        self._stub = _service_grpc.EventStreamServiceStub(channel)
        self._request = _service_pb2.SubscribeRequest()
        if request is not None:
            self._request.CopyFrom(request)
        if self._request.max_events_per_response == 0:
            self._request.max_events_per_response = DEFAULT_MAX_EVENTS_PER_RESPONSE
        self._initial_backoff = initial_backoff
        self._max_backoff = max(max_backoff, initial_backoff)
        self._on_retry = on_retry
        self._on_heartbeat = on_heartbeat
        self._metadata = tuple(metadata or ())
        if token:
            self._metadata += (("authorization", f"Bearer {token}"),)
        self._wait_for_ready = wait_for_ready
        self._last_sequence: int | None = None
        # Before the first yielded event: the last_sent_sequence of the latest
        # break's ResumeInfo.
        self._resume_after: int | None = None
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._call: grpc.Future | None = None

    @property
    def last_sequence(self) -> int | None:
        """The sequence of the last event yielded; None before the first."""
        return self._last_sequence

    def cancel(self) -> None:
        """Ends the iteration: the open stream is cancelled, a wait cut short."""
        self._cancelled.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()

    def __iter__(self) -> Iterator[_events_pb2.Event]:
        backoff = self._initial_backoff
        while not self._cancelled.is_set():
            progressed = False
            try:
                for response in self._open():
                    progressed = True
                    for event in response.events:
                        if self._last_sequence is not None and event.sequence <= self._last_sequence:
                            continue  # Already yielded before a break.
                        self._last_sequence = event.sequence
                        yield event
                    if response.HasField("heartbeat") and self._on_heartbeat is not None:
                        self._on_heartbeat(response.heartbeat)
                error: Exception = StreamEnded("the gateway ended the stream")
            except grpc.RpcError as e:
                if self._cancelled.is_set():
                    return
                if e.code() in PERMANENT_CODES:
                    raise
                error = e
                info = resume_info(e)
                if info is not None and self._last_sequence is None:
                    self._resume_after = info.last_sent_sequence
            finally:
                self._close()
            if progressed:
                backoff = self._initial_backoff
            delay = random.uniform(backoff / 2, backoff)
            if self._on_retry is not None:
                self._on_retry(error, delay)
            if self._cancelled.wait(delay):
                return
            backoff = min(backoff * 2, self._max_backoff)

    def _open(self):
        request = self._request
        after = self._last_sequence if self._last_sequence is not None else self._resume_after
        if after is not None:
            request = _service_pb2.SubscribeRequest()
            request.CopyFrom(self._request)
            request.after_sequence = after
        call = self._stub.Subscribe(
            request, metadata=self._metadata, wait_for_ready=self._wait_for_ready
        )
        with self._lock:
            self._call = call
        if self._cancelled.is_set():  # cancel() ran before _call was set.
            call.cancel()
        return call

    def _close(self) -> None:
        # Also runs when the consumer stops iterating mid-stream.
        with self._lock:
            call, self._call = self._call, None
        if call is not None:
            call.cancel()
