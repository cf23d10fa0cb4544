"""A member of a consumer group of the webhook gateway that survives breaks.

A consumer group is a named position the gateway keeps over the events
matching its filter; each event goes to one of the group's connected members
at a time and stays the group's until a member acknowledges it (or it is
dead-lettered after the group's `max_delivery_attempts`). `Consumer` joins a
group, hands each event delivered to it to a handler, acks the event when the
handler returns and nacks it, with the exception's text, when the handler
raises; when the stream breaks it joins again, with exponential backoff::

    import grpc
    from convocore.webhooks import Consumer
    from convocore.webhooks.v1 import event_stream_service_pb2 as pb

    def handle(consumed: pb.ConsumedEvent) -> None:
        send_to_crm(consumed.event)  # Raising nacks: the event comes again.

    channel = grpc.insecure_channel("localhost:50051")
    consumer = Consumer(channel, "crm-sync", handle)
    consumer.run()  # Until consumer.cancel() from another thread.

Delivery is at least once: an event may come again after a break, an expired
ack deadline or a gateway crash (`delivery_attempt` counts the deliveries),
so handlers should be idempotent.
"""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures

import grpc

from convocore.webhooks.stream import PERMANENT_CODES, StreamEnded
from convocore.webhooks.v1 import event_stream_service_pb2 as _service_pb2
from convocore.webhooks.v1 import event_stream_service_pb2_grpc as _service_grpc

# How many unacknowledged events the gateway hands one member when the
# request's `max_in_flight` is 0 (at most 1000 may be asked for).
DEFAULT_MAX_IN_FLIGHT = 100

# The longest nack reason the gateway keeps; an exception's text is cut to
# it, at a UTF-8 boundary.
MAX_NACK_ERROR_BYTES = 1024

# Ends a session's request iterator.
_CLOSED = object()


def nack_reason(error: BaseException) -> str:
    """The text a nack carries for `error`: str(error), or its type's name
    when that is empty (a dead letter's reason should say something), cut to
    MAX_NACK_ERROR_BYTES of UTF-8."""
    text = str(error) or type(error).__name__
    # "replace": lone surrogates would make the request fail to serialize.
    encoded = text.encode("utf-8", "replace")[:MAX_NACK_ERROR_BYTES]
    return encoded.decode("utf-8", "ignore")


def _batch(first, outcomes: queue.SimpleQueue) -> _service_pb2.ConsumeRequest | None:
    """One request settling `first` and every other outcome already waiting
    in `outcomes`; None when the session closed meanwhile."""
    request = _service_pb2.ConsumeRequest()
    outcome = first
    while True:
        if outcome is _CLOSED:
            return None
        sequence, error = outcome
        if error is None:
            request.ack_sequences.append(sequence)
        else:
            request.nacks.add(sequence=sequence, error=error)
        try:
            outcome = outcomes.get_nowait()
        except queue.Empty:
            return request


class _Session:
    """The outgoing side of one Consume call: the first request, then the
    handlers' outcomes. Outcomes of a closed session go nowhere: the gateway
    cannot take an ack on another stream than the event's, and redelivers
    what a disconnected member held."""

    def __init__(self, first: _service_pb2.ConsumeRequest) -> None:
        self._first = first
        self._outcomes: queue.SimpleQueue = queue.SimpleQueue()
        self.closed = threading.Event()

    def requests(self) -> Iterator[_service_pb2.ConsumeRequest]:
        # Consumed by a gRPC thread; blocks between outcomes.
        yield self._first
        while True:
            request = _batch(self._outcomes.get(), self._outcomes)
            if request is None:
                return
            yield request

    def settle(self, sequence: int, error: str | None) -> None:
        if not self.closed.is_set():
            self._outcomes.put((sequence, error))

    def close(self) -> None:
        self.closed.set()
        self._outcomes.put(_CLOSED)


class Consumer:
    """Joins the consumer group `request` names and handles its events.

    `handler(consumed_event)` gets each `ConsumedEvent` (the `event` and its
    `delivery_attempt`) delivered to this member. When it returns, the event
    is acked; when it raises an Exception, the event is nacked with
    `nack_reason(exception)`, so that the gateway redelivers it at once, or
    dead-letters it with that reason after the group's
    `max_delivery_attempts`. Outcomes ready at the same time go out in one
    request. Any other BaseException (e.g. SystemExit) sends nothing, ends
    the consumer and is raised by `run()`.

    Handlers run on `concurrency` worker threads (default 1: one event at a
    time, in delivery order; more lets slow handlers overlap, out of order),
    capped at the request's `max_in_flight` (0 means DEFAULT_MAX_IN_FLIGHT),
    the most the gateway hands this member before it acks. Events waiting
    for a worker are held on this side while their ack deadline runs: with
    handlers slower than `ack_deadline / max_in_flight`, raise `concurrency`
    or lower `max_in_flight`, or events are redelivered to other members
    while still queued here. The gateway does the flow control; since this
    member acks as it handles, it holds no more than `max_in_flight` events.

    `run()` blocks until `cancel()` is called, from any thread (it then
    returns None; outcomes not yet sent are lost, and those events come
    again), or the gateway answers with one of `PERMANENT_CODES`, raised as
    the `grpc.RpcError` the gateway sent: INVALID_ARGUMENT (a bad name or
    setting), FAILED_PRECONDITION (the group exists with another filter),
    NOT_FOUND (the group was deleted), OUT_OF_RANGE (the group's position fell
    below the retention; `resume_info(error)` gives the gap and
    SeekConsumerGroup moves the group past it), UNIMPLEMENTED,
    UNAUTHENTICATED, PERMISSION_DENIED. Every other break is retried, joining
    again with the same first request: the first retry after
    `initial_backoff` seconds, doubling per consecutive failure up to
    `max_backoff`, each delay jittered down by up to half; a stream that
    received anything resets it. On a break, events still queued are not
    handled, handlers still running are waited for and their outcomes
    dropped: the gateway redelivers what a disconnected member held. `run()`
    never returns while a handler runs.

    Args:
      channel: a channel to the gateway's gRPC port.
      request: the group's name, or the first `ConsumeRequest` of every
        Consume call: `consumer_group` and the settings the gateway uses when
        it creates the group on first use (filter, start position,
        `ack_deadline`, `max_delivery_attempts`; for an existing group the
        filter must be empty or equal to its own), and this member's
        `max_in_flight`. Sent as it is on every reconnection: the group, not
        the client, keeps the position.
      handler: called with each `ConsumedEvent`, on a worker thread.
      concurrency: how many handlers run at once.
      on_retry: called with (error, delay in seconds) before each retry.
      on_heartbeat: called with each `Heartbeat` of an idle stream.
      on_acknowledged: called with the list of sequences whose acks the
        gateway has made durable: those events are not delivered to the group
        again, whatever happens to the gateway. An ack not yet confirmed when
        the stream breaks may not have been recorded.
      metadata: sent with every Consume call.
      token: the subscriber token, sent as "authorization: Bearer <token>"
        with every Consume call (for a gateway with --subscriber_tokens_file;
        use it over TLS).
      wait_for_ready: passed to every Consume call.
    """

    def __init__(
        self,
        channel: grpc.Channel,
        request: _service_pb2.ConsumeRequest | str,
        handler: Callable[[_service_pb2.ConsumedEvent], object],
        *,
        concurrency: int = 1,
        initial_backoff: float = 0.1,
        max_backoff: float = 10.0,
        on_retry: Callable[[Exception, float], None] | None = None,
        on_heartbeat: Callable[[_service_pb2.Heartbeat], None] | None = None,
        on_acknowledged: Callable[[list[int]], None] | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
        token: str | None = None,
        wait_for_ready: bool | None = None,
    ) -> None:
        self._stub = _service_grpc.EventStreamServiceStub(channel)
        self._request = _service_pb2.ConsumeRequest()
        if isinstance(request, str):
            self._request.consumer_group = request
        else:
            self._request.CopyFrom(request)
        if not self._request.consumer_group:
            raise ValueError("the request names no consumer_group")
        self._handler = handler
        in_flight = self._request.max_in_flight or DEFAULT_MAX_IN_FLIGHT
        self._concurrency = min(max(concurrency, 1), in_flight)
        self._initial_backoff = initial_backoff
        self._max_backoff = max(max_backoff, initial_backoff)
        self._on_retry = on_retry
        self._on_heartbeat = on_heartbeat
        self._on_acknowledged = on_acknowledged
        self._metadata = tuple(metadata or ())
        if token:
            self._metadata += (("authorization", f"Bearer {token}"),)
        self._wait_for_ready = wait_for_ready
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._call: grpc.Future | None = None
        # A handler's BaseException, raised by run().
        self._escaped: BaseException | None = None

    def cancel(self) -> None:
        """Ends `run()`: the open stream is cancelled, a wait cut short."""
        self._cancelled.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()

    def run(self) -> None:
        """Consumes until `cancel()`, or raises the permanent error."""
        backoff = self._initial_backoff
        while not self._cancelled.is_set():
            progressed = False
            session = _Session(self._request)
            workers = futures.ThreadPoolExecutor(self._concurrency, thread_name_prefix="convocore-consume")
            try:
                for response in self._open(session):
                    progressed = True
                    if response.acknowledged_sequences and self._on_acknowledged is not None:
                        self._on_acknowledged(list(response.acknowledged_sequences))
                    for consumed in response.events:
                        workers.submit(self._handle, session, consumed)
                    if response.HasField("heartbeat") and self._on_heartbeat is not None:
                        self._on_heartbeat(response.heartbeat)
                error: Exception = StreamEnded("the gateway ended the stream")
            except grpc.RpcError as e:
                if self._cancelled.is_set():
                    break
                if e.code() in PERMANENT_CODES:
                    raise
                error = e
            finally:
                self._close(session, workers)
            if progressed:
                backoff = self._initial_backoff
            delay = random.uniform(backoff / 2, backoff)
            if self._on_retry is not None:
                self._on_retry(error, delay)
            if self._cancelled.wait(delay):
                break
            backoff = min(backoff * 2, self._max_backoff)
        if self._escaped is not None:
            raise self._escaped

    def _handle(self, session: _Session, consumed: _service_pb2.ConsumedEvent) -> None:
        if session.closed.is_set():
            return  # Its stream broke while it waited: it comes again.
        sequence = consumed.event.sequence
        try:
            self._handler(consumed)
        except Exception as e:  # noqa: BLE001 - any failure is the event's nack
            session.settle(sequence, nack_reason(e))
        except BaseException as e:
            self._escaped = e
            self.cancel()
        else:
            session.settle(sequence, None)

    def _open(self, session: _Session):
        call = self._stub.Consume(
            session.requests(), metadata=self._metadata, wait_for_ready=self._wait_for_ready
        )
        with self._lock:
            self._call = call
        if self._cancelled.is_set():  # cancel() ran before _call was set.
            call.cancel()
        return call

    def _close(self, session: _Session, workers: futures.ThreadPoolExecutor) -> None:
        # Closed first, so that what the handlers still finish goes nowhere.
        session.close()
        with self._lock:
            call, self._call = self._call, None
        if call is not None:
            call.cancel()
        workers.shutdown(wait=True, cancel_futures=True)
