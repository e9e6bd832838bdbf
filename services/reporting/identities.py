"""Which lead a touch belongs to, decided at read time from everything seen so far, in any arrival order.

Touches are keyed by identity (email, `anon:...`), not by lead. Scoring's lead events say which
identifier created which lead and which lead absorbed which; the touches themselves say which
identifiers belong together (a form fill with an email and an anonymous id). The connected components
of that graph are the leads: a touch that arrived before its lead event is found once the event is
there, and an anonymous history counts for the lead it merged into.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

LEAD = "lead:"


class _Components:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, node: str) -> str:
        parent = self.parent.setdefault(node, node)
        while parent != self.parent[parent]:
            self.parent[parent] = self.parent[self.parent[parent]]
            parent = self.parent[parent]
        self.parent[node] = parent
        return parent

    def join(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass(frozen=True)
class LeadIndex:
    by_identifier: Mapping[str, str]
    by_lead: Mapping[str, str]  # any lead id ever seen, absorbed ones included -> the lead it is now

    def lead_of(self, identifier: str) -> str | None:
        return self.by_identifier.get(identifier)

    def current(self, lead_id: str) -> str:
        return self.by_lead.get(lead_id, lead_id)


def index_leads(
    created: Iterable[tuple[str, str]], merged: Iterable[tuple[str, str]], linked: Iterable[tuple[str, str]]
) -> LeadIndex:
    """`created`: (lead id, identifier), `merged`: (survivor, absorbed), `linked`: identifiers seen together.

    Most identifiers belong to one lead that never merged: they are looked up directly, and only the
    others (merged leads, linked identifiers, an identifier claimed by two leads) go through the graph.
    """
    created, merged, linked = list(created), list(merged), list(linked)
    tangled = {lead for pair in merged for lead in pair}
    linked_ids = {i for pair in linked for i in pair}
    owner: dict[str, str] = {}
    for lead_id, identifier in created:
        if owner.setdefault(identifier, lead_id) != lead_id:
            linked_ids.add(identifier)
    plain = [(lead, i) for lead, i in created if lead not in tangled and i not in linked_ids]
    tangled |= {lead for lead, i in created if i in linked_ids}
    plain = [(lead, i) for lead, i in plain if lead not in tangled]
    by_identifier = {i: lead for lead, i in plain}
    by_lead = {lead: lead for lead, _ in plain}
    graph = index_by_graph([(lead, i) for lead, i in created if lead in tangled or i in linked_ids], merged, linked)
    by_identifier.update(graph.by_identifier)
    by_lead.update(graph.by_lead)
    return LeadIndex(by_identifier, by_lead)


def index_by_graph(
    created: Iterable[tuple[str, str]], merged: Iterable[tuple[str, str]], linked: Iterable[tuple[str, str]]
) -> LeadIndex:
    components = _Components()
    absorbed: set[str] = set()
    for lead_id, identifier in created:
        components.join(LEAD + lead_id, identifier)
    for survivor, gone in merged:
        components.join(LEAD + survivor, LEAD + gone)
        absorbed.add(gone)
    for a, b in linked:
        components.join(a, b)
    lead_of_root: dict[str, str] = {}
    for node in sorted(components.parent):  # sorted: the same answer whatever the arrival order
        if node.startswith(LEAD) and node[len(LEAD) :] not in absorbed:
            lead_of_root.setdefault(components.find(node), node[len(LEAD) :])
    by_identifier: dict[str, str] = {}
    by_lead: dict[str, str] = {}
    for node in components.parent:
        lead = lead_of_root.get(components.find(node))
        if lead is None:
            continue
        if node.startswith(LEAD):
            by_lead[node[len(LEAD) :]] = lead
        else:
            by_identifier[node] = lead
    return LeadIndex(by_identifier, by_lead)
