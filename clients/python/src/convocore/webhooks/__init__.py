"""Client of the Convocore webhook gateway's event stream.

The generated stubs are in `convocore.webhooks.v1` (events_pb2,
event_stream_service_pb2, event_stream_service_pb2_grpc); `Subscription`
subscribes and resumes after the last event it yielded when the stream breaks.
"""

from convocore.webhooks.stream import PERMANENT_CODES, StreamEnded, Subscription

__all__ = ["PERMANENT_CODES", "StreamEnded", "Subscription"]
