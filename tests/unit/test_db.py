"""JSONB through orjson, and what orjson cannot write."""

from shared.db import _json_text


def test_integers_beyond_64_bits_are_written_as_jsonb_keeps_them() -> None:
    assert _json_text({"employees": 2**70, "name": "Acme"}) == '{"employees": 1180591620717411303424, "name": "Acme"}'
    assert _json_text({"employees": 12}) == '{"employees":12}'
