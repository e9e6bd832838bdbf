"""Identity resolution (DESIGN.md §2) as a pure decision: which lead a touch belongs to, what it links, what merges.

An identifier is written the way `shared.events.identity_key` writes it: the normalised email, or
`anon:<id>`, `user:<id>`, `rcpt:<id>`. So the first identifier of a touch is its partition key.
"""

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.events import Identified, Identity, TouchData, normalise_email

LEAD_NAMESPACE = uuid.UUID("6f0c8e52-3c1b-5d0e-9a57-6c1f2d0b7a11")
ID_PREFIXES = ("anon:", "user:", "rcpt:")


class Unidentified(ValueError):
    """A touch with no identifier at all: it belongs to nobody (dead-letter it)."""


@dataclass(frozen=True)
class KnownLead:
    """What resolution needs to know about a lead that already owns one of the touch's identifiers."""

    lead_id: str
    created_at: datetime
    has_email: bool


@dataclass(frozen=True)
class LeadCreated:
    lead_id: str
    identifier: str
    at: datetime


@dataclass(frozen=True)
class IdentityLinked:
    lead_id: str
    identifier: str
    at: datetime


@dataclass(frozen=True)
class LeadsMerged:
    """The absorbed lead's identifiers, touches and history now belong to the survivor."""

    survivor: str
    absorbed: str
    at: datetime


IdentityFact = LeadCreated | IdentityLinked | LeadsMerged


@dataclass(frozen=True)
class Resolution:
    lead_id: str
    created: LeadCreated | None = None
    merges: tuple[LeadsMerged, ...] = ()
    links: tuple[IdentityLinked, ...] = ()

    @property
    def facts(self) -> tuple[IdentityFact, ...]:
        """In the order the edge applies them: create, then merge, then link."""
        return (*((self.created,) if self.created else ()), *self.merges, *self.links)


def lead_id_for(identifier: str) -> str:
    """A lead's id is derived from its first identifier, so a redelivered touch creates the same lead."""
    return str(uuid.uuid5(LEAD_NAMESPACE, identifier))


def identifiers_of(touch: TouchData) -> tuple[str, ...]:
    """The touch's identifiers, strongest first (email, anonymous, user, recipient), then its aliases."""
    found = _identity_identifiers(touch.identity)
    if isinstance(touch, Identified) and touch.previous_id:
        found += _alias_identifiers(touch.previous_id)
    return tuple(dict.fromkeys(found))


def _identity_identifiers(identity: Identity) -> tuple[str, ...]:
    candidates = (
        normalise_email(identity.email) if identity.email else None,
        f"anon:{identity.anonymous_id}" if identity.anonymous_id else None,
        f"user:{identity.user_id}" if identity.user_id else None,
        f"rcpt:{identity.recipient_id}" if identity.recipient_id else None,
    )
    return tuple(c for c in candidates if c)


def _alias_identifiers(previous_id: str) -> tuple[str, ...]:
    # Segment's previousId is "an anonymous id or a user id" without saying which; linking both
    # names is harmless (ids of the two kinds do not collide in practice) and finds either history.
    previous_id = previous_id.strip()
    if "@" in previous_id:
        return (normalise_email(previous_id),)
    if previous_id.startswith(ID_PREFIXES):
        return (previous_id,)
    return (f"anon:{previous_id}", f"user:{previous_id}")


def survivor_order(lead: KnownLead) -> tuple[bool, datetime, str]:
    """The lead with an email first, then the older, then the smaller id: a total order on leads."""
    return (not lead.has_email, lead.created_at, lead.lead_id)


def resolve_identity(identifiers: Sequence[str], known: Mapping[str, KnownLead], at: datetime) -> Resolution:
    """Decide the lead a touch applies to.

    Unknown identifiers create a lead (id derived from the first one) or are linked to the lead that
    owns the others. When the touch joins identifiers of several leads, they merge into the first in
    `survivor_order`. Because that order is total and uses only facts both sides see, two replicas
    deciding the same merge pick the same survivor, and any sequence of pairwise merges ends in the
    same lead as one merge of all of them. The edge applies the facts under a lock on the identifiers
    and decides again if another replica changed them first.
    """
    ids = tuple(dict.fromkeys(identifiers))
    if not ids:
        raise Unidentified("the touch has no email, anonymous id, user id or recipient id")
    owners = sorted({known[i].lead_id: known[i] for i in ids if i in known}.values(), key=survivor_order)
    if not owners:
        lead_id = lead_id_for(ids[0])
        links = tuple(IdentityLinked(lead_id, i, at) for i in ids)
        return Resolution(lead_id, created=LeadCreated(lead_id, ids[0], at), links=links)
    survivor, *absorbed = owners
    return Resolution(
        survivor.lead_id,
        merges=tuple(LeadsMerged(survivor.lead_id, lead.lead_id, at) for lead in absorbed),
        links=tuple(IdentityLinked(survivor.lead_id, i, at) for i in ids if i not in known),
    )
