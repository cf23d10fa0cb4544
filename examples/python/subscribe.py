#!/usr/bin/env python3
"""Prints the webhook gateway's events of the chosen types, one JSON object
per line (the protobuf JSON mapping: the payload's keys are the sender's, and
formData and the *Json fields are JSON text), and keeps going across gateway
restarts without missing or repeating an event.

    pip install ./clients/python
    python3 examples/python/subscribe.py --target localhost:50051 --types chat_delegated,bug_reported
    python3 examples/python/subscribe.py --after_sequence 0   # every event ever accepted, then live
    GATEWAY_TOKEN=… python3 examples/python/subscribe.py --target gateway:50051 --ca ca.crt

Logs (retries) go to stderr. SIGINT or SIGTERM stops it.
"""

import argparse
import logging
import os
import signal
import sys

import grpc
from google.protobuf import json_format

from convocore.webhooks import Subscription, resume_info
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
    p.add_argument(
        "--types",
        default="",
        help="comma-separated event types as the sender names them "
        "(e.g. message_received,bug_reported); empty: every type",
    )
    start = p.add_mutually_exclusive_group()
    start.add_argument(
        "--after_sequence", type=int, help="start after this sequence (0: from the first event); default: from now"
    )
    start.add_argument("--from_oldest", action="store_true", help="start from the oldest event retained")
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
    except argparse.ArgumentTypeError as e:
        p.error(str(e))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(format="subscribe: %(asctime)s %(message)s", level=logging.INFO, stream=sys.stderr)
    request = pb.SubscribeRequest(event_types=args.types)
    if args.from_oldest:
        request.from_oldest = True
    elif args.after_sequence is not None:
        request.after_sequence = args.after_sequence

    with channel_to(args) as channel:
        subscription = Subscription(
            channel,
            request,
            max_backoff=args.max_backoff,
            token=args.token,
            on_retry=lambda error, delay: logging.info("stream broke (%s); resubscribing in %.3fs", describe(error), delay),
        )
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: subscription.cancel())
        try:
            for event in subscription:
                print(json_format.MessageToJson(event, indent=None), flush=True)
        except grpc.RpcError as e:
            info = resume_info(e)
            if e.code() == grpc.StatusCode.OUT_OF_RANGE and info is not None:
                # Only the operator can decide to accept the gap: say how.
                logging.error(
                    "cannot resume without a gap: %s; the oldest event retained is %d "
                    "(rerun with --after_sequence %d, or --from_oldest, to accept the gap)",
                    describe(e),
                    info.oldest_available_sequence,
                    info.oldest_available_sequence - 1,
                )
            else:
                logging.error("cannot resume: %s", describe(e))
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
