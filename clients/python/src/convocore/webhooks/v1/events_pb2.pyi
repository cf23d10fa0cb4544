import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_MESSAGE_RECEIVED: _ClassVar[EventType]
    EVENT_TYPE_CHAT_DELEGATED: _ClassVar[EventType]
    EVENT_TYPE_BUG_REPORTED: _ClassVar[EventType]
    EVENT_TYPE_AGENT_CREATED: _ClassVar[EventType]
    EVENT_TYPE_AGENT_UPDATED: _ClassVar[EventType]
    EVENT_TYPE_AGENT_DELETED: _ClassVar[EventType]
    EVENT_TYPE_WEBHOOK_TEST: _ClassVar[EventType]
    EVENT_TYPE_LEAD_CAPTURED: _ClassVar[EventType]
    EVENT_TYPE_FORM_SUBMITTED: _ClassVar[EventType]
    EVENT_TYPE_ORGANISATION_CREATED: _ClassVar[EventType]
    EVENT_TYPE_ORGANISATION_UPDATED: _ClassVar[EventType]
    EVENT_TYPE_ORGANISATION_DELETED: _ClassVar[EventType]
    EVENT_TYPE_CLIENT_CREATED: _ClassVar[EventType]
    EVENT_TYPE_CLIENT_UPDATED: _ClassVar[EventType]
    EVENT_TYPE_CLIENT_DELETED: _ClassVar[EventType]
    EVENT_TYPE_OTHER: _ClassVar[EventType]

class Channel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_UNSPECIFIED: _ClassVar[Channel]
    CHANNEL_WHATSAPP: _ClassVar[Channel]
    CHANNEL_INSTAGRAM: _ClassVar[Channel]
    CHANNEL_FACEBOOK: _ClassVar[Channel]
    CHANNEL_TELEGRAM: _ClassVar[Channel]
    CHANNEL_WEBCHAT: _ClassVar[Channel]
    CHANNEL_WEB_CHAT: _ClassVar[Channel]
    CHANNEL_VOICE: _ClassVar[Channel]
    CHANNEL_VAPI: _ClassVar[Channel]
    CHANNEL_DISCORD: _ClassVar[Channel]
    CHANNEL_GB_CHAT: _ClassVar[Channel]
    CHANNEL_MESSENGER: _ClassVar[Channel]
    CHANNEL_TELEPHONY: _ClassVar[Channel]
    CHANNEL_OTHER: _ClassVar[Channel]

class AgentPlatform(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENT_PLATFORM_UNSPECIFIED: _ClassVar[AgentPlatform]
    AGENT_PLATFORM_VG: _ClassVar[AgentPlatform]
    AGENT_PLATFORM_VF: _ClassVar[AgentPlatform]
    AGENT_PLATFORM_OTHER: _ClassVar[AgentPlatform]

class Operation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATION_UNSPECIFIED: _ClassVar[Operation]
    OPERATION_CREATED: _ClassVar[Operation]
    OPERATION_UPDATED: _ClassVar[Operation]
    OPERATION_DELETED: _ClassVar[Operation]
    OPERATION_CAPTURED: _ClassVar[Operation]
    OPERATION_DELEGATED: _ClassVar[Operation]
    OPERATION_REPORTED: _ClassVar[Operation]
    OPERATION_OTHER: _ClassVar[Operation]

class FormType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FORM_TYPE_UNSPECIFIED: _ClassVar[FormType]
    FORM_TYPE_UI_ENGINE_FORM: _ClassVar[FormType]
    FORM_TYPE_UI_ENGINE_INPUT: _ClassVar[FormType]
    FORM_TYPE_OTHER: _ClassVar[FormType]
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_MESSAGE_RECEIVED: EventType
EVENT_TYPE_CHAT_DELEGATED: EventType
EVENT_TYPE_BUG_REPORTED: EventType
EVENT_TYPE_AGENT_CREATED: EventType
EVENT_TYPE_AGENT_UPDATED: EventType
EVENT_TYPE_AGENT_DELETED: EventType
EVENT_TYPE_WEBHOOK_TEST: EventType
EVENT_TYPE_LEAD_CAPTURED: EventType
EVENT_TYPE_FORM_SUBMITTED: EventType
EVENT_TYPE_ORGANISATION_CREATED: EventType
EVENT_TYPE_ORGANISATION_UPDATED: EventType
EVENT_TYPE_ORGANISATION_DELETED: EventType
EVENT_TYPE_CLIENT_CREATED: EventType
EVENT_TYPE_CLIENT_UPDATED: EventType
EVENT_TYPE_CLIENT_DELETED: EventType
EVENT_TYPE_OTHER: EventType
CHANNEL_UNSPECIFIED: Channel
CHANNEL_WHATSAPP: Channel
CHANNEL_INSTAGRAM: Channel
CHANNEL_FACEBOOK: Channel
CHANNEL_TELEGRAM: Channel
CHANNEL_WEBCHAT: Channel
CHANNEL_WEB_CHAT: Channel
CHANNEL_VOICE: Channel
CHANNEL_VAPI: Channel
CHANNEL_DISCORD: Channel
CHANNEL_GB_CHAT: Channel
CHANNEL_MESSENGER: Channel
CHANNEL_TELEPHONY: Channel
CHANNEL_OTHER: Channel
AGENT_PLATFORM_UNSPECIFIED: AgentPlatform
AGENT_PLATFORM_VG: AgentPlatform
AGENT_PLATFORM_VF: AgentPlatform
AGENT_PLATFORM_OTHER: AgentPlatform
OPERATION_UNSPECIFIED: Operation
OPERATION_CREATED: Operation
OPERATION_UPDATED: Operation
OPERATION_DELETED: Operation
OPERATION_CAPTURED: Operation
OPERATION_DELEGATED: Operation
OPERATION_REPORTED: Operation
OPERATION_OTHER: Operation
FORM_TYPE_UNSPECIFIED: FormType
FORM_TYPE_UI_ENGINE_FORM: FormType
FORM_TYPE_UI_ENGINE_INPUT: FormType
FORM_TYPE_OTHER: FormType

class AgentPayload(_message.Message):
    __slots__ = ("agent_id", "agent_name", "agent_platform", "agent_platform_raw", "operation", "operation_raw", "create_time_millis")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_NAME_FIELD_NUMBER: _ClassVar[int]
    AGENT_PLATFORM_FIELD_NUMBER: _ClassVar[int]
    AGENT_PLATFORM_RAW_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    OPERATION_RAW_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_MILLIS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    agent_name: str
    agent_platform: AgentPlatform
    agent_platform_raw: str
    operation: Operation
    operation_raw: str
    create_time_millis: int
    def __init__(self, agent_id: _Optional[str] = ..., agent_name: _Optional[str] = ..., agent_platform: _Optional[_Union[AgentPlatform, str]] = ..., agent_platform_raw: _Optional[str] = ..., operation: _Optional[_Union[Operation, str]] = ..., operation_raw: _Optional[str] = ..., create_time_millis: _Optional[int] = ...) -> None: ...

class MessagePayload(_message.Message):
    __slots__ = ("agent_id", "agent_name", "convo_id", "message_content", "channel", "channel_raw", "message_type", "sender", "create_time_millis")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_NAME_FIELD_NUMBER: _ClassVar[int]
    CONVO_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_CONTENT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_RAW_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_MILLIS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    agent_name: str
    convo_id: str
    message_content: str
    channel: Channel
    channel_raw: str
    message_type: str
    sender: str
    create_time_millis: int
    def __init__(self, agent_id: _Optional[str] = ..., agent_name: _Optional[str] = ..., convo_id: _Optional[str] = ..., message_content: _Optional[str] = ..., channel: _Optional[_Union[Channel, str]] = ..., channel_raw: _Optional[str] = ..., message_type: _Optional[str] = ..., sender: _Optional[str] = ..., create_time_millis: _Optional[int] = ...) -> None: ...

class OrganisationPayload(_message.Message):
    __slots__ = ("organisation_id", "organisation_name", "operation", "operation_raw", "create_time_millis")
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANISATION_NAME_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    OPERATION_RAW_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_MILLIS_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    organisation_name: str
    operation: Operation
    operation_raw: str
    create_time_millis: int
    def __init__(self, organisation_id: _Optional[str] = ..., organisation_name: _Optional[str] = ..., operation: _Optional[_Union[Operation, str]] = ..., operation_raw: _Optional[str] = ..., create_time_millis: _Optional[int] = ...) -> None: ...

class ClientPayload(_message.Message):
    __slots__ = ("organisation_id", "organisation_name", "client_id", "client_name", "client_email", "operation", "operation_raw", "create_time_millis")
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANISATION_NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_EMAIL_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    OPERATION_RAW_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_MILLIS_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    organisation_name: str
    client_id: str
    client_name: str
    client_email: str
    operation: Operation
    operation_raw: str
    create_time_millis: int
    def __init__(self, organisation_id: _Optional[str] = ..., organisation_name: _Optional[str] = ..., client_id: _Optional[str] = ..., client_name: _Optional[str] = ..., client_email: _Optional[str] = ..., operation: _Optional[_Union[Operation, str]] = ..., operation_raw: _Optional[str] = ..., create_time_millis: _Optional[int] = ...) -> None: ...

class LeadPayload(_message.Message):
    __slots__ = ("agent_id", "agent_name", "lead_name", "lead_email", "lead_phone", "channel", "channel_raw", "operation", "operation_raw", "create_time_millis")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_NAME_FIELD_NUMBER: _ClassVar[int]
    LEAD_NAME_FIELD_NUMBER: _ClassVar[int]
    LEAD_EMAIL_FIELD_NUMBER: _ClassVar[int]
    LEAD_PHONE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_RAW_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    OPERATION_RAW_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_MILLIS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    agent_name: str
    lead_name: str
    lead_email: str
    lead_phone: str
    channel: Channel
    channel_raw: str
    operation: Operation
    operation_raw: str
    create_time_millis: int
    def __init__(self, agent_id: _Optional[str] = ..., agent_name: _Optional[str] = ..., lead_name: _Optional[str] = ..., lead_email: _Optional[str] = ..., lead_phone: _Optional[str] = ..., channel: _Optional[_Union[Channel, str]] = ..., channel_raw: _Optional[str] = ..., operation: _Optional[_Union[Operation, str]] = ..., operation_raw: _Optional[str] = ..., create_time_millis: _Optional[int] = ...) -> None: ...

class FormPayload(_message.Message):
    __slots__ = ("agent_id", "agent_name", "convo_id", "form_type", "form_type_raw", "form_data_json", "channel", "channel_raw", "create_time_millis")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_NAME_FIELD_NUMBER: _ClassVar[int]
    CONVO_ID_FIELD_NUMBER: _ClassVar[int]
    FORM_TYPE_FIELD_NUMBER: _ClassVar[int]
    FORM_TYPE_RAW_FIELD_NUMBER: _ClassVar[int]
    FORM_DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_RAW_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_MILLIS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    agent_name: str
    convo_id: str
    form_type: FormType
    form_type_raw: str
    form_data_json: str
    channel: Channel
    channel_raw: str
    create_time_millis: int
    def __init__(self, agent_id: _Optional[str] = ..., agent_name: _Optional[str] = ..., convo_id: _Optional[str] = ..., form_type: _Optional[_Union[FormType, str]] = ..., form_type_raw: _Optional[str] = ..., form_data_json: _Optional[str] = ..., channel: _Optional[_Union[Channel, str]] = ..., channel_raw: _Optional[str] = ..., create_time_millis: _Optional[int] = ...) -> None: ...

class ChatDelegationPayload(_message.Message):
    __slots__ = ("agent_id", "agent_name", "convo_id", "assigned_to_user_id", "assigned_to_user_name", "assigned_to_user_email", "delegated_by_user_id", "delegated_by_user_name", "customer_name", "customer_email", "customer_phone", "channel", "channel_raw", "operation", "operation_raw", "create_time_millis")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_NAME_FIELD_NUMBER: _ClassVar[int]
    CONVO_ID_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_TO_USER_ID_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_TO_USER_NAME_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_TO_USER_EMAIL_FIELD_NUMBER: _ClassVar[int]
    DELEGATED_BY_USER_ID_FIELD_NUMBER: _ClassVar[int]
    DELEGATED_BY_USER_NAME_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_NAME_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_EMAIL_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_PHONE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_RAW_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    OPERATION_RAW_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_MILLIS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    agent_name: str
    convo_id: str
    assigned_to_user_id: str
    assigned_to_user_name: str
    assigned_to_user_email: str
    delegated_by_user_id: str
    delegated_by_user_name: str
    customer_name: str
    customer_email: str
    customer_phone: str
    channel: Channel
    channel_raw: str
    operation: Operation
    operation_raw: str
    create_time_millis: int
    def __init__(self, agent_id: _Optional[str] = ..., agent_name: _Optional[str] = ..., convo_id: _Optional[str] = ..., assigned_to_user_id: _Optional[str] = ..., assigned_to_user_name: _Optional[str] = ..., assigned_to_user_email: _Optional[str] = ..., delegated_by_user_id: _Optional[str] = ..., delegated_by_user_name: _Optional[str] = ..., customer_name: _Optional[str] = ..., customer_email: _Optional[str] = ..., customer_phone: _Optional[str] = ..., channel: _Optional[_Union[Channel, str]] = ..., channel_raw: _Optional[str] = ..., operation: _Optional[_Union[Operation, str]] = ..., operation_raw: _Optional[str] = ..., create_time_millis: _Optional[int] = ...) -> None: ...

class BugPayload(_message.Message):
    __slots__ = ("agent_id", "agent_name", "convo_id", "bug_description", "image_url", "reported_by_user_id", "reported_by_user_name", "reported_by_user_email", "channel", "channel_raw", "operation", "operation_raw", "create_time_millis")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_NAME_FIELD_NUMBER: _ClassVar[int]
    CONVO_ID_FIELD_NUMBER: _ClassVar[int]
    BUG_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    REPORTED_BY_USER_ID_FIELD_NUMBER: _ClassVar[int]
    REPORTED_BY_USER_NAME_FIELD_NUMBER: _ClassVar[int]
    REPORTED_BY_USER_EMAIL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_RAW_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    OPERATION_RAW_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_MILLIS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    agent_name: str
    convo_id: str
    bug_description: str
    image_url: str
    reported_by_user_id: str
    reported_by_user_name: str
    reported_by_user_email: str
    channel: Channel
    channel_raw: str
    operation: Operation
    operation_raw: str
    create_time_millis: int
    def __init__(self, agent_id: _Optional[str] = ..., agent_name: _Optional[str] = ..., convo_id: _Optional[str] = ..., bug_description: _Optional[str] = ..., image_url: _Optional[str] = ..., reported_by_user_id: _Optional[str] = ..., reported_by_user_name: _Optional[str] = ..., reported_by_user_email: _Optional[str] = ..., channel: _Optional[_Union[Channel, str]] = ..., channel_raw: _Optional[str] = ..., operation: _Optional[_Union[Operation, str]] = ..., operation_raw: _Optional[str] = ..., create_time_millis: _Optional[int] = ...) -> None: ...

class WebhookTestPayload(_message.Message):
    __slots__ = ("message", "create_time_millis")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_MILLIS_FIELD_NUMBER: _ClassVar[int]
    message: str
    create_time_millis: int
    def __init__(self, message: _Optional[str] = ..., create_time_millis: _Optional[int] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("sequence", "id", "event_type", "type_raw", "receive_time", "create_time", "envelope_extras_json", "payload_extras_json", "workspace", "message_received", "chat_delegated", "bug_reported", "agent_created", "agent_updated", "agent_deleted", "webhook_test", "lead_captured", "form_submitted", "organisation_created", "organisation_updated", "organisation_deleted", "client_created", "client_updated", "client_deleted", "other_json")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    TYPE_RAW_FIELD_NUMBER: _ClassVar[int]
    RECEIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_EXTRAS_JSON_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_EXTRAS_JSON_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    CHAT_DELEGATED_FIELD_NUMBER: _ClassVar[int]
    BUG_REPORTED_FIELD_NUMBER: _ClassVar[int]
    AGENT_CREATED_FIELD_NUMBER: _ClassVar[int]
    AGENT_UPDATED_FIELD_NUMBER: _ClassVar[int]
    AGENT_DELETED_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_TEST_FIELD_NUMBER: _ClassVar[int]
    LEAD_CAPTURED_FIELD_NUMBER: _ClassVar[int]
    FORM_SUBMITTED_FIELD_NUMBER: _ClassVar[int]
    ORGANISATION_CREATED_FIELD_NUMBER: _ClassVar[int]
    ORGANISATION_UPDATED_FIELD_NUMBER: _ClassVar[int]
    ORGANISATION_DELETED_FIELD_NUMBER: _ClassVar[int]
    CLIENT_CREATED_FIELD_NUMBER: _ClassVar[int]
    CLIENT_UPDATED_FIELD_NUMBER: _ClassVar[int]
    CLIENT_DELETED_FIELD_NUMBER: _ClassVar[int]
    OTHER_JSON_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    id: str
    event_type: EventType
    type_raw: str
    receive_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    envelope_extras_json: str
    payload_extras_json: str
    workspace: str
    message_received: MessagePayload
    chat_delegated: ChatDelegationPayload
    bug_reported: BugPayload
    agent_created: AgentPayload
    agent_updated: AgentPayload
    agent_deleted: AgentPayload
    webhook_test: WebhookTestPayload
    lead_captured: LeadPayload
    form_submitted: FormPayload
    organisation_created: OrganisationPayload
    organisation_updated: OrganisationPayload
    organisation_deleted: OrganisationPayload
    client_created: ClientPayload
    client_updated: ClientPayload
    client_deleted: ClientPayload
    other_json: str
    def __init__(self, sequence: _Optional[int] = ..., id: _Optional[str] = ..., event_type: _Optional[_Union[EventType, str]] = ..., type_raw: _Optional[str] = ..., receive_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., envelope_extras_json: _Optional[str] = ..., payload_extras_json: _Optional[str] = ..., workspace: _Optional[str] = ..., message_received: _Optional[_Union[MessagePayload, _Mapping]] = ..., chat_delegated: _Optional[_Union[ChatDelegationPayload, _Mapping]] = ..., bug_reported: _Optional[_Union[BugPayload, _Mapping]] = ..., agent_created: _Optional[_Union[AgentPayload, _Mapping]] = ..., agent_updated: _Optional[_Union[AgentPayload, _Mapping]] = ..., agent_deleted: _Optional[_Union[AgentPayload, _Mapping]] = ..., webhook_test: _Optional[_Union[WebhookTestPayload, _Mapping]] = ..., lead_captured: _Optional[_Union[LeadPayload, _Mapping]] = ..., form_submitted: _Optional[_Union[FormPayload, _Mapping]] = ..., organisation_created: _Optional[_Union[OrganisationPayload, _Mapping]] = ..., organisation_updated: _Optional[_Union[OrganisationPayload, _Mapping]] = ..., organisation_deleted: _Optional[_Union[OrganisationPayload, _Mapping]] = ..., client_created: _Optional[_Union[ClientPayload, _Mapping]] = ..., client_updated: _Optional[_Union[ClientPayload, _Mapping]] = ..., client_deleted: _Optional[_Union[ClientPayload, _Mapping]] = ..., other_json: _Optional[str] = ...) -> None: ...
