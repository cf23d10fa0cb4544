#!/usr/bin/env python3
"""Joins a consumer group of the webhook gateway as one of its members and
prints each event the gateway hands it, one JSON object per line: the
member's name, the event's sequence, type and delivery attempt, and whether
it was acked or nacked. Start several with the same --group and different
--member names to see the group's events shared among them; stop one and the
others get the events it held.

    pip install ./clients/python
    python3 examples/python/consume.py --group crm-sync --member a --types message_received,lead_captured
    python3 examples/python/consume.py --group crm-sync --member b --fail_types lead_captured  # nacks those
    GATEWAY_TOKEN=… python3 examples/python/consume.py --target gateway:50051 --ca ca.crt --group crm-sync

The group is created on first use with the --types filter, the start flags,
--ack_deadline and --max_delivery_attempts; joining an existing group needs
no filter. Logs (retries, nacks) go to stderr. SIGINT or SIGTERM stops it.
"""

import argparse
import json
import logging
import os
import signal
import socket
import sys

import grpc

from convocore.webhooks import Consumer, resume_info
from convocore.webhooks.v1 import event_stream_service_pb2 as pb
from convocore.webhooks.v1 import events_pb2


def event_type(name: str) -> int:
    """Maps a type as the sender names it ("message_received") to EventType."""
    try:
        value = events_pb2.EventType.Value("EVENT_TYPE_" + name.strip().upper())
    except ValueError:
        value = events_pb2.EVENT_TYPE_UNSPECIFIED
    if value == events_pb2.EVENT_TYPE_UNSPECIFIED:
        raise argparse.ArgumentTypeError(f"unknown event type {name!r}")
    return value


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", default="localhost:50051", help="the gateway's gRPC address")
    p.add_argument("--group", required=True, help="the consumer group to join; created on first use")
    p.add_argument(
        "--member", default=f"{socket.gethostname()}-{os.getpid()}", help="this member's name, printed with each event"
    )
    p.add_argument(
        "--types",
        default="",
        help="the group's filter when it is created: comma-separated event types as the sender names them; "
        "empty: every type",
    )
    p.add_argument(
        "--fail_types",
        default="",
        help="comma-separated event types to nack instead of ack, to see redeliveries and dead letters",
    )
    start = p.add_mutually_exclusive_group()
    start.add_argument(
        "--after_sequence", type=int, help="a new group starts after this sequence (0: from the first event)"
    )
    start.add_argument("--from_oldest", action="store_true", help="a new group starts from the oldest event retained")
    p.add_argument("--ack_deadline", type=float, help="a new group's ack deadline, seconds (default: the gateway's, 30)")
    p.add_argument(
        "--max_delivery_attempts", type=int, default=0, help="a new group's deliveries before dead-lettering (0: 5)"
    )
    p.add_argument("--max_in_flight", type=int, default=0, help="the most events this member holds unacked (0: 100)")
    p.add_argument("--max_backoff", type=float, default=10.0, help="longest wait between reconnection attempts, seconds")
    p.add_argument("--token", default=os.environ.get("GATEWAY_TOKEN"), help="subscriber token (default $GATEWAY_TOKEN)")
    p.add_argument("--ca", help="PEM CA bundle: connect over TLS, verifying the gateway with it")
    p.add_argument("--cert", help="PEM client certificate, with --key, for a gateway that asks for one (mTLS)")
    p.add_argument("--key", help="PEM key of --cert")
    args = p.parse_args(argv)
    if (args.cert or args.key) and not (args.ca and args.cert and args.key):
        p.error("--cert and --key go together, and need --ca")
    try:
        args.types = [event_type(t) for t in args.types.split(",") if t.strip()]
        args.fail_types = {event_type(t) for t in args.fail_types.split(",") if t.strip()}
    except argparse.ArgumentTypeError as e:
        p.error(str(e))
    return args


def first_request(args) -> pb.ConsumeRequest:
    request = pb.ConsumeRequest(
        consumer_group=args.group,
        event_types=args.types,
        max_delivery_attempts=args.max_delivery_attempts,
        max_in_flight=args.max_in_flight,
    )
    if args.from_oldest:
        request.from_oldest = True
    elif args.after_sequence is not None:
        request.after_sequence = args.after_sequence
    if args.ack_deadline:
        request.ack_deadline.FromNanoseconds(int(args.ack_deadline * 1e9))
    return request


class FailedOnPurpose(Exception):
    """An event of one of the --fail_types."""


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(format="consume: %(asctime)s %(message)s", level=logging.INFO, stream=sys.stderr)

    def handle(consumed: pb.ConsumedEvent) -> None:
        event = consumed.event
        failing = event.event_type in args.fail_types
        line = {
            "member": args.member,
            "sequence": event.sequence,
            "type": event.type_raw,
            "attempt": consumed.delivery_attempt,
            "outcome": "nack" if failing else "ack",
        }
        # Printed before it is acked: an event that could not be printed is
        # nacked by the exception and comes again.
        print(json.dumps(line), flush=True)
        if failing:
            logging.info("nacking %d (attempt %d)", event.sequence, consumed.delivery_attempt)
            raise FailedOnPurpose(f"member {args.member} fails {event.type_raw} events (--fail_types)")

    with channel_to(args) as channel:
        consumer = Consumer(
            channel,
            first_request(args),
            handle,
            max_backoff=args.max_backoff,
            token=args.token,
            on_retry=lambda error, delay: logging.info("stream broke (%s); joining again in %.3fs", describe(error), delay),
        )
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: consumer.cancel())
        try:
            consumer.run()
        except grpc.RpcError as e:
            info = resume_info(e)
            if e.code() == grpc.StatusCode.OUT_OF_RANGE and info is not None:
                # Only the operator can decide to accept the gap.
                logging.error(
                    "the group cannot go on without a gap: %s; the oldest event retained is %d "
                    "(SeekConsumerGroup to after_sequence %d accepts the gap)",
                    describe(e),
                    info.oldest_available_sequence,
                    info.oldest_available_sequence - 1,
                )
            else:
                logging.error("cannot consume: %s", describe(e))
            return 1
    return 0


def channel_to(args) -> grpc.Channel:
    """TLS when --ca is given (with a client certificate for mTLS), else plaintext."""
    if not args.ca:
        return grpc.insecure_channel(args.target)

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(args.ca),
        private_key=read(args.key) if args.key else None,
        certificate_chain=read(args.cert) if args.cert else None,
    )
    return grpc.secure_channel(args.target, credentials)


def describe(error: Exception) -> str:
    """The error as one log line: its gRPC code and message when it has them."""
    if isinstance(error, grpc.RpcError):
        return f"{error.code().name}: {error.details()}"
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
