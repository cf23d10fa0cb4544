import datetime

from convocore.webhooks.v1 import events_pb2 as _events_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubscribeRequest(_message.Message):
    __slots__ = ("event_types", "agent_ids", "channels", "after_sequence", "from_oldest", "from_time", "max_events_per_response", "workspaces")
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    AGENT_IDS_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    FROM_OLDEST_FIELD_NUMBER: _ClassVar[int]
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    MAX_EVENTS_PER_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    WORKSPACES_FIELD_NUMBER: _ClassVar[int]
    event_types: _containers.RepeatedScalarFieldContainer[_events_pb2.EventType]
    agent_ids: _containers.RepeatedScalarFieldContainer[str]
    channels: _containers.RepeatedScalarFieldContainer[_events_pb2.Channel]
    after_sequence: int
    from_oldest: bool
    from_time: _timestamp_pb2.Timestamp
    max_events_per_response: int
    workspaces: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, event_types: _Optional[_Iterable[_Union[_events_pb2.EventType, str]]] = ..., agent_ids: _Optional[_Iterable[str]] = ..., channels: _Optional[_Iterable[_Union[_events_pb2.Channel, str]]] = ..., after_sequence: _Optional[int] = ..., from_oldest: _Optional[bool] = ..., from_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_events_per_response: _Optional[int] = ..., workspaces: _Optional[_Iterable[str]] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("events", "heartbeat")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_events_pb2.Event]
    heartbeat: Heartbeat
    def __init__(self, events: _Optional[_Iterable[_Union[_events_pb2.Event, _Mapping]]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("send_time", "last_sequence")
    SEND_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    send_time: _timestamp_pb2.Timestamp
    last_sequence: int
    def __init__(self, send_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_sequence: _Optional[int] = ...) -> None: ...

class ResumeInfo(_message.Message):
    __slots__ = ("last_sent_sequence", "oldest_available_sequence", "last_sequence")
    LAST_SENT_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    OLDEST_AVAILABLE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    last_sent_sequence: int
    oldest_available_sequence: int
    last_sequence: int
    def __init__(self, last_sent_sequence: _Optional[int] = ..., oldest_available_sequence: _Optional[int] = ..., last_sequence: _Optional[int] = ...) -> None: ...

class ConsumeRequest(_message.Message):
    __slots__ = ("consumer_group", "event_types", "agent_ids", "channels", "workspaces", "after_sequence", "from_oldest", "from_time", "ack_deadline", "max_delivery_attempts", "max_in_flight", "ack_sequences", "nacks")
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    AGENT_IDS_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    WORKSPACES_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    FROM_OLDEST_FIELD_NUMBER: _ClassVar[int]
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    ACK_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    MAX_DELIVERY_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    ACK_SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    NACKS_FIELD_NUMBER: _ClassVar[int]
    consumer_group: str
    event_types: _containers.RepeatedScalarFieldContainer[_events_pb2.EventType]
    agent_ids: _containers.RepeatedScalarFieldContainer[str]
    channels: _containers.RepeatedScalarFieldContainer[_events_pb2.Channel]
    workspaces: _containers.RepeatedScalarFieldContainer[str]
    after_sequence: int
    from_oldest: bool
    from_time: _timestamp_pb2.Timestamp
    ack_deadline: _duration_pb2.Duration
    max_delivery_attempts: int
    max_in_flight: int
    ack_sequences: _containers.RepeatedScalarFieldContainer[int]
    nacks: _containers.RepeatedCompositeFieldContainer[Nack]
    def __init__(self, consumer_group: _Optional[str] = ..., event_types: _Optional[_Iterable[_Union[_events_pb2.EventType, str]]] = ..., agent_ids: _Optional[_Iterable[str]] = ..., channels: _Optional[_Iterable[_Union[_events_pb2.Channel, str]]] = ..., workspaces: _Optional[_Iterable[str]] = ..., after_sequence: _Optional[int] = ..., from_oldest: _Optional[bool] = ..., from_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ack_deadline: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_delivery_attempts: _Optional[int] = ..., max_in_flight: _Optional[int] = ..., ack_sequences: _Optional[_Iterable[int]] = ..., nacks: _Optional[_Iterable[_Union[Nack, _Mapping]]] = ...) -> None: ...

class Nack(_message.Message):
    __slots__ = ("sequence", "error")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    error: str
    def __init__(self, sequence: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class ConsumeResponse(_message.Message):
    __slots__ = ("events", "acknowledged_sequences", "heartbeat")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[ConsumedEvent]
    acknowledged_sequences: _containers.RepeatedScalarFieldContainer[int]
    heartbeat: Heartbeat
    def __init__(self, events: _Optional[_Iterable[_Union[ConsumedEvent, _Mapping]]] = ..., acknowledged_sequences: _Optional[_Iterable[int]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class ConsumedEvent(_message.Message):
    __slots__ = ("event", "delivery_attempt")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    event: _events_pb2.Event
    delivery_attempt: int
    def __init__(self, event: _Optional[_Union[_events_pb2.Event, _Mapping]] = ..., delivery_attempt: _Optional[int] = ...) -> None: ...

class ConsumerGroup(_message.Message):
    __slots__ = ("name", "event_types", "agent_ids", "channels", "workspaces", "ack_deadline", "max_delivery_attempts", "ack_floor_sequence", "settled_above_floor", "in_flight_events", "dead_letter_count", "connected_members", "create_time", "last_sequence")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    AGENT_IDS_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    WORKSPACES_FIELD_NUMBER: _ClassVar[int]
    ACK_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    MAX_DELIVERY_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ACK_FLOOR_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SETTLED_ABOVE_FLOOR_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_COUNT_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    event_types: _containers.RepeatedScalarFieldContainer[_events_pb2.EventType]
    agent_ids: _containers.RepeatedScalarFieldContainer[str]
    channels: _containers.RepeatedScalarFieldContainer[_events_pb2.Channel]
    workspaces: _containers.RepeatedScalarFieldContainer[str]
    ack_deadline: _duration_pb2.Duration
    max_delivery_attempts: int
    ack_floor_sequence: int
    settled_above_floor: int
    in_flight_events: int
    dead_letter_count: int
    connected_members: int
    create_time: _timestamp_pb2.Timestamp
    last_sequence: int
    def __init__(self, name: _Optional[str] = ..., event_types: _Optional[_Iterable[_Union[_events_pb2.EventType, str]]] = ..., agent_ids: _Optional[_Iterable[str]] = ..., channels: _Optional[_Iterable[_Union[_events_pb2.Channel, str]]] = ..., workspaces: _Optional[_Iterable[str]] = ..., ack_deadline: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_delivery_attempts: _Optional[int] = ..., ack_floor_sequence: _Optional[int] = ..., settled_above_floor: _Optional[int] = ..., in_flight_events: _Optional[int] = ..., dead_letter_count: _Optional[int] = ..., connected_members: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_sequence: _Optional[int] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("sequence", "delivery_attempts", "last_error", "dead_letter_time", "event")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_TIME_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    delivery_attempts: int
    last_error: str
    dead_letter_time: _timestamp_pb2.Timestamp
    event: _events_pb2.Event
    def __init__(self, sequence: _Optional[int] = ..., delivery_attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., dead_letter_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., event: _Optional[_Union[_events_pb2.Event, _Mapping]] = ...) -> None: ...

class CreateConsumerGroupRequest(_message.Message):
    __slots__ = ("consumer_group", "after_sequence", "from_oldest", "from_time")
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    FROM_OLDEST_FIELD_NUMBER: _ClassVar[int]
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    consumer_group: ConsumerGroup
    after_sequence: int
    from_oldest: bool
    from_time: _timestamp_pb2.Timestamp
    def __init__(self, consumer_group: _Optional[_Union[ConsumerGroup, _Mapping]] = ..., after_sequence: _Optional[int] = ..., from_oldest: _Optional[bool] = ..., from_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateConsumerGroupResponse(_message.Message):
    __slots__ = ("consumer_group",)
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    consumer_group: ConsumerGroup
    def __init__(self, consumer_group: _Optional[_Union[ConsumerGroup, _Mapping]] = ...) -> None: ...

class GetConsumerGroupRequest(_message.Message):
    __slots__ = ("consumer_group",)
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    consumer_group: str
    def __init__(self, consumer_group: _Optional[str] = ...) -> None: ...

class GetConsumerGroupResponse(_message.Message):
    __slots__ = ("consumer_group",)
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    consumer_group: ConsumerGroup
    def __init__(self, consumer_group: _Optional[_Union[ConsumerGroup, _Mapping]] = ...) -> None: ...

class ListConsumerGroupsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListConsumerGroupsResponse(_message.Message):
    __slots__ = ("consumer_groups",)
    CONSUMER_GROUPS_FIELD_NUMBER: _ClassVar[int]
    consumer_groups: _containers.RepeatedCompositeFieldContainer[ConsumerGroup]
    def __init__(self, consumer_groups: _Optional[_Iterable[_Union[ConsumerGroup, _Mapping]]] = ...) -> None: ...

class DeleteConsumerGroupRequest(_message.Message):
    __slots__ = ("consumer_group",)
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    consumer_group: str
    def __init__(self, consumer_group: _Optional[str] = ...) -> None: ...

class DeleteConsumerGroupResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SeekConsumerGroupRequest(_message.Message):
    __slots__ = ("consumer_group", "after_sequence", "from_oldest", "from_time")
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    FROM_OLDEST_FIELD_NUMBER: _ClassVar[int]
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    consumer_group: str
    after_sequence: int
    from_oldest: bool
    from_time: _timestamp_pb2.Timestamp
    def __init__(self, consumer_group: _Optional[str] = ..., after_sequence: _Optional[int] = ..., from_oldest: _Optional[bool] = ..., from_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SeekConsumerGroupResponse(_message.Message):
    __slots__ = ("consumer_group",)
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    consumer_group: ConsumerGroup
    def __init__(self, consumer_group: _Optional[_Union[ConsumerGroup, _Mapping]] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("consumer_group", "page_size", "after_sequence")
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    consumer_group: str
    page_size: int
    after_sequence: int
    def __init__(self, consumer_group: _Optional[str] = ..., page_size: _Optional[int] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ("dead_letters",)
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ...) -> None: ...

class ReplayDeadLettersRequest(_message.Message):
    __slots__ = ("consumer_group", "sequences")
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    consumer_group: str
    sequences: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, consumer_group: _Optional[str] = ..., sequences: _Optional[_Iterable[int]] = ...) -> None: ...

class ReplayDeadLettersResponse(_message.Message):
    __slots__ = ("sequences",)
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    sequences: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, sequences: _Optional[_Iterable[int]] = ...) -> None: ...

class DropDeadLettersRequest(_message.Message):
    __slots__ = ("consumer_group", "sequences")
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    consumer_group: str
    sequences: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, consumer_group: _Optional[str] = ..., sequences: _Optional[_Iterable[int]] = ...) -> None: ...

class DropDeadLettersResponse(_message.Message):
    __slots__ = ("sequences",)
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    sequences: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, sequences: _Optional[_Iterable[int]] = ...) -> None: ...
