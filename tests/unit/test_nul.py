"""Where a NUL would reach PostgreSQL: found in JSON bodies by field, in other bodies, in paths and queries."""

from shared.web import nul_field, nul_in_target


def test_a_nul_in_json_is_found_by_its_field_path() -> None:
    body = b'{"events": [{"ok": "x"}, {"properties": {"note": "a\\u0000b"}}]}'
    assert nul_field(body) == "events[1].properties.note"
    assert nul_field(b'[{"a": 1}, "\\u0000"]') == "[1]"
    assert nul_field(b'{"k\\u0000": 1}') == repr("k\x00")


def test_bodies_without_a_nul_pass_and_text_that_only_spells_the_escape_is_text() -> None:
    assert nul_field(b'{"events": [{"note": "a\\\\u0000 is how JSON writes NUL"}]}') is None
    assert nul_field(b"campaign_id,amount\r\nspring,\\u0000\r\n") is None  # not JSON: six characters of text
    assert nul_field(b"") is None


def test_a_raw_nul_byte_in_any_body_is_refused() -> None:
    assert nul_field(b"campaign_id,amount\nspring,\x00\n") == "body"


def test_a_nul_in_the_path_or_a_query_parameter_is_named() -> None:
    assert nul_in_target({"path": "/v1/leads/a\x00", "query_string": b""}) == "path"
    assert nul_in_target({"path": "/v1/leads", "query_string": b"stage=mql&account=x%00y"}) == "account"
    assert nul_in_target({"path": "/v1/leads", "query_string": b"stage=mql&account=x%2500"}) is None
