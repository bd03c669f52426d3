"""Relay a non-streamed upstream answer to the client, and read its usage.

Most answers are a few KB with a ``Content-Length``: read whole, scanned for
``usage`` and sent in one piece. An answer larger than ``MAX_USAGE_SCAN`` (or
of unknown length that grows past it) is relayed chunk by chunk as it
arrives, as a stream is, so a 300 MB answer does not sit in the gateway's
memory; its usage is not read (it stays charged at its reservation).

An answer that breaks before its first byte reached the client (a body
shorter than its ``Content-Length``, a stall past the read timeout) becomes a
502/504 in the client's API shape: the client got nothing, so nothing is
charged.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from gateway.proxy.asgi_io import Send, send_response
from gateway.proxy.errors import ProxyError
from gateway.proxy.usage import parse_answer, usage_from_doc, usage_from_json
from gateway.stages import Usage

MAX_USAGE_SCAN = 4 * 1024 * 1024


class Outcome:
    """What the forwarder learns about one upstream call, for settlement and the record."""

    __slots__ = ("bytes_out", "error", "status", "streamed_response_id", "usage")

    def __init__(self) -> None:
        self.status: int | None = None
        self.usage: Usage | None = None
        self.bytes_out = 0
        self.error: str | None = None
        self.streamed_response_id: str | None = None
        """A Responses API stream's id, bound to its caller (``stored_state``)."""


async def relay_answer(
    response: aiohttp.ClientResponse,
    headers: list[tuple[bytes, bytes]],
    send: Send,
    detach: Callable[[], None],
    outcome: Outcome,
    before_sending: Callable[[Any], Awaitable[bytes | None]] | None = None,
    tap: Callable[[bytes], None] | None = None,
) -> None:
    """``before_sending(parsed_body)`` sees a complete 2xx answer before the
    client does (``stored_state``: its response id is bound to the caller first);
    bytes it returns are sent instead (``batch_answer``: a batch's ``results_url``
    rewritten to the gateway's route), JSON, without the upstream's coding.
    ``tap`` sees a 2xx answer's bytes, decoded, as they go out (a batch's
    results: ``batch_charge``); an answer in a coding it cannot read, none."""
    try:
        parts, complete = await _read_head(response)
    except (TimeoutError, aiohttp.ServerTimeoutError):
        outcome.error = "upstream_timeout_mid_answer"
        raise ProxyError(504, "the model API stopped sending its answer") from None
    except aiohttp.ClientError as exc:
        outcome.error = f"upstream_broke:{type(exc).__name__}"
        raise ProxyError(502, "the model API broke off its answer") from None
    if complete:
        tapped: bytes | None = None
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        outcome.bytes_out = len(body)
        if response.status < 300:
            plain = _plain(body, response.headers.get("content-encoding"))
            if plain is not None and before_sending is not None:
                doc = parse_answer(plain)  # parsed once, for its usage and its id
                outcome.usage = usage_from_doc(doc)
                replaced = await before_sending(doc)
                if replaced is not None:
                    body = replaced
                    headers = [(k, v) for k, v in headers if k != b"content-encoding"]
            elif plain is not None and tap is not None:
                tapped = plain  # read once it has gone out
            elif plain is not None:
                outcome.usage = usage_from_json(plain)
        detach()
        await send_response(send, response.status, headers, body)
        if tapped is not None and tap is not None:
            tap(tapped)
        return
    if tap is not None and (response.status >= 300 or not _identity(response)):
        tap = None
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    for part in parts:
        outcome.bytes_out += len(part)
        await send({"type": "http.response.body", "body": part, "more_body": True})
        if tap is not None:
            tap(part)
    while chunk := await response.content.readany():
        outcome.bytes_out += len(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if tap is not None:
            tap(chunk)
    detach()
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _read_head(response: aiohttp.ClientResponse) -> tuple[list[bytes], bool]:
    """The answer's first bytes, up to ``MAX_USAGE_SCAN``, and whether that is all of it."""
    length = response.content_length
    if length is not None and length <= MAX_USAGE_SCAN:
        return [await response.read()], True
    parts: list[bytes] = []
    size = 0
    while size <= MAX_USAGE_SCAN:
        chunk = await response.content.readany()
        if not chunk:
            return parts, True
        parts.append(chunk)
        size += len(chunk)
    return parts, False


def _identity(response: aiohttp.ClientResponse) -> bool:
    coding = response.headers.get("content-encoding")
    return coding is None or coding.strip().lower() == "identity"


def _plain(body: bytes, content_encoding: str | None) -> bytes | None:
    """A complete answer as JSON bytes, to read its usage (and id). The gateway
    asks for ``identity``, but an upstream (or a CDN in front of it) may
    compress anyway: gzip and deflate are read through zlib, bounded, so a
    compressed answer settles to its real usage instead of its whole
    reservation. None: a coding this cannot read."""
    if content_encoding is None or content_encoding.strip().lower() == "identity":
        return body
    if content_encoding.strip().lower() not in ("gzip", "x-gzip", "deflate"):
        return None
    try:
        # wbits 47: a zlib or gzip header, detected.
        return zlib.decompressobj(47).decompress(body, MAX_USAGE_SCAN)
    except zlib.error:
        return None
