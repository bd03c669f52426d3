"""Asking the upstream for stream usage on the client's behalf, without
re-serialising the client's body when a splice is exact."""

from __future__ import annotations

import orjson
import pytest

from gateway.proxy.body import parse_body
from gateway.proxy.usage import inject_include_usage


def _inject(raw: bytes) -> bytes:
    return inject_include_usage(raw, parse_body(raw).stream_options_given)


def test_member_is_spliced_in_and_the_rest_is_byte_identical() -> None:
    prompt = "naïve \"quoted\" } { text " * 1000
    raw = orjson.dumps({"model": "m", "stream": True, "messages": [{"role": "user",
                                                                       "content": prompt}]})
    out = _inject(raw)
    assert out.startswith(raw[:-1])  # everything before the closing brace, untouched
    assert orjson.loads(out) == {**orjson.loads(raw), "stream_options": {"include_usage": True}}


def test_trailing_whitespace_and_pretty_printing_are_kept_valid() -> None:
    raw = b'{\n  "model": "m",\n  "stream": true\n}\n  '
    out = _inject(raw)
    assert orjson.loads(out)["stream_options"] == {"include_usage": True}
    assert out.endswith(b"}\n  ")


@pytest.mark.parametrize(
    "options",
    [None, {}, {"include_usage": False}, {"include_usage": False, "other": 1}],
)
def test_existing_stream_options_are_rewritten_not_duplicated(options: object) -> None:
    raw = orjson.dumps({"model": "m", "stream": True, "stream_options": options})
    out = _inject(raw)
    assert out.count(b'"stream_options"') == 1
    expected = {**options, "include_usage": True} if isinstance(options, dict) else {
        "include_usage": True}
    assert orjson.loads(out)["stream_options"] == expected


def test_an_empty_object_gets_no_leading_comma() -> None:
    for raw in (b"{}", b"{ \n }"):
        assert orjson.loads(inject_include_usage(raw, False)) == {
            "stream_options": {"include_usage": True}}
