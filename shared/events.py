"""The event contract of DESIGN.md §2: the CloudEvents envelope and one payload class per versioned type.

Kafka carries events in the CloudEvents Kafka binding, *binary* mode: the envelope attributes are
`ce_*` record headers, the JSON `data` is the record value, and the record key is the subject
(identity key for touches, deal id for deals, lead id for leads). Producers and consumers use `to_record` and
`from_record` from this module and nothing else.
"""

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Discriminator, Field, TypeAdapter, field_validator

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"


def normalise_email(email: str) -> str:
    return email.strip().lower()


class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Identity(Payload):
    """Who did it, as far as the source knows. The identity key picks the first one present."""

    email: str | None = Field(None, max_length=320, examples=["ada@example.com"])
    anonymous_id: str | None = Field(None, max_length=200, description="First-party cookie or device id.")
    user_id: str | None = Field(None, max_length=200, description="The customer's own id for the person.")
    recipient_id: str | None = Field(None, max_length=200, description="A provider's id for the recipient.")

    @field_validator("email")
    @classmethod
    def _looks_like_email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = normalise_email(value)
        local, _, domain = value.partition("@")
        if not local or "." not in domain or " " in value:
            raise ValueError("not an email address")
        return value


class Campaign(Payload):
    campaign_id: str | None = Field(None, max_length=200)
    utm_source: str | None = Field(None, max_length=200)
    utm_medium: str | None = Field(None, max_length=200)
    utm_campaign: str | None = Field(None, max_length=200)
    utm_content: str | None = Field(None, max_length=200)
    utm_term: str | None = Field(None, max_length=200)


class TouchData(Payload):
    identity: Identity
    occurred_at: datetime | None = Field(None, description="When it happened; the time of receipt if absent.")
    campaign: Campaign | None = None
    channel: str | None = Field(None, max_length=50, examples=["email", "web", "qr", "paid_social"])
    url: str | None = Field(None, max_length=4096)
    referrer: str | None = Field(None, max_length=4096)
    user_agent: str | None = Field(None, max_length=1024)
    country: str | None = Field(None, max_length=2, description="ISO 3166 alpha-2, derived from the IP at ingest.")
    attributes: dict[str, Any] = Field(default_factory=dict, description="Contact attributes the source sent.")
    machine_generated: bool = Field(
        False,
        description="Fetched by a privacy proxy or link scanner rather than a person; flagged, never dropped.",
    )
    machine_reason: str | None = Field(None, max_length=200)


class EmailOpened(TouchData):
    type: Literal["leadflow.touch.email_open.v1"] = "leadflow.touch.email_open.v1"
    message_id: str | None = Field(None, max_length=500)


class EmailClicked(TouchData):
    type: Literal["leadflow.touch.email_click.v1"] = "leadflow.touch.email_click.v1"
    message_id: str | None = Field(None, max_length=500)
    link_url: str | None = Field(None, max_length=4096)


class EmailForwarded(TouchData):
    type: Literal["leadflow.touch.email_forward.v1"] = "leadflow.touch.email_forward.v1"
    message_id: str | None = Field(None, max_length=500)


class WebVisited(TouchData):
    type: Literal["leadflow.touch.web_visit.v1"] = "leadflow.touch.web_visit.v1"
    title: str | None = Field(None, max_length=1000)
    duration_s: float | None = Field(None, ge=0, le=86400, description="Time on page, when the page was left.")
    return_visit: bool = False
    visit_number: int | None = Field(None, ge=1)
    page_view_id: str | None = Field(
        None, max_length=64, description="Shared by a page's load and its time-on-page reports: count one view."
    )


class QrScanned(TouchData):
    type: Literal["leadflow.touch.qr_scan.v1"] = "leadflow.touch.qr_scan.v1"
    code: str = Field(max_length=64)
    target_url: str | None = Field(None, max_length=4096)


class FormFilled(TouchData):
    type: Literal["leadflow.touch.form_fill.v1"] = "leadflow.touch.form_fill.v1"
    form_id: str | None = Field(None, max_length=200)
    form_name: str | None = Field(None, max_length=500)
    fields: dict[str, Any] = Field(default_factory=dict)


class AdClicked(TouchData):
    type: Literal["leadflow.touch.ad_click.v1"] = "leadflow.touch.ad_click.v1"
    ad_id: str | None = Field(None, max_length=200)
    network: str | None = Field(None, max_length=100)


class EventAttended(TouchData):
    type: Literal["leadflow.touch.event_attended.v1"] = "leadflow.touch.event_attended.v1"
    event_name: str = Field(max_length=500)


class Identified(TouchData):
    """Attributes of a person, and optionally a link from an earlier id (Segment alias/identify)."""

    type: Literal["leadflow.touch.identify.v1"] = "leadflow.touch.identify.v1"
    previous_id: str | None = Field(None, max_length=200)


class Unsubscribed(TouchData):
    type: Literal["leadflow.touch.unsubscribe.v1"] = "leadflow.touch.unsubscribe.v1"
    list_id: str | None = Field(None, max_length=200)
    reason: str | None = Field(None, max_length=1000)


class CustomTracked(TouchData):
    """A tracked action with no touch type of its own (e.g. Segment `track("Trial Started")`)."""

    type: Literal["leadflow.touch.custom.v1"] = "leadflow.touch.custom.v1"
    event: str = Field(max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)


Touch = Annotated[
    EmailOpened
    | EmailClicked
    | EmailForwarded
    | WebVisited
    | QrScanned
    | FormFilled
    | AdClicked
    | EventAttended
    | Identified
    | Unsubscribed
    | CustomTracked,
    Discriminator("type"),
]


class DealData(Payload):
    deal_id: str = Field(min_length=1, max_length=200)
    name: str | None = Field(None, max_length=500)
    stage: str | None = Field(None, max_length=100)
    amount: Decimal | None = Field(None, ge=0, max_digits=18, decimal_places=4)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="ISO 4217.")
    contact_email: str | None = Field(None, max_length=320)
    lead_id: str | None = Field(None, max_length=200)
    company: str | None = Field(None, max_length=500)
    occurred_at: datetime | None = None
    source_system: str | None = Field(None, max_length=50, examples=["hubspot", "salesforce"])


class DealCreated(DealData):
    type: Literal["leadflow.deal.created.v1"] = "leadflow.deal.created.v1"


class DealStageChanged(DealData):
    type: Literal["leadflow.deal.stage_changed.v1"] = "leadflow.deal.stage_changed.v1"
    previous_stage: str | None = Field(None, max_length=100)


class DealWon(DealData):
    type: Literal["leadflow.deal.closed_won.v1"] = "leadflow.deal.closed_won.v1"


class DealLost(DealData):
    type: Literal["leadflow.deal.closed_lost.v1"] = "leadflow.deal.closed_lost.v1"
    reason: str | None = Field(None, max_length=1000)


Deal = Annotated[DealCreated | DealStageChanged | DealWon | DealLost, Discriminator("type")]


class LeadData(Payload):
    """What scoring publishes about a lead on `leadflow.leads`; the record key is the lead id."""

    lead_id: str = Field(min_length=1, max_length=200)


class LeadCreated(LeadData):
    type: Literal["leadflow.lead.created.v1"] = "leadflow.lead.created.v1"
    identifier: str = Field(max_length=400, description="The first identifier seen: email, anon:, user: or rcpt:.")
    email: str | None = Field(None, max_length=320)


class LeadMerged(LeadData):
    """The absorbed lead's identifiers and touches now belong to the survivor (`lead_id`); forget `absorbed`."""

    type: Literal["leadflow.lead.merged.v1"] = "leadflow.lead.merged.v1"
    absorbed: str = Field(max_length=200)


class LeadProfileChanged(LeadData):
    type: Literal["leadflow.lead.profile_changed.v1"] = "leadflow.lead.profile_changed.v1"
    changes: dict[str, Any] = Field(description="Only the attributes whose value changed, with the new value.")
    persona: str | None = None
    segment: str | None = None
    account: str | None = None


class LeadScoreChanged(LeadData):
    type: Literal["leadflow.lead.score_changed.v1"] = "leadflow.lead.score_changed.v1"
    fit: float
    engagement: float = Field(description="Engagement at the time of the touch that changed it.")
    total: float | None = None
    grade: str
    model_version: int


class LeadStageChanged(LeadData):
    type: Literal["leadflow.lead.stage_changed.v1"] = "leadflow.lead.stage_changed.v1"
    from_stage: str | None = None
    to_stage: str
    cause: str = Field(description="The touch type, deal type or decision that moved the stage.")


class LeadErased(LeadData):
    """Erasure (right to be forgotten): scoring deleted the lead's personal data; forget the lead too."""

    type: Literal["leadflow.lead.erased.v1"] = "leadflow.lead.erased.v1"


LeadEvent = Annotated[
    LeadCreated | LeadMerged | LeadProfileChanged | LeadScoreChanged | LeadStageChanged | LeadErased,
    Discriminator("type"),
]
LEAD_ADAPTER: TypeAdapter[LeadEvent] = TypeAdapter(LeadEvent)


class AssignmentData(Payload):
    """What routing publishes on `leadflow.assignments`; the record key is the lead id."""

    lead_id: str = Field(min_length=1, max_length=200)
    assignment_id: str = Field(min_length=1, max_length=200)
    rep_id: str | None = Field(
        None, max_length=200, description="The rep holding the lead; none in the fallback queue."
    )
    team_id: str | None = Field(None, max_length=200)


class LeadAssigned(AssignmentData):
    type: Literal["leadflow.assignment.assigned.v1"] = "leadflow.assignment.assigned.v1"
    rule: str | None = Field(None, max_length=200, description="The rule (or account owner match) that decided.")
    why: str | None = Field(None, max_length=2000)


class AssignmentAccepted(AssignmentData):
    """The rep took the lead: sales accepted (SAL)."""

    type: Literal["leadflow.assignment.accepted.v1"] = "leadflow.assignment.accepted.v1"


class AssignmentRejected(AssignmentData):
    """Sales feedback to marketing: the rep turned the lead down, with a reason from the managed list."""

    type: Literal["leadflow.assignment.rejected.v1"] = "leadflow.assignment.rejected.v1"
    reason: str = Field(min_length=1, max_length=100, examples=["bad_fit", "no_budget", "student", "competitor"])
    note: str | None = Field(None, max_length=2000)


class LeadReassigned(AssignmentData):
    type: Literal["leadflow.assignment.reassigned.v1"] = "leadflow.assignment.reassigned.v1"
    from_rep_id: str | None = Field(None, max_length=200)
    cause: str = Field(max_length=100, examples=["sla_breached", "manual"])


class SlaBreached(AssignmentData):
    type: Literal["leadflow.assignment.sla_breached.v1"] = "leadflow.assignment.sla_breached.v1"
    sla: Literal["accept", "first_contact"]
    due_at: datetime


class DispositionRecorded(AssignmentData):
    type: Literal["leadflow.assignment.disposition.v1"] = "leadflow.assignment.disposition.v1"
    disposition: Literal["contacted", "meeting_booked", "qualified", "disqualified", "opportunity_created"]
    note: str | None = Field(None, max_length=2000)


AssignmentEvent = Annotated[
    LeadAssigned | AssignmentAccepted | AssignmentRejected | LeadReassigned | SlaBreached | DispositionRecorded,
    Discriminator("type"),
]
ASSIGNMENT_ADAPTER: TypeAdapter[AssignmentEvent] = TypeAdapter(AssignmentEvent)

AnyData = Annotated[
    EmailOpened
    | EmailClicked
    | EmailForwarded
    | WebVisited
    | QrScanned
    | FormFilled
    | AdClicked
    | EventAttended
    | Identified
    | Unsubscribed
    | CustomTracked
    | DealCreated
    | DealStageChanged
    | DealWon
    | DealLost
    | LeadCreated
    | LeadMerged
    | LeadProfileChanged
    | LeadScoreChanged
    | LeadStageChanged
    | LeadErased
    | LeadAssigned
    | AssignmentAccepted
    | AssignmentRejected
    | LeadReassigned
    | SlaBreached
    | DispositionRecorded,
    Discriminator("type"),
]
TOUCH_ADAPTER: TypeAdapter[Touch] = TypeAdapter(Touch)
DEAL_ADAPTER: TypeAdapter[Deal] = TypeAdapter(Deal)
DATA_ADAPTER: TypeAdapter[AnyData] = TypeAdapter(AnyData)

D = TypeVar("D", bound=Payload)


@dataclass(frozen=True, slots=True)
class CloudEvent(Generic[D]):
    """The envelope. A plain value: its parts are validated where they come from (payload parsers,
    `from_record`), and building one costs nothing on the hot path (pydantic's was ~7 µs per event)."""

    id: str
    source: str
    type: str
    time: datetime
    data: D
    subject: str | None = None
    specversion: str = SPECVERSION
    datacontenttype: str = CONTENT_TYPE


class EventDecodeError(ValueError):
    """A record that is not a valid Leadflow event; it belongs on the dead-letter topic."""


def identity_key(identity: Identity) -> str:
    """Partition key of a touch: the normalised email, else the anonymous id, else the other ids."""
    if identity.email:
        return normalise_email(identity.email)
    if identity.anonymous_id:
        return f"anon:{identity.anonymous_id}"
    if identity.user_id:
        return f"user:{identity.user_id}"
    if identity.recipient_id:
        return f"rcpt:{identity.recipient_id}"
    raise ValueError("identity has no email, anonymous_id, user_id or recipient_id")


def content_id(*parts: Any) -> str:
    """A stable event id from content, so that a re-posted event gets the id it had the first time."""
    digest = hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS, default=str)).digest()
    return str(uuid.UUID(bytes=digest[:16], version=5))


def digest_id(*parts: str | bytes) -> str:
    """`content_id` for parts that are already canonical text or bytes (cheaper: no JSON encoding)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\x00")
    return str(uuid.UUID(bytes=h.digest()[:16], version=5))


def event_for(data: TouchData | DealData, *, id: str, source: str, received_at: datetime) -> CloudEvent[Any]:
    """Wrap a payload; the subject (and Kafka key) is the identity key for touches, the deal id for deals.

    The envelope's `time` is when it happened: the payload's `occurred_at`, else when ingest received
    it. Consumers read `time`; the payload stays as the source sent it, so its digest (its id) is stable.
    """
    occurred = data.occurred_at or received_at
    subject = data.deal_id if isinstance(data, DealData) else identity_key(data.identity)
    event_type: str = getattr(data, "type")  # noqa: B009  # every concrete payload class declares it
    return CloudEvent(id=id, source=source, type=event_type, time=occurred, subject=subject, data=data)


Header = tuple[str, bytes]


def to_record(event: CloudEvent[Any]) -> tuple[bytes | None, bytes, list[Header]]:
    """Key, value and headers of the CloudEvents Kafka binding, binary mode."""
    headers: list[Header] = [
        ("ce_specversion", SPECVERSION.encode()),
        ("ce_id", event.id.encode()),
        ("ce_source", event.source.encode()),
        ("ce_type", event.type.encode()),
        ("ce_time", event.time.astimezone(UTC).isoformat().encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
    if event.subject is not None:
        headers.append(("ce_subject", event.subject.encode()))
    value = event.data.model_dump_json(exclude_none=True).encode()
    key = event.subject.encode() if event.subject is not None else None
    return key, value, headers


def from_record(value: bytes | None, headers: Any) -> CloudEvent[Any]:
    """Decode a binary-mode record; raises EventDecodeError for anything that is not a known event."""
    attrs = {k: v.decode() for k, v in headers if k.startswith("ce_") and v is not None}
    try:
        data = DATA_ADAPTER.validate_json(value or b"")
        if attrs.get("ce_type") != data.type:
            raise EventDecodeError(f"ce_type {attrs.get('ce_type')!r} does not match data.type {data.type!r}")
        return CloudEvent(
            id=attrs["ce_id"],
            source=attrs["ce_source"],
            type=attrs["ce_type"],
            specversion=attrs.get("ce_specversion", SPECVERSION),
            time=datetime.fromisoformat(attrs["ce_time"]),
            subject=attrs.get("ce_subject"),
            data=data,
        )
    except EventDecodeError:
        raise
    except (KeyError, ValueError) as exc:
        raise EventDecodeError(str(exc)) from exc
