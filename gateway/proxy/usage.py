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

import re
from typing import Any

import orjson

from gateway.jsonbytes import dumps_kept
from gateway.proxy.references import Reference
from gateway.proxy.relayed_ids import answer_references
from gateway.stages import Usage


def _usage_from_obj(usage: Any, into: Usage) -> bool:
    if not isinstance(usage, dict):
        return False
    found = False
    for key_in in ("prompt_tokens", "input_tokens"):
        value = usage.get(key_in)
        if isinstance(value, int):
            into.tokens_in = value + _cached_input(usage)
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


# Anthropic counts prompt tokens written to or read from its prompt cache
# apart from ``input_tokens`` (OpenAI's ``prompt_tokens`` include its cached
# tokens). The model read them all: settling to ``input_tokens`` alone let a
# client mark a long context ``cache_control`` and resend it for a few tokens.
_CACHE_KEYS = ("cache_creation_input_tokens", "cache_read_input_tokens")


def _cached_input(usage: dict[str, Any]) -> int:
    total = 0
    for key in _CACHE_KEYS:
        value = usage.get(key)
        if type(value) is int and value > 0:
            total += value
    return total


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
    return usage_from_doc(parse_answer(body))


def parse_answer(body: bytes) -> Any:
    """A complete JSON answer, parsed (None when it is not JSON)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def usage_from_doc(doc: Any) -> Usage | None:
    """Usage of a parsed answer, or None when it has none."""
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
    return dumps_kept(body)  # forwarded: lives as long as the stream


# SSE lines end with CRLF, LF or a lone CR, and an event ends at a blank line
# (WHATWG HTML, "Server-sent events", 9.2.6): two line ends in a row. A CR
# followed by LF is one line end, never two.
_EVENT_BOUNDARY = re.compile(rb"(?:\r\n|\n|\r(?!\n))(?:\r\n|\n|\r(?!\n))")
# How far back a boundary may start in bytes already searched (a "\r\n\r\n"
# split across two chunks).
_BOUNDARY_OVERLAP = 3


def _boundary_in(data: bytes, start: int) -> re.Match[bytes] | None:
    """The first event boundary at or after ``start``. A CR that ends the data
    may be the first half of a CRLF still in flight: it is not read as a lone
    CR until the next byte is known."""
    end = len(data) - 1 if data.endswith(b"\r") else len(data)
    return _EVENT_BOUNDARY.search(data, start, end)


class SseUsageTap:
    """Watches an SSE byte stream for usage and upstream error events;
    optionally drops the usage-only chunk the gateway itself asked for.

    Without dropping, chunks pass through unchanged and complete events are
    scanned. With dropping, complete events are forwarded as soon as they end,
    byte for byte (whatever their line endings); only an incomplete trailing
    event waits for its end, so nothing is held back longer than it takes the
    upstream to finish the event it is sending. Each byte is searched for a
    boundary once, so a long event costs linear time, not quadratic.
    """

    def __init__(self, drop_usage_only_chunk: bool, marker: bytes | None = None) -> None:
        self.usage = Usage()
        self.seen = False
        self.usage_doc: Any = None
        """The last event its usage was read from (parsed), for the ids it shows."""
        self.marked: dict[Reference, None] = {}
        """The ids shown by events before the last (those whose bytes hold
        ``marker``), in order. Only the ids are kept, never the events: the
        marker only picks which events to parse, and a model asked to repeat
        it puts it in every text delta (as every chunk of an audio answer
        holds ``"audio"``): kept whole, they grew with the stream."""
        self._marker = marker
        self.error: str | None = None
        """``upstream_error_event:<type>`` when the upstream sent an error event."""
        self._drop = drop_usage_only_chunk
        self._pending: list[bytes] = []  # the incomplete trailing event, in pieces
        self._pending_size = 0
        self._tail = b""  # its last bytes, where a boundary split across chunks begins

    def _scan(self, event: bytes) -> bool:
        """Read usage (or an error) from one event; True if it is a usage-only OpenAI chunk."""
        if self._marker is not None and self._marker in event:
            self._keep_marked(event)
        if b'"usage"' not in event and b"error" not in event:
            return False
        for line in event.splitlines():
            if line.startswith(b"event:") and line[6:].strip() == b"error":
                self.error = self.error or "upstream_error_event"
                continue
            if not line.startswith(b"data:"):
                continue
            try:
                doc = orjson.loads(line[5:].strip())
            except orjson.JSONDecodeError:
                continue
            self._note_error(doc)
            if _find_usage(doc, self.usage):
                self.seen = True
                self.usage_doc = doc
                return isinstance(doc, dict) and doc.get("choices") == []
        return False

    def _keep_marked(self, event: bytes) -> None:
        for line in event.splitlines():
            if line.startswith(b"data:"):
                try:
                    doc = orjson.loads(line[5:].strip())
                except orjson.JSONDecodeError:
                    continue
                for reference in answer_references(doc):
                    self.marked[reference] = None

    def shown_ids(self) -> list[Reference]:
        """The ids the stream showed so far: in the events kept for their marker,
        and in its last event with usage (Responses' ``response.completed``,
        Anthropic's ``message_delta``)."""
        return [*self.marked, *answer_references(self.usage_doc)]

    def _note_error(self, doc: Any) -> None:
        # Anthropic: {"type": "error", "error": {"type": "overloaded_error", ...}};
        # OpenAI: {"error": {"type": ..., "code": ...}}.
        if not isinstance(doc, dict):
            return
        error = doc.get("error")
        if isinstance(error, dict) and (doc.get("type") == "error" or "choices" not in doc):
            kind = error.get("type") or error.get("code") or "unknown"
            self.error = f"upstream_error_event:{str(kind)[:64]}"

    @property
    def client_mid_event(self) -> bool:
        """Whether the client has received part of an event and not its end
        (without dropping, chunks pass through as they come): an event the
        gateway adds must wait for that end, or it would corrupt the event."""
        return not self._drop and self._pending_size > 0

    def feed(self, chunk: bytes) -> bytes:
        events = self._complete_events(chunk)
        if not self._drop:
            for event in events:
                self._scan(event)
            return chunk
        return b"".join(event for event in events if not self._scan(event))

    def _complete_events(self, chunk: bytes) -> list[bytes]:
        """The events this chunk completes (each with its own line ends); the
        rest is kept for the next chunk. Pieces are joined only once a
        boundary is in sight, so an event split over many chunks is not
        copied once per chunk."""
        tail = self._tail + chunk
        if _boundary_in(tail, 0) is None:
            self._pending.append(chunk)
            self._pending_size += len(chunk)
            self._tail = tail[-_BOUNDARY_OVERLAP:]
            return []
        data = b"".join((*self._pending, chunk)) if self._pending else chunk
        search_from = max(0, self._pending_size - _BOUNDARY_OVERLAP)
        events: list[bytes] = []
        cut = 0
        while (match := _boundary_in(data, max(cut, search_from))) is not None:
            events.append(data[cut : match.end()])
            cut = match.end()
        rest = data[cut:]
        self._pending = [rest] if rest else []
        self._pending_size = len(rest)
        self._tail = rest[-_BOUNDARY_OVERLAP:]
        return events

    def flush(self) -> bytes:
        """Whatever incomplete event remains at the end of the stream."""
        rest = b"".join(self._pending)
        self._pending, self._pending_size, self._tail = [], 0, b""
        if rest.strip():
            self._scan(rest)
        return rest if self._drop else b""


_TERMINAL_EVENTS = (b"data: [DONE]", b"event: message_stop", b"event: response.completed",
                    b"event: response.incomplete", b"event: response.failed")


def ends_stream(data: bytes) -> bool:
    """Does ``data`` (whole events, as the tap hands them on) hold a stream's
    terminal event? Matched at a line start: inside an event's JSON a newline
    is escaped, so a model's text cannot fake one."""
    return any(data.startswith(event) or b"\n" + event in data for event in _TERMINAL_EVENTS)
