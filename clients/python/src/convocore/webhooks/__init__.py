"""Client of the Convocore webhook gateway's event stream.

The generated stubs are in `convocore.webhooks.v1` (events_pb2,
event_stream_service_pb2, event_stream_service_pb2_grpc); `Subscription`
subscribes and, when the stream breaks, resumes after the last event it
yielded (before the first one, after the error's `ResumeInfo`);
`resume_info(error)` reads the `ResumeInfo` detail of a Subscribe error;
`Consumer` joins a consumer group, acks each event its handler handled and
nacks each one it failed, and joins again when the stream breaks.
"""

from convocore.webhooks.consume import Consumer
from convocore.webhooks.stream import PERMANENT_CODES, StreamEnded, Subscription, resume_info

__all__ = ["PERMANENT_CODES", "Consumer", "StreamEnded", "Subscription", "resume_info"]
