"""Reading a stream the upstream compressed although asked not to.

The gateway asks for ``accept-encoding: identity`` (``headers.py`` says why),
but an upstream, or a CDN in front of it, may compress a stream anyway. The
relay must see the events: to read usage (settling the token reservation),
to drop the usage-only chunk the gateway asked for on the client's behalf,
and to end a stream cut by policy with an event the client can parse. A
gzip or deflate stream is therefore decoded as it arrives and relayed
uncompressed, without its ``Content-Encoding``: after its own decoding the
client reads the same events. Other codings (``br``, ``zstd``) need a
library the gateway does not carry: they are relayed as they came.
"""

from __future__ import annotations

import zlib

_ZLIB_CODINGS = frozenset({"gzip", "x-gzip", "deflate"})
_GZIP_OR_ZLIB = 47
"""zlib window bits 15, plus 32: a zlib or a gzip header, detected."""


class StreamDecoder:
    """Incremental decoding of one gzip/deflate stream."""

    __slots__ = ("_inflate",)

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(_GZIP_OR_ZLIB)

    def decode(self, chunk: bytes) -> bytes:
        """The plain bytes ``chunk`` completes (raises zlib.error on corrupt data)."""
        return self._inflate.decompress(chunk)

    def flush(self) -> bytes:
        return self._inflate.flush()


def stream_decoder(content_encoding: str | None) -> StreamDecoder | None:
    """A decoder when the stream is compressed in a coding read here, else None."""
    if content_encoding is None:
        return None
    coding = content_encoding.strip().lower()
    if coding not in _ZLIB_CODINGS:
        return None
    return StreamDecoder()
