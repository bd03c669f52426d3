"""Token usage read from upstream answers, to settle token reservations.

Non-streaming answers carry a ``usage`` object. Streams carry it in events:
OpenAI chat/completions send a final usage-only chunk when the request asks
``stream_options.include_usage`` (the gateway asks on the client's behalf and,
if the client had not asked, removes that one chunk again so the client sees
the stream it requested); the Responses API puts it in ``response.completed``;
Anthropic sends input tokens in ``message_start`` and output tokens in
``message_delta``.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.stages import Usage

_EVENT_END = b"\n\n"


def _usage_from_obj(usage: Any, into: Usage) -> bool:
    if not isinstance(usage, dict):
        return False
    found = False
    for key_in in ("prompt_tokens", "input_tokens"):
        value = usage.get(key_in)
        if isinstance(value, int):
            into.tokens_in = value
            found = True
            break
    for key_out in ("completion_tokens", "output_tokens"):
        value = usage.get(key_out)
        if isinstance(value, int):
            into.tokens_out = value
            found = True
            break
    if not found and isinstance(usage.get("total_tokens"), int):
        into.tokens_in = usage["total_tokens"]
        found = True
    return found


def _find_usage(doc: Any, into: Usage) -> bool:
    if not isinstance(doc, dict):
        return False
    if _usage_from_obj(doc.get("usage"), into):
        return True
    for nested in ("response", "message"):
        inner = doc.get(nested)
        if isinstance(inner, dict) and _usage_from_obj(inner.get("usage"), into):
            return True
    return False


def usage_from_json(body: bytes) -> Usage | None:
    """Usage of a complete JSON answer, or None when it has none."""
    if b'"usage"' not in body:
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    usage = Usage()
    return usage if _find_usage(doc, usage) else None


_INCLUDE_USAGE = b',"stream_options":{"include_usage":true}'
_JSON_WHITESPACE = b" \t\r\n"
_OPEN_BRACE = ord("{")


def inject_include_usage(raw: bytes, options_given: bool) -> bytes:
    """The body with ``stream_options.include_usage = true`` (OpenAI streams only).

    ``raw`` is a JSON object (``parse_body`` checked). Without a top-level
    ``stream_options`` the member is spliced in before the closing brace: one
    copy of the bytes, no parse and re-serialisation of a prompt that may be
    megabytes long. With one, the object is rewritten.
    """
    if not options_given:
        end = raw.rfind(b"}")  # only whitespace may follow an object's closing brace
        last = end - 1  # the last byte of the object's content (no slice: no copy)
        while last > 0 and raw[last] in _JSON_WHITESPACE:
            last -= 1
        if last > 0 and raw[last] != _OPEN_BRACE:  # an empty object takes no leading comma
            return b"".join((memoryview(raw)[:end], _INCLUDE_USAGE, memoryview(raw)[end:]))
    body = orjson.loads(raw)
    options = body.get("stream_options")
    body["stream_options"] = (
        {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
    )
    return orjson.dumps(body)


class SseUsageTap:
    """Watches an SSE byte stream for usage; optionally drops the usage-only
    chunk the gateway itself asked for.

    Without dropping, chunks pass through unchanged and a copy is scanned.
    With dropping, complete events are forwarded as soon as they end; only an
    incomplete trailing event waits for its end, so nothing is held back longer
    than it takes the upstream to finish the event it is sending.
    """

    def __init__(self, drop_usage_only_chunk: bool) -> None:
        self.usage = Usage()
        self.seen = False
        self._drop = drop_usage_only_chunk
        self._buffer = b""

    def _scan(self, event: bytes) -> bool:
        """Read usage from one event; True if it is a usage-only OpenAI chunk."""
        if b'"usage"' not in event:
            return False
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            try:
                doc = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if _find_usage(doc, self.usage):
                self.seen = True
                return isinstance(doc, dict) and doc.get("choices") == []
        return False

    def feed(self, chunk: bytes) -> bytes:
        data = self._buffer + chunk
        events = data.split(_EVENT_END)
        self._buffer = events.pop()
        if not self._drop:
            for event in events:
                self._scan(event.replace(b"\r\n", b"\n"))
            return chunk
        kept = [event for event in events if not self._scan(event)]
        if not kept:
            return b""
        return _EVENT_END.join(kept) + _EVENT_END

    def flush(self) -> bytes:
        """Whatever incomplete event remains at the end of the stream."""
        rest, self._buffer = self._buffer, b""
        if rest.strip():
            self._scan(rest)
        return rest if self._drop else b""
