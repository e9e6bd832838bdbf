"""Touches find their lead whatever order the lead events and touches arrive in."""

import itertools

from hypothesis import given
from hypothesis import strategies as st

from services.reporting.identities import index_by_graph, index_leads


def test_an_anonymous_history_belongs_to_the_lead_it_merged_into() -> None:
    created = [("L-ada", "ada@example.com"), ("L-anon", "anon:a1")]
    merged = [("L-ada", "L-anon")]

    index = index_leads(created, merged, [("ada@example.com", "anon:a1")])

    assert index.lead_of("anon:a1") == "L-ada"
    assert index.current("L-anon") == "L-ada"


def test_an_identifier_linked_on_a_touch_finds_the_lead_created_by_the_other() -> None:
    index = index_leads([("L1", "anon:a1")], [], [("bob@example.com", "anon:a1")])

    assert index.lead_of("bob@example.com") == "L1"


def test_an_identifier_no_lead_event_mentions_yet_has_no_lead() -> None:
    assert index_leads([], [], [("bob@example.com", "anon:a1")]).lead_of("anon:a1") is None


def test_the_answer_does_not_depend_on_arrival_order() -> None:
    created = [("L1", "a@x.io"), ("L2", "anon:2"), ("L3", "anon:3")]
    merged = [("L1", "L2"), ("L1", "L3")]
    linked = [("a@x.io", "anon:2"), ("anon:3", "a@x.io")]
    answers = {
        tuple(sorted(index_leads(c, m, linked).by_identifier.items()))
        for c in itertools.permutations(created)
        for m in itertools.permutations(merged)
    }
    assert answers == {(("a@x.io", "L1"), ("anon:2", "L1"), ("anon:3", "L1"))}


leads = st.sampled_from([f"L{i}" for i in range(6)])
identifiers = st.sampled_from(["a@x.io", "b@x.io", "anon:1", "anon:2", "anon:3", "user:9"])


@given(
    st.lists(st.tuples(leads, identifiers), max_size=10),
    st.lists(st.tuples(leads, leads).filter(lambda p: p[0] != p[1]), max_size=3),
    st.lists(st.tuples(identifiers, identifiers), max_size=4),
)
def test_the_direct_lookup_answers_as_the_whole_graph_would(
    created: list[tuple[str, str]], merged: list[tuple[str, str]], linked: list[tuple[str, str]]
) -> None:
    assert index_leads(created, merged, linked) == index_by_graph(created, merged, linked)
